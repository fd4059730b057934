"""The review console (`/console`): server-rendered pages for the city's reviewers and
dispatchers, on the same keys, scopes and transitions as the API.

Its pages use the server's service modules (intake, transitions, evidence, camera health,
the suppression store), never a route module: `tests/test_architecture.py` checks it."""

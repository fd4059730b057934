"""The review console (`/console`): server-rendered pages for the city's reviewers and
dispatchers, on the same keys, scopes and transitions as the API."""

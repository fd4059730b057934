"""The review console (`/console`): server-rendered pages for the city's reviewers and
dispatchers, on the same keys, scopes and transitions as the API: the pages (`pages`), their
sessions and sign-in throttle (`sessions`, `throttle`), the statistics page (`stats`), the
case page's dwell strips (`strip`) and the translations (`i18n`).

May import `api.contract` and the server's service modules (intake, transitions, evidence,
camera health, the suppression store); never a route module (tests/test_architecture.py).
"""

__all__ = ["i18n", "pages", "sessions", "stats", "strip", "throttle"]

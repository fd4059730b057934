"""The HTTP routes, one module per resource. A route parses, authorises and answers; what
two routes (or a route and the console) share lives in a service module of `api.server`.

May import `api.contract` and the service modules of `api.server`; never another route
module (tests/test_architecture.py).
"""

__all__ = ["admin", "cameras", "cases", "desk", "feed", "fleet", "open311", "ops", "suppressions"]

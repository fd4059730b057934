"""The HTTP routes, one module per resource. A route parses, authorises and answers; what
two routes (or a route and the console) share lives in a service module of `api.server`,
never in another route module."""

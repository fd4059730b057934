"""The arrows between packages point one way (docs: DESIGN.md "Layout").

Every module's imports are read from its source (ast, so imports inside functions and under
`TYPE_CHECKING` count too) and checked against RULES: a module at or under `importer` may
import nothing at or under any of `forbidden`, except itself. A rule is one row of the table.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "detector", "models", "streams")
OURS = (*PACKAGES, "benchmarks", "tests")


class Rule(NamedTuple):
    importer: str
    forbidden: tuple[str, ...]
    why: str


RULES = (
    Rule(
        "api.contract",
        ("api.client", "api.server", "detector", "models", "streams", "benchmarks", "tests"),
        "the contract is what everybody imports; it imports nobody",
    ),
    Rule(
        "api.client",
        ("api.server", "detector", "models", "streams", "benchmarks", "tests"),
        "a worker's side of the wire imports only api.contract of ours",
    ),
    Rule(
        "api.server",
        ("api.client", "detector", "models", "streams", "benchmarks", "tests"),
        "the service runs without the worker's packages",
    ),
    Rule("api.server.routes", ("api.server.routes",), "routes share through service modules"),
    Rule("api.server.console", ("api.server.routes",), "the console shares services, not routes"),
    Rule(
        "detector",
        ("streams", "api.client", "api.server", "benchmarks", "tests"),
        "streams -> detector",
    ),
    Rule(
        "models",
        ("detector", "streams", "api.client", "api.server", "benchmarks", "tests"),
        "detector -> models",
    ),
    Rule(
        "streams", ("api.server", "benchmarks", "tests"), "a worker needs no server, no test code"
    ),
    Rule(
        "streams.config",
        (
            "streams.sources",
            "streams.camera",
            "streams.live",
            "streams.offline",
            "streams.training",
            "streams.cli",
        ),
        "the configuration is read by every part of streams; it reads none of them",
    ),
    Rule(
        "streams.sources",
        (
            "streams.camera",
            "streams.live",
            "streams.offline",
            "streams.training",
            "streams.cli",
            "streams.demo",
        ),
        "sources give frames; what judges them is above them",
    ),
    Rule(
        "streams.camera",
        ("streams.live", "streams.offline", "streams.training", "streams.cli", "streams.demo"),
        "a camera is judged the same by both loops, so it knows neither",
    ),
    Rule(
        "streams.live",
        ("streams.offline", "streams.training", "streams.cli", "streams.demo"),
        "the live and the offline loop share the camera, not each other",
    ),
    Rule(
        "streams.offline",
        ("streams.live", "streams.training", "streams.cli", "streams.demo"),
        "the live and the offline loop share the camera, not each other",
    ),
    Rule(
        "streams.training",
        ("streams.live", "streams.cli", "streams.demo"),
        "training's flows stand beside the loops: they score a scenario offline, never live, "
        "and the command line is a layer over them",
    ),
)

# Known breaks of a rule, each with the reason it stands and what removes it. Keep it short.
EXCEPTIONS = {
    ("streams.demo", "tests.support.scenes"): "the demo composes its clip with the "
    "tests' scenes; it runs from a checkout only and is left out of the wheel (pyproject)",
    ("streams.demo", "tests.support.testcam"): "the demo serves its clip with the "
    "tests' loopback camera (scripts/rtsp_server.py, a checkout only); left out of the wheel",
}


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module of ours that `source` (the text of `module`) imports. `from a import b`
    counts `a`, and `a.b` too when that is a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                package = module.split(".")
                package = package if is_package else package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}"))
    return {m for m in found if any(_within(m, p) for p in OURS)}


def _modules() -> dict[str, set[str]]:
    graph = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = _module_name(path)
            graph[name] = imports_of(
                path.read_text(encoding="utf-8"), name, path.stem == "__init__"
            )
    return graph


GRAPH = _modules()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.importer)
def test_imports_point_one_way(rule: Rule) -> None:
    checked = [m for m in GRAPH if _within(m, rule.importer)]
    assert checked, f"no module under {rule.importer}: the rule checks nothing"
    broken = sorted(
        f"{module} imports {target}"
        for module in checked
        for target in GRAPH[module]
        if target != module
        and any(_within(target, f) for f in rule.forbidden)
        and (module, target) not in EXCEPTIONS
    )
    assert not broken, f"{rule.why}:\n" + "\n".join(broken)


@pytest.mark.parametrize("pair", EXCEPTIONS, ids="->".join)
def test_every_exception_is_still_needed(pair: tuple[str, str]) -> None:
    module, target = pair
    assert target in GRAPH.get(module, set()), f"{module} no longer imports {target}: drop it"


def test_the_checker_sees_every_form_of_import() -> None:
    """The rules are only as good as the import reader: each form a violation could take."""
    source = """
import streams.live.worker
from api.server.routes import feed
from . import cameras
from .. import boxes
def later():
    from detector.engine import Engine
"""
    found = imports_of(source, "api.server.routes.cases")
    assert {
        "streams.live.worker",
        "api.server.routes",
        "api.server.routes.feed",
        "api.server.routes.cameras",
        "api.server.boxes",
        "detector.engine",
    } <= found


PACKAGE_INITS = sorted(
    path.relative_to(ROOT).as_posix()
    for package in PACKAGES
    for path in (ROOT / package).rglob("__init__.py")
)


def _assigns_all(node: ast.stmt) -> bool:
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets)


@pytest.mark.parametrize("init", PACKAGE_INITS)
def test_every_package_says_what_it_owns_may_import_and_exports(init: str) -> None:
    """The issue's rule for a newcomer: each package's docstring says what it owns and what
    it may import, and `__all__` says what it exports."""
    tree = ast.parse((ROOT / init).read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree) or ""
    assert doc, f"{init}: no docstring saying what the package owns"
    assert "import" in doc.lower(), f"{init}: the docstring does not say what it may import"
    assert any(_assigns_all(node) for node in tree.body), f"{init}: no __all__"

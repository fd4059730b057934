"""The docs cannot drift: generated blocks match the code, links resolve, quick start named."""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md"]
PAGES += sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


@functools.cache
def _gen_docs():  # the script, as `python scripts/gen_docs.py` runs it
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_docs"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _prose(path: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the page's headings (a repeated one gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(path):
        if m := re.match(r"^#{1,6} (.+)$", line):
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # a link: its text
            base = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_generated_pages_match_the_code() -> None:
    stale = _gen_docs().stale()
    assert not stale, f"out of date, run `python scripts/gen_docs.py`: {stale}"


def test_a_stale_block_is_caught_and_rewritten() -> None:
    """What --check relies on: a page whose generated block lost a line renders differently,
    and rendering puts the line back."""
    gen = _gen_docs()
    page = "docs/configuration.md"
    text = (ROOT / page).read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `dwell_s` |"))
    stale = text.replace(row + "\n", "")
    assert stale != text
    assert gen.render(page, stale) == text


def test_every_config_field_is_described() -> None:
    """The reference refuses a field with no description; every field of the worker's config
    and of the service's settings appears in it."""
    gen = _gen_docs()
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    seen: set[type] = set()

    def walk(model: type) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            if field.exclude:
                continue
            assert field.description, f"{model.__name__}.{name} has no description"
            assert f"| `{name}` |" in text, f"{model.__name__}.{name} is not in the reference"
            for nested, _ in gen._models_in(field.annotation):
                walk(nested)

    walk(gen.find_class("streams", "Config"))
    walk(gen.find_class("api", "Settings"))
    assert len(seen) > 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page: Path) -> None:
    broken = []
    for line in _prose(page):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if re.match(r"^[a-z]+:", target):  # http:, mailto: ...: not ours to check
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{target}: no such file")
            elif path and not str(dest).startswith(str(ROOT)):
                broken.append(f"{target}: outside the repository")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for command in ("demo", "test"):
        assert f"make {command}" in readme
        assert re.search(rf"^{command}:", makefile, re.M), f"no `{command}` target in the Makefile"

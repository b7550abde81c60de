"""The README and docs/ stay true to the code: the architecture map names every folder of
app/, the developer guide names every folder and the module behind every URL, and every
link stays inside the repository and leads somewhere."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from app.main import create_app
from tests.support.settings import build_settings

ROOT = Path(__file__).parents[2]
APP = ROOT / "app"
TESTS = ROOT / "tests"
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "architecture.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _app_folders() -> set[str]:
    """The folders of app/ that hold Python code, as `name/`."""
    return {
        f"{path.parent.relative_to(APP).parts[0]}/"
        for path in APP.rglob("*.py")
        if path.parent != APP
    }


def _app_packages() -> set[str]:
    """Every folder of app/ that holds Python code, at any depth, as `path/`."""
    return {
        f"{path.parent.relative_to(APP)}/"
        for path in APP.rglob("*.py")
        if path.parent != APP and "versions" not in path.parts
    }


def _readme_map() -> set[str]:
    """The entries the README's architecture block names directly under `app/`."""
    text = README.read_text()
    block = text.split("## Architecture", 1)[1].split("```", 2)[1]
    return {
        match.group(1)
        for match in re.finditer(r"^  ([A-Za-z_][\w.]*/?)\s", block, flags=re.MULTILINE)
    }


def test_the_readme_map_names_every_folder_of_app_and_nothing_that_is_gone() -> None:
    named = _readme_map()
    folders = _app_folders()
    assert folders - named == set(), "folders of app/ missing from the README's map"
    gone = {entry for entry in named if not (APP / entry.rstrip("/")).exists()}
    assert gone == set(), "the README's map names what app/ no longer has"


def test_the_developer_guide_names_every_folder_of_app() -> None:
    text = GUIDE.read_text()
    missing = sorted(folder for folder in _app_packages() if f"`{folder}`" not in text)
    assert missing == [], "folders of app/ the developer guide does not name"


def _routes() -> dict[str, set[str]]:
    """Each documented path of every router in app/, with the modules that answer it."""
    found: dict[str, set[str]] = {}
    for path in sorted(APP.rglob("*.py")):
        if "migrations" in path.parts or path.name == "__main__.py":
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        for router in vars(module).values():
            if not isinstance(router, APIRouter):
                continue
            for route in router.routes:
                if isinstance(route, APIRoute) and route.include_in_schema:
                    found.setdefault(re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), set()).add(
                        str(path.relative_to(APP))
                    )
    return found


def test_the_developer_guide_names_the_module_behind_every_url(tmp_path: Path) -> None:
    routes = _routes()
    settings = build_settings(f"sqlite+aiosqlite:///{tmp_path}/unused.db", tmp_path)
    served = set(create_app(settings).openapi()["paths"])
    assert served - set(routes) == set(), "paths served by no router module of app/"
    text = GUIDE.read_text()
    missing = sorted(
        f"`{path}` | `{module}`"
        for path, modules in routes.items()
        for module in modules
        if f"`{path}` | `{module}`" not in text
    )
    assert missing == [], "URL → module rows missing from docs/architecture.md"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_stays_inside_the_repository_and_leads_somewhere(document: Path) -> None:
    broken: list[str] = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # an absolute URL (http:, mailto:) or an anchor on the same page
        # A link into another folder of the repository starts at its root ("/docs/x.md",
        # as GitHub reads it), never with "..": nothing can lead out of a clone.
        file = target.split("#", 1)[0]
        base = ROOT if file.startswith("/") else document.parent
        path = (base / file.lstrip("/")).resolve()
        if ".." in Path(file).parts or not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert broken == []


def test_code_and_docs_cite_no_issue_numbers_or_files_outside_the_repository() -> None:
    citing = [
        str(path.relative_to(ROOT))
        for path in [*DOCUMENTS, *sorted(APP.rglob("*.py")), *sorted(TESTS.rglob("*.py"))]
        if re.search(r"(?i)\bissue #?\d+|\bAPI\.md\b|\.\./shared", path.read_text())
    ]
    assert citing == []

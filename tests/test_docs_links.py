"""The README and the docs it links point at things that exist: every relative link resolves, and every
file path they name in code style is a file of the checkout, so a move or a rename cannot leave them behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
TOP = "jobqueue|handlers|static|templates|tests|bench|store|docs"
PATH = re.compile(rf"`((?:{TOP})/[\w/.\-]+\.(?:py|js|css|html|md|sql))`")


def _ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_relative_links_resolve(doc: Path) -> None:
    broken = [target for target in LINK.findall(doc.read_text())
              if "://" not in target and not target.startswith("mailto:") and not (doc.parent / target).exists()]
    assert broken == [], f"{doc.name} links to files that do not exist: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_named_files_exist(doc: Path) -> None:
    # `store/x.py` is how the docs name a file inside the package; the CHANGELOG names files of past
    # releases, so only the current section is held to the tree
    text = doc.read_text()
    if doc.name == "CHANGELOG.md":
        text = text.split("\n## [", 2)[1] if "\n## [" in text else text
    missing = [path for path in PATH.findall(text)
               if not (ROOT / path).exists() and not (ROOT / "jobqueue" / path).exists()]
    assert missing == [], f"{doc.name} names files that do not exist: {missing}"

"""The parts of docs/ written from code: each sits between two markers that `python3 dev.py docs` rewrites
(`python -m jobqueue.generated_docs`) and tests/test_generated_docs.py checks, so they cannot go stale."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

COMMAND = "python3 dev.py docs"


@dataclass(frozen=True)
class Part:
    """A generated block of a doc: where it is, which code it is written from, and the code that writes it."""

    path: str  # relative to the checkout
    name: str
    source: str
    render: Callable[[], str]

    @property
    def begin(self) -> str:
        """The line before the block."""
        return f"<!-- generated {self.name}: `{COMMAND}` writes this part from {self.source}; edit that, not this -->"

    @property
    def end(self) -> str:
        """The line after the block."""
        return f"<!-- end of generated {self.name} -->"


def parts() -> list[Part]:
    """Every generated block; a new one is one more entry here and a pair of markers in its doc."""
    from jobqueue.config import options_markdown
    from jobqueue.errors import code_table

    return [Part("docs/configuration.md", "options", "jobqueue/config.py", options_markdown),
            Part("docs/API.md", "error codes", "jobqueue/errors.py", code_table)]


def rewrite(text: str, part: Part) -> str:
    """`text` with the part's block written afresh (ValueError when its markers are missing)."""
    start, stop = text.find(part.begin + "\n"), text.find("\n" + part.end)
    if start < 0 or stop < start:
        raise ValueError(f"{part.path} lacks the lines\n{part.begin}\n{part.end}\naround its generated {part.name}")
    head = text[:start + len(part.begin) + 1]
    return head + part.render().rstrip("\n") + "\n" + text[stop:]  # a blank line ends the last table


def stale(root: str) -> list[str]:
    """The docs whose generated blocks differ from what the code writes now."""
    return [path for path, (before, after) in _rewritten(root).items() if before != after]


def write(root: str) -> list[str]:
    """Rewrite every generated block; the docs that changed."""
    changed = []
    for path, (before, after) in _rewritten(root).items():
        if before != after:
            with open(os.path.join(root, path), "w", encoding="utf-8") as handle:
                handle.write(after)
            changed.append(path)
    return changed


def _rewritten(root: str) -> dict[str, tuple[str, str]]:
    """Each doc's text now and with its blocks rewritten."""
    docs: dict[str, tuple[str, str]] = {}
    for part in parts():
        if part.path not in docs:
            with open(os.path.join(root, part.path), encoding="utf-8") as handle:
                text = handle.read()
            docs[part.path] = (text, text)
        before, after = docs[part.path]
        docs[part.path] = (before, rewrite(after, part))
    return docs


def main(argv: list[str]) -> int:
    """Rewrite the generated blocks of the checkout at argv[0] (default: the current directory)."""
    root = argv[0] if argv else os.getcwd()
    changed = write(root)
    print("\n".join(f"rewrote {path}" for path in changed) or "the generated docs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

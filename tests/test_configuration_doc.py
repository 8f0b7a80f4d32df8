"""docs/configuration.md stays true to the code: its table lists every option server.py accepts, with its default."""

from __future__ import annotations

import argparse
import os
import re

from jobqueue import __version__
from jobqueue.config import Settings, build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ROW = re.compile(r"^\| (`--[^|]*?) \|([^|]*)\|", re.MULTILINE)
_FLAG = re.compile(r"`(--[a-z-]+)")


def documented() -> dict[str, str]:
    """Each flag in the table with its default cell; a row of two flags (`--a` / `--b`) splits it (`1` / `2`)."""
    text = open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8").read()
    rows: dict[str, str] = {}
    for names, default in _ROW.findall(text):
        flags = _FLAG.findall(names)
        default = default.strip()
        defaults = default.split(" / ") if " / " in default else [default] * len(flags)
        assert len(defaults) == len(flags), f"row {names!r} names {len(flags)} options but {len(defaults)} defaults"
        for flag, value in zip(flags, defaults, strict=True):
            assert flag not in rows, f"{flag} has two rows in docs/configuration.md"
            rows[flag] = value.strip()
    return rows


def accepted() -> dict[str, argparse.Action]:
    """Every long option of server.py's command line (but --help), with the argparse action behind it."""
    out = {}
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                out[flag] = action
    return out


def test_the_table_lists_exactly_the_options_the_server_accepts():
    """A new option must reach the docs, and a removed one must leave them."""
    rows, options = set(documented()), set(accepted())
    assert not options - rows, f"options missing from docs/configuration.md: {sorted(options - rows)}"
    assert not rows - options, f"docs/configuration.md lists options server.py refuses: {sorted(rows - options)}"


def _literal(cell: str) -> str | None:
    """The `value` a default cell states, or None when it describes the default in words."""
    match = re.fullmatch(r"`([^`]*)`", cell)
    return match.group(1).replace("<version>", __version__) if match else None


def test_every_default_in_the_table_is_the_servers_default():
    """A literal default must equal Settings' default; an unset one (None, off, empty) is described in words."""
    rows, defaults = documented(), Settings()
    wrong = []
    for flag, action in accepted().items():
        cell = rows[flag]
        if isinstance(action, argparse._VersionAction):
            continue
        value = getattr(defaults, action.dest, None)
        literal = _literal(cell)
        if value is None or value is False or value == ():
            if literal is not None or not cell:
                wrong.append(f"{flag}: unset by default, documented as {cell!r}")
        elif isinstance(value, (int, float)):
            if literal is None or float(literal) != float(value):
                wrong.append(f"{flag}: default {value!r}, documented as {cell!r}")
        elif literal != value:
            wrong.append(f"{flag}: default {value!r}, documented as {cell!r}")
    assert not wrong, "docs/configuration.md disagrees with jobqueue/config.py:\n" + "\n".join(wrong)

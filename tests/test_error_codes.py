"""Error codes are declared once, in jobqueue.errors.Code: every code the server's source uses is in it, with the
status it is raised with, and docs/API.md's table of codes is generated from it.

After adding or changing a code, `python3 dev.py docs` rewrites the table in docs/API.md (tests/test_generated_docs.py
checks it is current).
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jobqueue.errors import Code  # noqa: E402

# The server's source; the client and the CLI (jobqueue/client, jobqueue/cli) have codes of their own.
SOURCES = ("jobqueue", "handlers")
LEFT_OUT = (os.path.join("jobqueue", "client"), os.path.join("jobqueue", "cli"))
# error class -> (index of its code argument, the status every code it carries must have; None: a job's error)
RAISERS = {"BadRequest": (0, 400), "InvalidURL": (0, 400), "BadCursor": (None, 400), "FetchError": (0, None),
           "TaskError": (0, None), "IdempotencyConflict": (0, 0), "ApiError": (1, 0), "CodedError": (1, 0),
           "of": (0, 0), "_closing_answer": (0, 0)}


def _files() -> Iterator[str]:
    for top in SOURCES:
        for folder, _dirs, names in os.walk(os.path.join(ROOT, top)):
            if os.path.relpath(folder, ROOT).startswith(LEFT_OUT):
                continue
            yield from (os.path.join(folder, name) for name in sorted(names) if name.endswith(".py"))


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_code_name(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id in ("code", "error_code", "default_code")) or (
        isinstance(node, ast.Attribute) and node.attr in ("code", "default_code"))


def used_codes() -> Iterator[tuple[str, str, int | None, str]]:
    """(code, where, status the site needs or None for a job's error or 0 for any, raiser) of every literal code
    the source raises, assigns, compares or maps to (`_CURL_CODES`), and every `Code.NAME` it names."""
    for path in _files():
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        where = os.path.relpath(path, ROOT)
        for node in ast.walk(tree):
            at = f"{where}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if name in RAISERS and RAISERS[name][0] is not None:
                    index, status = RAISERS[name]
                    args = [*node.args, *(k.value for k in node.keywords if k.arg == "code")]
                    if name == "ApiError" and node.args and isinstance(node.args[0], ast.Constant):
                        status = node.args[0].value  # ApiError(404, "not_found", ...): the status written with it
                    if len(args) > index:
                        code = _text(args[index]) or _member(args[index])
                        if code is not None:
                            yield code, at, status, name
            elif isinstance(node, ast.Assign) and any(_is_code_name(t) for t in node.targets):
                if _text(node.value) is not None:
                    yield _text(node.value), at, 0, "assignment"  # type: ignore[misc]
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and any(
                    isinstance(t, ast.Name) and t.id.endswith("_CODES") for t in node.targets):
                for value in node.value.values:  # a map to codes: curl's error numbers to a job's codes
                    if _text(value) is not None:
                        yield _text(value), at, 0, "a map of codes"  # type: ignore[misc]
            elif isinstance(node, ast.Compare) and _is_code_name(node.left):
                for right in node.comparators:
                    if _text(right) is not None:
                        yield _text(right), at, 0, "comparison"  # type: ignore[misc]
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if _text(key) == "code" and _text(value) is not None:
                        yield _text(value), at, 0, "{'code': ...}"  # type: ignore[misc]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Code":
                if node.attr.isupper():
                    yield getattr(Code, node.attr, f"Code.{node.attr}"), at, 0, "Code"


def _member(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Code":
        return getattr(Code, node.attr, f"Code.{node.attr}")
    return None


def test_every_code_the_source_uses_is_in_the_catalogue_with_its_status():
    uses = list(used_codes())
    assert len(uses) > 100, "the scan found too few codes: has the source moved?"
    known = {code.value for code in Code}
    unknown = sorted({f"{code} ({at}, {how})" for code, at, _status, how in uses if code not in known})
    assert not unknown, f"codes missing from jobqueue.errors.Code (add each with its status and meaning): {unknown}"
    wrong = []
    for code, at, status, how in uses:
        member = Code(code)
        if status is None and not member.job:
            wrong.append(f"{code} at {at}: {how} makes it a failed job's error.code; mark it job=True in the catalogue")
        elif status and member.status != status:
            wrong.append(f"{code} at {at}: {how} answers it with {status}, the catalogue says {member.status}")
    assert not wrong, "\n".join(wrong)


def test_every_code_in_the_catalogue_is_used():
    used = {code for code, *_ in used_codes()}
    assert [code.value for code in Code if code not in used] == []

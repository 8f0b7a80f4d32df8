"""What changed between two results of a URL: a unified diff of the decoded texts, and the header changes.

The diff is capped: each text is compared up to MAX_INPUT_LINES lines, and the diff itself up to
MAX_DIFF_CHARS characters; when either cap cuts, `truncated` is true and `note` says what was left out.
Bodies that are not text (no encoding was found) are compared by sha256 only, and the note says so.
With `view="text"` the main texts (readable views, navigation and footers left out) are compared instead.
"""

from __future__ import annotations

import difflib
from typing import Any

from jobqueue.models import Result

MAX_INPUT_LINES = 20_000  # per text: difflib's cost grows faster than the input
MAX_INPUT_CHARS = 2_000_000
MAX_DIFF_CHARS = 256 * 1024


def decoded(result: Result) -> str | None:
    """The body as text with the encoding recorded at fetch time; None when it is not text."""
    if result.body is None or result.encoding is None:
        return None
    text = result.body.decode(result.encoding, errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


def header_changes(old: dict[str, str], new: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Headers added, removed and changed (names compared without case; shown as the new side spells them)."""
    before = {k.lower(): (k, v) for k, v in old.items()}
    after = {k.lower(): (k, v) for k, v in new.items()}
    return {
        "added": {after[k][0]: after[k][1] for k in sorted(after.keys() - before.keys())},
        "removed": {before[k][0]: before[k][1] for k in sorted(before.keys() - after.keys())},
        "changed": {after[k][0]: [before[k][1], after[k][1]] for k in sorted(after.keys() & before.keys())
                    if before[k][1] != after[k][1]},
    }


def _lines(text: str) -> tuple[list[str], bool]:
    cut = len(text) > MAX_INPUT_CHARS
    lines = text[:MAX_INPUT_CHARS].splitlines(keepends=True)
    if len(lines) > MAX_INPUT_LINES:
        return lines[:MAX_INPUT_LINES], True
    return lines, cut


def diff_results(old: Result, new: Result) -> dict[str, Any]:
    """The contract's diff answer from `old` to `new` (CPU-bound: run it off the IOLoop)."""
    answer: dict[str, Any] = {"from": old.id, "to": new.id, "same_body": old.body == new.body,
                              "headers": header_changes(old.headers, new.headers),
                              "diff": "", "truncated": False, "note": None}
    old_text, new_text = decoded(old), decoded(new)
    if old_text is None or new_text is None:
        answer["note"] = ("the bodies are not both text, so they are compared by sha256 only: "
                          + ("identical" if answer["same_body"] else "different"))
        return answer
    if answer["same_body"]:
        return answer
    return {**answer, **text_diff(old.id, new.id, old_text, new_text, "GET /results/:id/body gives each body whole")}


def diff_main_texts(old: Result, new: Result, old_text: str, new_text: str) -> dict[str, Any]:
    """The diff answer from `old` to `new` over their main texts (CPU-bound: run it off the IOLoop)."""
    old_text, new_text = old_text.rstrip("\n") + "\n", new_text.rstrip("\n") + "\n"
    answer: dict[str, Any] = {"from": old.id, "to": new.id, "view": "text", "same_body": old.sha256 == new.sha256,
                              "same_text": old_text == new_text, "headers": header_changes(old.headers, new.headers),
                              "diff": "", "truncated": False, "note": None}
    if answer["same_text"]:
        return answer
    whole = "GET /results/:id/text gives each main text whole"
    return {**answer, **text_diff(old.id, new.id, old_text, new_text, whole)}


def text_diff(old_id: str, new_id: str, old_text: str, new_text: str, whole: str) -> dict[str, Any]:
    """`diff`, `truncated` and `note` of a capped unified diff of two texts; `whole` says where to read them all."""
    old_lines, old_cut = _lines(old_text)
    new_lines, new_cut = _lines(new_text)
    pieces: list[str] = []
    size = 0
    cut_output = False
    for line in difflib.unified_diff(old_lines, new_lines, fromfile=old_id, tofile=new_id):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        if size + len(line) > MAX_DIFF_CHARS:
            cut_output = True
            break
        pieces.append(line)
        size += len(line)
    notes = []
    if old_cut or new_cut:
        notes.append(f"only the first {MAX_INPUT_LINES} lines ({MAX_INPUT_CHARS} characters) of each text were "
                     "compared")
    if cut_output:
        notes.append(f"the diff was cut at {MAX_DIFF_CHARS} characters")
    note = "; ".join([*notes, whole]) if notes else None
    return {"diff": "".join(pieces), "truncated": bool(notes), "note": note}

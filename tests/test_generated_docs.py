"""The generated parts of docs/ match the code that writes them; a stale one names the command that fixes it."""

from __future__ import annotations

import difflib
import os
import shutil

import pytest

from jobqueue import generated_docs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("part", generated_docs.parts(), ids=lambda part: f"{part.path}:{part.name}")
def test_each_generated_part_is_what_the_code_writes(part):
    """Changing an option (or whatever a part is written from) without regenerating its doc fails here."""
    with open(os.path.join(ROOT, part.path), encoding="utf-8") as handle:
        text = handle.read()
    fresh = generated_docs.rewrite(text, part)
    diff = "".join(difflib.unified_diff(text.splitlines(True), fresh.splitlines(True), "in the doc", "generated", n=0))
    assert text == fresh, f"{part.path} is stale: run `{generated_docs.COMMAND}` and commit the result\n{diff}"


def test_the_command_rewrites_a_stale_part_and_keeps_the_rest(tmp_path):
    """What `dev.py docs` does: only the marked block changes, and a second run changes nothing."""
    for each in generated_docs.parts():
        os.makedirs(tmp_path / os.path.dirname(each.path), exist_ok=True)
        shutil.copy(os.path.join(ROOT, each.path), tmp_path / each.path)
    part = generated_docs.parts()[0]
    text = (tmp_path / part.path).read_text()
    start, stop = text.index(part.begin), text.index(part.end)
    (tmp_path / part.path).write_text(text[:start] + part.begin + "\n| stale |\n" + text[stop:])
    assert generated_docs.stale(str(tmp_path)) == [part.path]
    assert generated_docs.write(str(tmp_path)) == [part.path]
    assert (tmp_path / part.path).read_text() == text
    assert generated_docs.write(str(tmp_path)) == []

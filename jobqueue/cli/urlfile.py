"""A file of URLs read for `jobqueue submit`: every line checked first, then cut into batch-sized chunks."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

from jobqueue.addresses import AddressPolicy
from jobqueue.urls import InvalidURL, normalize_url

MAX_URLS = 100_000  # per batch, the API's limit
MAX_BYTES = 16 * 1024 * 1024  # per batch request; the server takes up to --max-batch-request-size (64 MiB)
SHOWN_BAD = 5  # bad lines named in the error; the rest are counted
# The client checks the form of each URL only; whether private addresses may be fetched is the server's call.
_FORM_ONLY = AddressPolicy.build(True)
_LINE = re.compile(r"\bline (\d+)\b")


class UsageError(Exception):
    """Bad input from the user: one sentence, exit status 2."""


@dataclass
class BadLine:
    """A line that is not a URL the API would take."""

    number: int
    text: str
    reason: str

    def __str__(self) -> str:
        shown = self.text if len(self.text) <= 60 else self.text[:60] + "..."
        return f"line {self.number} ({shown!r}): {self.reason}"


@dataclass
class Chunk:
    """Lines sent as one batch, with the file line number of each (the server's errors name chunk lines)."""

    lines: list[str] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    size: int = 0

    def file_lines(self, message: str) -> str:
        """The server's message with its chunk line numbers turned into the file's."""
        def swap(match: re.Match[str]) -> str:
            index = int(match.group(1)) - 1
            return f"line {self.numbers[index]}" if 0 <= index < len(self.numbers) else match.group(0)
        return _LINE.sub(swap, message)


@dataclass
class UrlFile:
    """The URLs of a file, in order, and its bad lines."""

    name: str
    urls: list[tuple[int, str]]
    bad: list[BadLine]

    def chunks(self) -> list[Chunk]:
        """The URLs cut into batches of at most MAX_URLS URLs and MAX_BYTES bytes."""
        chunks = [Chunk()]
        for number, url in self.urls:
            cost = len(url.encode()) + 1
            if len(chunks[-1].lines) == MAX_URLS or (chunks[-1].lines and chunks[-1].size + cost > MAX_BYTES):
                chunks.append(Chunk())
            chunks[-1].lines.append(url)
            chunks[-1].numbers.append(number)
            chunks[-1].size += cost
        return chunks


def read_url_file(path: str) -> UrlFile:
    """Read FILE (or stdin for '-'): one URL per line, blank lines and '#' comments skipped."""
    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from exc
    urls: list[tuple[int, str]] = []
    bad: list[BadLine] = []
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            bad.append(BadLine(number, raw.decode("utf-8", "replace").strip(), "is not UTF-8 text"))
            continue
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text or text.startswith("#"):
            continue
        try:
            normalize_url(text, _FORM_ONLY)
        except InvalidURL as exc:
            bad.append(BadLine(number, text, exc.message))
            continue
        urls.append((number, text))
    if not urls and not bad:
        raise UsageError(f"{name} has no URLs; give one URL per line (blank lines and lines starting with '#' "
                         "are skipped)")
    return UrlFile(name, urls, bad)


def describe_bad(bad: list[BadLine]) -> str:
    """The bad lines for one sentence: the first few named, the rest counted."""
    named = "; ".join(str(line) for line in bad[:SHOWN_BAD])
    more = len(bad) - SHOWN_BAD
    return named + (f"; and {more} more bad line{'s' if more != 1 else ''}" if more > 0 else "")

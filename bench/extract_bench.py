"""Measure the readable-content candidates on the committed corpus (tests/fixtures/readable/) and print the figures.

Main-content detection (trafilatura vs readability-lxml): per-page time, key sentences kept, boilerplate dropped.
HTML to Markdown (markdownify vs html-to-markdown): per-page time on the whole page, code fences and tables kept.
Link extraction (selectolax vs lxml): per-page time for parse + every a[href], and on a page of 100,000 links.
The service (`--service`): extraction pages/s on one core, then one server run completing N corpus pages (each
body made distinct, so each is extracted) without `formats` and then with `formats: ["markdown"]`: jobs/s, CPU
per job of the server and its extraction processes (until the full-text indexer is idle too), and the IOLoop's
lag from its own metric (`jobqueue_event_loop_lag_*`). Run: .venv/bin/python bench/extract_bench.py
[--repeat N] [--service [--jobs N]]
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import html_to_markdown
import lxml.html
import markdownify
import trafilatura
from readability import Document
from selectolax.lexbor import LexborHTMLParser as HTMLParser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "fixtures", "readable")
sys.path.insert(0, ROOT)  # jobqueue from this checkout, for the end-to-end section


def load_corpus() -> list[tuple[str, str, dict[str, Any]]]:
    """Each page's name, its decoded text and its expectations."""
    pages = []
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.html"))):
        with open(path[:-5] + ".json") as handle:
            expect = json.load(handle)
        with open(path, "rb") as handle:
            raw = handle.read()
        # what jobqueue.charset finds for the corpus: the latin-1 page says so only in its <meta>
        text = raw.decode("cp1252" if b"iso-8859-1" in raw[:400] else "utf-8")
        pages.append((os.path.basename(path)[:-5], text, expect))
    return pages


def timed(func: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    """The function's answer and its best time in milliseconds over `repeat` runs."""
    best = float("inf")
    out = None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - start)
    return out, best * 1000


def flat(text: str) -> str:
    return " ".join(text.split())


def judge(text: str, expect: dict[str, Any]) -> tuple[int, int, int, int]:
    """Key sentences kept out of all, boilerplate sentences dropped out of all."""
    body = flat(text)
    kept = sum(1 for s in expect["keep"] if flat(s) in body)
    dropped = sum(1 for s in expect["drop"] if flat(s) not in body)
    return kept, len(expect["keep"]), dropped, len(expect["drop"])


def main_content(pages: list[tuple[str, str, dict[str, Any]]], repeat: int) -> None:
    print("## Main content (time in ms per page; kept = key sentences present; dropped = boilerplate absent)")
    print(f"{'page':<12} {'trafilatura':>12} {'kept':>6} {'dropped':>8}   "
          f"{'readability':>12} {'kept':>6} {'dropped':>8}")
    totals = {"traf": [0.0, 0, 0, 0, 0], "read": [0.0, 0, 0, 0, 0]}

    for name, html, expect in pages:
        def traf(html: str = html, expect: dict[str, Any] = expect) -> str:
            return trafilatura.extract(html, url=expect["final_url"], output_format="markdown", include_tables=True,
                                       include_formatting=True, include_links=True) or ""

        def read(html: str = html) -> str:
            summary = Document(html).summary(html_partial=True)
            return str(lxml.html.fromstring(summary).text_content())

        row = [name]
        for key, func in (("traf", traf), ("read", read)):
            out, ms = timed(func, repeat)
            kept, keep_all, dropped, drop_all = judge(out, expect)
            for i, value in enumerate((ms, kept, keep_all, dropped, drop_all)):
                totals[key][i] += value
            row += [f"{ms:12.2f}", f"{kept}/{keep_all}".rjust(6), f"{dropped}/{drop_all}".rjust(8)]
        print(f"{row[0]:<12} {row[1]} {row[2]} {row[3]}   {row[4]} {row[5]} {row[6]}")
    line = ["total"]
    for key in ("traf", "read"):
        ms, kept, keep_all, dropped, drop_all = totals[key]
        line += [f"{ms:12.2f}", f"{kept}/{keep_all}".rjust(6), f"{dropped}/{drop_all}".rjust(8)]
    print(f"{line[0]:<12} {line[1]} {line[2]} {line[3]}   {line[4]} {line[5]} {line[6]}")
    print()


def markdown(pages: list[tuple[str, str, dict[str, Any]]], repeat: int) -> None:
    print("## HTML to Markdown, whole page (ms per page; fence = code fenced with its language; table = pipe table)")
    print(f"{'page':<12} {'markdownify':>12} {'fence':>6} {'table':>6}   {'html-to-md':>12} {'fence':>6} {'table':>6}")
    sums = [0.0, 0.0]
    for name, html, _expect in pages:
        def md1(html: str = html) -> str:
            return str(markdownify.markdownify(html, heading_style="ATX", strip=["script", "style"]))

        def md2(html: str = html) -> str:
            return str(html_to_markdown.convert(html).content)

        row = []
        for i, func in enumerate((md1, md2)):
            out, ms = timed(func, repeat)
            sums[i] += ms
            fence = "yes" if "```python" in out else ("-" if "language-python" not in html else "no")
            piped = re.search(r"^\|[ :]*---", out, re.MULTILINE) is not None  # a pipe table's separator row
            table = "yes" if piped else ("-" if "<table" not in html else "no")
            row += [f"{ms:12.2f}", fence.rjust(6), table.rjust(6)]
        print(f"{name:<12} {row[0]} {row[1]} {row[2]}   {row[3]} {row[4]} {row[5]}")
    print(f"{'total':<12} {sums[0]:12.2f} {'':6} {'':6}   {sums[1]:12.2f}")
    print()


def links(pages: list[tuple[str, str, dict[str, Any]]], repeat: int) -> None:
    print("## Link extraction: parse + every a[href] with its text (ms per page)")
    print(f"{'page':<12} {'selectolax':>12} {'lxml':>10} {'links':>6}")
    big = "<html><body>" + "".join(f'<p><a href="/p/{i}#f">link {i}</a></p>' for i in range(100_000)) + "</body></html>"
    for name, html in [(name, html) for name, html, _ in pages] + [("100k links", big)]:
        def sel(html: str = html) -> list[tuple[str, str]]:
            tree = HTMLParser(html)
            return [(node.attributes.get("href") or "", node.text(deep=True)) for node in tree.css("a[href]")]

        def lx(html: str = html) -> list[tuple[str, str]]:
            tree = lxml.html.document_fromstring(html)
            return [(node.get("href") or "", node.text_content()) for node in tree.iter("a")
                    if node.get("href") is not None]

        runs = 1 if name == "100k links" else repeat
        out1, ms1 = timed(sel, runs)
        out2, ms2 = timed(lx, runs)
        assert len(out1) == len(out2), (name, len(out1), len(out2))
        print(f"{name:<12} {ms1:12.2f} {ms2:10.2f} {len(out1):6d}")
    print()


def pipeline(pages: list[tuple[str, str, dict[str, Any]]], repeat: int) -> None:
    """The chosen extractor end to end, as the service runs it: pages per second on one core."""
    from jobqueue.extract import extract

    print("## jobqueue.extract end to end (markdown + text + links + metadata)")
    total = 0.0
    for name, _html, expect in pages:
        with open(os.path.join(CORPUS, name + ".html"), "rb") as handle:
            body = handle.read()
        views, ms = timed(functools.partial(extract, body, expect["content_type"], None, expect["final_url"]), repeat)
        kept, keep_all, dropped, drop_all = judge(views.text, expect)
        total += ms
        print(f"{name:<12} {ms:8.2f} ms  kept {kept}/{keep_all}  dropped {dropped}/{drop_all}  "
              f"links {len(views.links)}")
    print(f"{'total':<12} {total:8.2f} ms  = {len(pages) / (total / 1000):.0f} pages/s on one core")


def run() -> None:
    """Print every section's figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per page; the best time is printed")
    parser.add_argument("--service", action="store_true", help="only the service's figures (a real server)")
    parser.add_argument("--jobs", type=int, default=600, help="jobs per phase of the service run")
    args = parser.parse_args()
    if args.service:
        from bench.extract_service import run_service

        run_service(args.jobs)
        return
    pages = load_corpus()
    main_content(pages, args.repeat)
    markdown(pages, args.repeat)
    links(pages, args.repeat)
    try:
        pipeline(pages, args.repeat)
    except ImportError as exc:
        print(f"(jobqueue.extract not importable: {exc})")


if __name__ == "__main__":
    run()

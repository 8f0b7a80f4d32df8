"""The `jobqueue` command: `serve` runs the server; submit, status, export, result and the crawl commands talk to
one over its API."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, NoReturn

from jobqueue import __version__
from jobqueue.client import DEFAULT_SERVER, AsyncClient, JobQueueError

from . import commands, crawls
from .urlfile import UsageError

Command = Callable[[AsyncClient, argparse.Namespace], Coroutine[Any, Any, int]]


class _Parser(argparse.ArgumentParser):
    """Mistakes on the command line are one sentence and exit status 2, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        """Print the sentence and leave."""
        print(f"jobqueue: {message}; see `{self.prog} --help`", file=sys.stderr)
        sys.exit(commands.USAGE)


def _priority(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not -10 <= value <= 10:
        raise argparse.ArgumentTypeError(f"{value} is outside -10..10")
    return value


VIEWS = ("markdown", "text", "links", "metadata")  # a job spec's `formats`


def _views(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(VIEWS)
    wrong = [name for name in names if name not in VIEWS]
    if wrong or not names:
        raise argparse.ArgumentTypeError(f"{(wrong or [text])[0]!r} is not one of {', '.join(VIEWS)} or all")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The command line: global --server/--token (also accepted after the command), and the commands."""
    connection = _Parser(add_help=False)  # a parent of _Parser subcommands must be one
    connection.add_argument("--server", default=argparse.SUPPRESS, metavar="URL",
                            help=f"the server's address (env JOBQUEUE_URL, default {DEFAULT_SERVER})")
    connection.add_argument("--token", default=argparse.SUPPRESS, metavar="TOKEN",
                            help="the API token, if the server has one (env JOBQUEUE_API_TOKEN)")
    parser = _Parser(prog="jobqueue", parents=[connection],
                     description="Submit URLs to a jobqueue server and follow them, or run one.",
                     epilog="Exit status: 0 done, 1 some jobs failed (submit --wait, crawl --wait), 2 usage or "
                            "connection error, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"jobqueue {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("serve", add_help=False, help="run the server; takes server.py's options (`jobqueue serve --help`)")

    submit = sub.add_parser("submit", parents=[connection], help="submit a file of URLs as a batch",
                            description="Submit FILE (or standard input for -), one URL per line, as a batch. "
                                        "Every line is checked first: any bad line and nothing is submitted, "
                                        "unless --skip-invalid. Prints the batch id.")
    submit.add_argument("file", metavar="FILE|-")
    submit.add_argument("--tag", action="append", metavar="TAG", help="tag every job (repeatable)")
    submit.add_argument("--priority", type=_priority, metavar="N", help="-10..10, higher runs first (default 0)")
    submit.add_argument("--wait", action="store_true",
                        help="follow the batch to the end: a progress bar on a terminal, lines otherwise")
    submit.add_argument("--skip-invalid", action="store_true", help="submit the good lines, skipping bad ones")

    status = sub.add_parser("status", parents=[connection], help="counts by status, or one job or batch")
    status.add_argument("id", nargs="?", metavar="ID", help="a job's or a batch's id")
    status.add_argument("--json", action="store_true", help="print the API's JSON")

    export = sub.add_parser("export", parents=[connection], help="download jobs as JSON Lines, CSV or WARC")
    export.add_argument("--format", choices=("jsonl", "csv", "warc"), default="jsonl")
    export.add_argument("--status", metavar="STATUS", help="only jobs in this status")
    export.add_argument("--batch", metavar="ID", help="only the jobs of this batch")
    export.add_argument("--crawl", metavar="ID", help="only the pages of this crawl")
    export.add_argument("--filter", action="append", metavar="NAME=VALUE",
                        help="any other filter of GET /queue_tasks (repeatable)")
    export.add_argument("--with", dest="views", type=_views, default=[], metavar="VIEWS",
                        help="jsonl only: put these readable views of each page on its line, comma-separated: "
                             "markdown, text, links, metadata, or all")
    export.add_argument("-o", "--output", metavar="FILE", default=None,
                        help="a file, a directory or - for standard output (default: the server's file name)")

    result = sub.add_parser("result", parents=[connection], help="a completed job's result, or its page as Markdown",
                            description="Print a completed job's result as JSON, or its page's readable content.")
    result.add_argument("id", metavar="ID", help="a job's id")
    shown = result.add_mutually_exclusive_group()
    shown.add_argument("--markdown", action="store_true", help="the page's main content as Markdown")
    shown.add_argument("--whole-page", action="store_true",
                       help="the whole page as Markdown, navigation and footers included")
    shown.add_argument("--text", action="store_true", help="the page's main content as plain text")
    shown.add_argument("--links", action="store_true", help="the page's links, one per line")
    _crawl_commands(sub, connection)
    return parser


def _crawl_commands(sub: Any, connection: argparse.ArgumentParser) -> None:
    """crawl, crawls and crawl-cancel."""
    crawl = sub.add_parser("crawl", parents=[connection], help="follow links from seed URLs within a scope",
                           description="Start a crawl from the seed URLs: every page in scope is a job, its links "
                                       "followed up to --max-depth and --max-pages. Prints the crawl id.")
    crawl.add_argument("urls", nargs="+", metavar="URL", help="a seed page (up to 1,000)")
    crawl.add_argument("--max-pages", type=int, metavar="N", help="pages at most, 1..1000000 (default 1000)")
    crawl.add_argument("--max-depth", type=int, metavar="N", help="links away from a seed, 0..100 (default 2)")
    crawl.add_argument("--scope", choices=("host", "domain", "prefix"),
                       help="follow links on the seed's host (default), its domain and subdomains, or under its path")
    crawl.add_argument("--include", action="append", metavar="RE",
                       help="follow only URLs whose path and query match one of these (repeatable)")
    crawl.add_argument("--exclude", action="append", metavar="RE",
                       help="never follow URLs whose path and query match this (repeatable)")
    crawl.add_argument("--sitemap", choices=("include", "only", "skip"),
                       help="seed from the site's sitemaps too (include, default), take only their pages, or skip them")
    crawl.add_argument("--ignore-robots", action="store_true", help="do not obey robots.txt (obeyed by default)")
    crawl.add_argument("--ignore-query", action="store_true", help="URLs differing only in their query are one page")
    crawl.add_argument("--tag", action="append", metavar="TAG", help="tag every page (repeatable)")
    crawl.add_argument("--priority", type=_priority, metavar="N", help="-10..10, higher runs first (default 0)")
    crawl.add_argument("--wait", action="store_true",
                       help="follow the crawl to the end: a progress bar on a terminal, lines otherwise")
    crawl.add_argument("--json", action="store_true", help="print the API's JSON of the crawl (at its end with --wait)")

    listing = sub.add_parser("crawls", parents=[connection], help="the newest crawls, or one crawl")
    listing.add_argument("id", nargs="?", metavar="ID", help="a crawl's id")
    listing.add_argument("--limit", type=_positive, default=20, metavar="N", help="crawls listed at most (default 20)")
    listing.add_argument("--json", action="store_true", help="print the API's JSON")

    cancel = sub.add_parser("crawl-cancel", parents=[connection], help="stop a crawl (its finished pages stay)")
    cancel.add_argument("id", metavar="ID", help="a crawl's id")
    cancel.add_argument("--json", action="store_true", help="print the API's JSON")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


COMMANDS: dict[str, Command] = {"submit": commands.submit, "status": commands.status, "export": commands.export,
                                "result": commands.result, "crawl": crawls.crawl, "crawls": crawls.crawls,
                                "crawl-cancel": crawls.crawl_cancel}


def serve(argv: Sequence[str]) -> int:
    """Run the server, imported only now: the client commands never load the web layer."""
    try:
        from jobqueue.handlers.app import main as run_server
    except ModuleNotFoundError as exc:
        if exc.name not in ("jobqueue.handlers", "jobqueue.handlers.app"):
            raise
        from handlers.app import main as run_server  # a checkout: handlers/ sits beside jobqueue/
    return run_server(list(argv), prog="jobqueue serve")


def connection(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """The server and token: flags beat JOBQUEUE_URL / JOBQUEUE_API_TOKEN (its first token, if it lists several)."""
    server = getattr(args, "server", None) or environ.get("JOBQUEUE_URL") or DEFAULT_SERVER
    if "://" not in server:
        server = f"http://{server}"
    token = getattr(args, "token", None)
    if token is None:
        tokens = [t.strip() for t in environ.get("JOBQUEUE_API_TOKEN", "").split(",") if t.strip()]
        token = tokens[0] if tokens else None
    return server, token or None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `jobqueue` command and `python -m jobqueue`; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "serve":
        return serve(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help(sys.stderr)
        return commands.USAGE
    server, token = connection(args, os.environ)
    try:
        return asyncio.run(_run(COMMANDS[args.command], server, token, args))
    except (UsageError, JobQueueError) as exc:
        print(f"jobqueue: {exc}", file=sys.stderr)
        return commands.USAGE
    except KeyboardInterrupt:
        follow = ("the crawl goes on (`jobqueue crawls ID` shows it, `jobqueue crawl-cancel ID` stops it)"
                  if args.command == "crawl" else "what was submitted goes on (`jobqueue status ID` follows it)")
        print(f"jobqueue: interrupted; {follow}", file=sys.stderr)
        return 130


async def _run(command: Command, server: str, token: str | None, args: argparse.Namespace) -> int:
    async with AsyncClient(server, token) as client:
        return await command(client, args)

"""Server settings from command-line flags and JOBQUEUE_* variables (a flag wins), each option declared once.

Every option is a field of Settings declared with `option(...)`: default, type (the annotation), help, docs
section, checks and how it holds across --processes. The command line, the variables, validation and the
tables of docs/configuration.md (`python3 dev.py docs`) are derived from these fields (jobqueue/options.py).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from jobqueue import options
from jobqueue.fetcher import DEFAULT_USER_AGENT
from jobqueue.options import OWN, SHARED, SPLIT, ConfigError, above_zero, accepted_by, at_least, each, option, rule
from jobqueue.store import backend_for
from jobqueue.webhooks.signing import SecretError, WebhookSigner

__all__ = ["ConfigError", "Settings", "build_parser", "load_settings", "process_count", "validate"]

SERVING, ACCESS, FETCHING, RENDERING, READABLE, SCHEDULES, STORAGE, WEBHOOKS, LOGGING = (
    "Serving", "Access", "Fetching", "Rendering", "Readable content", "Recurring fetches", "Storage", "Webhooks",
    "Logging")

_RATE = "--rate-limit must be 0 (off) or more, and --rate-burst at least 1"
_CAPACITY = "--max-queued and --max-websockets must be at least 1"
_KEEP = "--keep-per-url must be 0 or more, and --min-every above 0 seconds"
_TOKEN = ("an API token must be at least 16 characters with no spaces "
          "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
_TOKEN_SHAPE = rule(lambda token: len(token) >= 16 and not any(c.isspace() for c in token), _TOKEN)


def _delays(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(","))


def _delays_fit(text: str) -> bool:
    try:
        delays = _delays(text)
    except ValueError:
        return False
    return 0 < len(delays) <= 20 and all(0 < d <= 7 * 24 * 3600 for d in delays)


@dataclass(frozen=True)
class Settings:
    """Everything main() needs to build the service; each field is an option of server.py."""

    host: str = option("127.0.0.1", "address to listen on", SERVING)
    port: int = option(5000, "port to listen on (`0` picks a free one)", SERVING,
                       rule(lambda port: 0 <= port <= 65535, "--port {value} is not a TCP port (0-65535)"))
    processes: int | None = option(
        None, "fetching processes over one database and one listening socket (a SQLite file or MongoDB; an "
              "in-memory SQLite database gets 1, and refuses more); `--workers` is split among them (so it must be "
              "at least the count); `--per-host` and `--webhook-concurrency` hold for all of them together; `1` "
              "runs no parent (docs/API.md, \"Running it\")", SERVING, at_least(1),
        shown_default="one per usable core, at most `--workers`")
    shutdown_grace: float = option(5.0, "seconds running fetches get to finish on SIGINT/SIGTERM", SERVING)
    max_request_size: int = option(4 * 1024 * 1024, "largest API request body, in bytes (413 above)", SERVING,
                                   at_least(1))
    max_batch_request_size: int = option(64 * 1024 * 1024, "largest `POST /batches` body, in bytes (100,000 URLs "
                                                           "fit in the default)", SERVING, at_least(1))
    max_websockets: int = option(1000, "open event streams before new ones get 503", SERVING,
                                 rule(lambda n: n >= 1, _CAPACITY), processes=OWN)
    allowed_origins: tuple[str, ...] = option(
        (), "comma-separated origins besides the dashboard's own that may open the websocket (`*` for any)",
        SERVING, metavar="ORIGINS", item=lambda origin: origin.rstrip("/"))
    rate_limit: float = option(500.0, "URLs one client may submit per second, sustained (`0` turns the limit off)",
                               SERVING, rule(lambda rate: rate >= 0, _RATE), processes=OWN)
    rate_burst: int = option(5000, "URLs one client may submit at once before the rate limit applies", SERVING,
                             rule(lambda burst: burst >= 1, _RATE), processes=OWN)
    max_queued: int = option(1_000_000, "queued jobs in total before submissions get 503 `queue_full`", SERVING,
                             rule(lambda n: n >= 1, _CAPACITY), processes=SHARED)

    api_tokens: tuple[str, ...] = option(
        (), "require this bearer token on the API and the event stream, at least 16 characters without spaces "
            "(repeatable; the variable takes a comma-separated list)", ACCESS, each(_TOKEN_SHAPE),
        flag="api-token", metavar="TOKEN", repeatable=True)
    api_token_file: str | None = option(None, "read more `--api-token`s from a file, one per line (`#` starts a "
                                              "comment)", ACCESS, metavar="PATH")
    read_only_tokens: tuple[str, ...] = option(
        (), "a token that may only read: GET, `/metrics` and the websocket (repeatable, the variable "
            "comma-separated; needs `--api-token`)", ACCESS, each(_TOKEN_SHAPE),
        flag="read-only-token", metavar="TOKEN", repeatable=True)

    workers: int = option(64, "concurrent fetches of the whole service", FETCHING, at_least(1), processes=SPLIT)
    per_host: int = option(4, "concurrent fetches to one host (`1` never gives two)", FETCHING, at_least(1),
                           processes=SHARED)
    host_delay: float = option(
        0.0, "seconds between two fetch starts at one host, for hosts without a `min_delay_ms` of their own "
             "(`PUT /hosts/:host`); `0`: none", FETCHING,
        rule(lambda seconds: 0 <= seconds <= 3600, "--host-delay must be from 0 to 3600 seconds"),
        processes=SHARED)
    max_attempts: int = option(3, "fetch attempts before a job fails", FETCHING, at_least(1))
    retry_base_delay: float = option(1.0, "seconds before the first retry; doubles each time (max 60 s), each wait "
                                          "shortened or lengthened by up to 50 % at random", FETCHING)
    connect_timeout: float = option(10.0, "seconds to connect", FETCHING, above_zero())
    fetch_timeout: float = option(30.0, "seconds for a whole fetch", FETCHING, above_zero())
    max_body_size: int = option(10 * 1024 * 1024, "largest body kept, in bytes; larger ones fail with `too_large`",
                                FETCHING, at_least(1))
    user_agent: str = option(DEFAULT_USER_AGENT, "User-Agent header sent with every fetch", FETCHING)
    allow_private_addresses: bool = option(False, "let the fetcher reach loopback, private and link-local addresses "
                                                  "(the variable: `1`, `true`, `yes` or `on`)", FETCHING)
    allow_networks: tuple[str, ...] = option(
        (), "allow one private network while the guard stays on (repeatable; the variable takes a "
            "comma-separated list)", FETCHING, flag="allow-network", metavar="CIDR", repeatable=True)
    fetch_profiles: str | None = option(None, "JSON or TOML file of named header/cookie sets jobs may name "
                                              "(re-read on SIGHUP)", FETCHING, metavar="PATH")
    lease_seconds: float = option(60.0, "how long a claimed job stays with its process without a heartbeat",
                                  FETCHING, above_zero())
    robots: str = option("ignore", "`obey`: a job without a `robots` field of its own is checked against its "
                                   "origin's robots.txt before it is fetched (a disallowed URL fails "
                                   "`blocked_by_robots`); `ignore`: only jobs with `\"robots\": \"obey\"` are",
                         FETCHING, rule(lambda mode: mode in ("ignore", "obey"), "--robots must be ignore or obey"))
    robots_user_agent: str = option("jobqueue", "the product token robots.txt rules are matched for (its "
                                                "`User-agent` lines)", FETCHING,
                                    rule(lambda token: bool(token.strip()) and not any(c.isspace() for c in token),
                                         "--robots-user-agent must be one word (a product token like jobqueue)"))

    chromium: str | None = option(None, "the Chromium that renders jobs with `render` (driven by Playwright; never "
                                        "downloaded)", RENDERING, metavar="PATH",
                                  shown_default="`chromium` on the PATH")
    render_browsers: int | None = option(
        None, "browsers rendering jobs with `render`; `0` turns rendering off (such jobs get 400 "
              "`rendering_unavailable`)", RENDERING, at_least(0), processes=OWN,
        shown_default="1 where a Chromium is found, else 0")
    render_pages: int = option(4, "renders at once in each browser, each in a fresh context", RENDERING, at_least(1),
                               processes=OWN)
    render_recycle: int = option(500, "renders after which a browser is replaced by a fresh one", RENDERING,
                                 at_least(1))
    extract_workers: int = option(
        1, "processes extracting readable views (Markdown, text, links, metadata) of stored pages", READABLE,
        at_least(1), processes=OWN)
    extract_timeout: float = option(10.0, "seconds one page's extraction may take before it is stopped "
                                          "(`extraction_timeout`)", READABLE, above_zero())

    min_every: float = option(60.0, "shortest period, in seconds, of a recurring fetch (a job's `every`)",
                              SCHEDULES, rule(lambda seconds: seconds > 0, _KEEP))
    max_schedules: int = option(1000, "recurring fetches active at once; a submission whose jobs with `every` "
                                      "would pass it gets 409 `too_many_schedules`, and nothing of it is stored "
                                      "(`0`: no limit)", SCHEDULES,
                                rule(lambda n: n >= 0, "--max-schedules must be 0 (no limit) or more"),
                                processes=SHARED)

    database: str = option("sqlite:///jobqueue.db", "`sqlite:///relative.db`, `sqlite:////absolute.db` "
                                                    "(embedded), or `mongodb://host:27017/dbname`", STORAGE,
                           accepted_by(backend_for, ValueError))
    sqlite_synchronous: str = option(
        "FULL", "`FULL`: every request that changes something survives power loss before its answer, and claims "
                "and attempt outcomes are synced within about a second; `NORMAL`: every commit survives process "
                "crashes only (`OFF` and `EXTRA`, SQLite's other levels, are accepted too)", STORAGE,
        rule(lambda level: level.upper() in ("OFF", "NORMAL", "FULL", "EXTRA"),
             "--sqlite-synchronous must be OFF, NORMAL, FULL or EXTRA"))
    retention_days: float | None = option(
        None, "delete finished jobs (with their results, and bodies no other result has) this many days after "
              "they finished; fractions allowed", STORAGE,
        rule(lambda days: days > 0, "--retention-days must be above 0 (leave it out to keep everything)"),
        shown_default="keep everything")
    keep_per_url: int = option(0, "with `--retention-days`, always keep the newest this many results of every URL",
                               STORAGE, rule(lambda n: n >= 0, _KEEP))

    webhook_secret: str | None = option(
        None, "`whsec_<base64>` key that signs webhooks (Standard Webhooks); without it a spec with a `webhook` "
              "is refused (prefer the variable: flags show in `ps`)", WEBHOOKS,
        accepted_by(WebhookSigner, SecretError))
    webhook_url: str | None = option(None, "an endpoint that gets every job and batch event (needs "
                                           "`--webhook-secret`)", WEBHOOKS)
    webhook_retry_delays: str = option(
        "5,30,120,600,3600,21600", "seconds between webhook attempts, comma-separated (±20 % jitter), 1-20 of "
                                   "them, each at most a week; then the delivery fails", WEBHOOKS,
        rule(_delays_fit, "--webhook-retry-delays must be 1-20 comma-separated numbers of seconds, each above 0 "
                          "and at most a week (like 5,30,120)"))
    webhook_concurrency: int = option(4, "webhook requests in flight to one endpoint", WEBHOOKS, at_least(1),
                                      processes=SHARED)
    webhook_timeout: float = option(10.0, "seconds a webhook receiver has to answer (at most 300)", WEBHOOKS,
                                    rule(lambda seconds: 0 < seconds <= 300,
                                         "--webhook-timeout must be above 0 and at most 300 seconds"))

    log_format: str = option("text", "`text` (key=value) or `json` (start-up lines too)", LOGGING,
                             rule(lambda fmt: fmt in ("text", "json"), "--log-format must be text or json"))
    log_level: str = option("info", "`debug`, `info` (one line per job state change), `warning` or `error`",
                            LOGGING, rule(lambda level: level.lower() in ("debug", "info", "warning", "error"),
                                          "--log-level must be debug, info, warning or error"))

    @property
    def retry_delays(self) -> tuple[float, ...]:
        """--webhook-retry-delays as seconds (validated at load)."""
        return _delays(self.webhook_retry_delays)


OPTIONS = options.declared(Settings)


def build_parser(prog: str = "server.py") -> argparse.ArgumentParser:
    """The command line of server.py (and of `jobqueue serve`, named `prog` in help and errors)."""
    return options.build_parser(
        OPTIONS, prog,
        description="jobqueue: submit URLs over HTTP, workers fetch and store them, a dashboard shows it live.",
        epilog="Every option also reads JOBQUEUE_<OPTION> from the environment; a flag beats the variable.")


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
                  prog: str = "server.py") -> Settings:
    """Merge defaults, environment and flags into validated Settings."""
    env = os.environ if environ is None else environ
    values = options.read_values(OPTIONS, build_parser(prog).parse_args(argv), env)
    if values.get("api_token_file"):
        values["api_tokens"] = (*values.get("api_tokens", ()), *read_token_file(values["api_token_file"]))
    settings = Settings(**values)
    validate(settings)
    return settings


def read_token_file(path: str) -> list[str]:
    """Tokens from a file, one per line; blank lines and '#' comments are skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"--api-token-file {path!r} cannot be read: {exc.strerror or exc}") from exc
    tokens = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not tokens:
        raise ConfigError(f"--api-token-file {path!r} holds no token")
    return tokens


def validate(settings: Settings) -> None:
    """Refuse settings that cannot work, with one sentence saying why: each option's own checks, then the
    rules that involve several."""
    options.check(OPTIONS, settings)
    if settings.read_only_tokens and not settings.api_tokens:
        raise ConfigError("--read-only-token needs at least one --api-token: without one every client may do "
                          "everything anyway")
    if set(settings.read_only_tokens) & set(settings.api_tokens):
        raise ConfigError("a token cannot be both an --api-token and a --read-only-token")
    if settings.webhook_url is not None and settings.webhook_secret is None:
        raise ConfigError("--webhook-url needs --webhook-secret=whsec_... to sign what it sends")
    count = settings.processes
    if count is not None and count > 1 and not shares_database(settings.database):
        raise ConfigError(f"--processes {count} needs a database several processes can share (a SQLite file or "
                          "MongoDB); an in-memory SQLite database belongs to one process")
    if count is not None and count > settings.workers:
        raise ConfigError(f"--processes {count} needs at least {count} --workers: the workers are split among "
                          "the processes and each fetches at least one job at a time")


def shares_database(url: str) -> bool:
    """Whether several processes can work on this database at once: a SQLite file or MongoDB, not an in-memory
    SQLite database (each connection to one is a database of its own)."""
    parts = urlsplit(url)
    return parts.scheme.lower() != "sqlite" or unquote(parts.path).lstrip("/") not in ("", ":memory:")


def process_count(settings: Settings) -> int:
    """How many fetching processes to run: --processes, else one per usable core, at most one per worker
    (each process fetches at least one job at a time), and one when the database cannot be shared."""
    if settings.processes is not None:
        return settings.processes
    if not shares_database(settings.database):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, settings.workers))


def options_markdown() -> str:
    """The tables of docs/configuration.md's generated part: every option, its default, variable and meaning."""
    return options.markdown_tables(OPTIONS)

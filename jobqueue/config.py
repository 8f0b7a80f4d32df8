"""Server settings from command-line flags and JOBQUEUE_* environment variables (a flag wins)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import unquote, urlsplit

from jobqueue import __version__
from jobqueue.fetcher import DEFAULT_USER_AGENT
from jobqueue.store import backend_for
from jobqueue.webhooks.signing import SecretError, WebhookSigner


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and what to do."""


@dataclass(frozen=True)
class Settings:
    """Everything main() needs to build the service."""

    host: str = "127.0.0.1"
    port: int = 5000
    database: str = "sqlite:///jobqueue.db"
    workers: int = 32
    per_host: int = 4
    max_attempts: int = 3
    retry_base_delay: float = 1.0
    allow_private_addresses: bool = False
    allow_networks: tuple[str, ...] = field(default_factory=tuple)
    connect_timeout: float = 10.0
    fetch_timeout: float = 30.0
    max_body_size: int = 10 * 1024 * 1024
    user_agent: str = DEFAULT_USER_AGENT
    lease_seconds: float = 60.0
    sqlite_synchronous: str = "FULL"
    shutdown_grace: float = 5.0
    max_request_size: int = 4 * 1024 * 1024
    max_batch_request_size: int = 64 * 1024 * 1024
    fetch_profiles: str | None = None
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    api_tokens: tuple[str, ...] = field(default_factory=tuple)
    read_only_tokens: tuple[str, ...] = field(default_factory=tuple)
    rate_limit: float = 500.0
    rate_burst: int = 5000
    max_queued: int = 1_000_000
    max_websockets: int = 1000
    log_format: str = "text"
    log_level: str = "info"
    webhook_secret: str | None = None
    webhook_url: str | None = None
    webhook_retry_delays: str = "5,30,120,600,3600,21600"
    webhook_concurrency: int = 4
    webhook_timeout: float = 10.0
    retention_days: float | None = None  # None: keep everything
    keep_per_url: int = 0
    min_every: float = 60.0
    max_schedules: int = 1000  # 0: no limit
    processes: int | None = None  # None: one per core when the database allows several (process_count)

    @property
    def retry_delays(self) -> tuple[float, ...]:
        """--webhook-retry-delays as seconds (validated at load)."""
        return tuple(float(part) for part in self.webhook_retry_delays.split(","))


# (flag, type, help); the environment variable is JOBQUEUE_ + the flag in upper case.
_OPTIONS: list[tuple[str, type, str]] = [
    ("host", str, "address to listen on"),
    ("port", int, "port to listen on"),
    ("database", str, "sqlite:///path.db (embedded, default) or mongodb://host:27017/dbname"),
    ("workers", int, "concurrent fetches"),
    ("per-host", int, "concurrent fetches to one host"),
    ("max-attempts", int, "fetch attempts before a task fails"),
    ("retry-base-delay", float, "seconds before the first retry; doubles each time"),
    ("connect-timeout", float, "seconds to connect"),
    ("fetch-timeout", float, "seconds for a whole fetch"),
    ("max-body-size", int, "largest body kept, in bytes; larger ones fail with too_large"),
    ("user-agent", str, "User-Agent header sent with every fetch"),
    ("lease-seconds", float, "how long a claimed task stays with its process without a heartbeat"),
    ("sqlite-synchronous", str, "SQLite synchronous pragma: FULL (survives power loss) or NORMAL"),
    ("shutdown-grace", float, "seconds running fetches get to finish on SIGINT/SIGTERM"),
    ("max-request-size", int, "largest API request body, in bytes"),
    ("max-batch-request-size", int, "largest POST /batches body, in bytes (100,000 URLs fit in the default)"),
    ("fetch-profiles", str, "JSON or TOML file of named header/cookie sets jobs may use (re-read on SIGHUP)"),
    ("rate-limit", float, "URLs one client may submit per second, sustained (0 turns the limit off)"),
    ("rate-burst", int, "URLs one client may submit at once before the rate limit applies"),
    ("max-queued", int, "queued jobs in total before submissions get 503 queue_full"),
    ("max-websockets", int, "open event streams before new ones get 503"),
    ("log-format", str, "text (key=value) or json"),
    ("log-level", str, "debug, info (one line per job state change), warning or error"),
    ("webhook-secret", str, "whsec_<base64> key that signs webhooks (Standard Webhooks); without it webhooks "
                            "are off (prefer the JOBQUEUE_WEBHOOK_SECRET variable: flags show in ps)"),
    ("webhook-url", str, "an endpoint that gets every job and batch event (needs --webhook-secret)"),
    ("webhook-retry-delays", str, "seconds between webhook attempts, comma-separated; then the delivery fails"),
    ("webhook-concurrency", int, "webhook requests in flight to one endpoint"),
    ("webhook-timeout", float, "seconds a webhook receiver has to answer"),
    ("retention-days", float, "delete finished jobs (results, unshared bodies) this many days after they finished "
                              "(fractions allowed; unset keeps everything)"),
    ("keep-per-url", int, "with --retention-days, always keep the newest this many results of every URL"),
    ("min-every", float, "shortest period, in seconds, of a recurring fetch (a job's `every`)"),
    ("max-schedules", int, "recurring fetches active at once before submissions with `every` get 409 "
                           "too_many_schedules (0: no limit)"),
    ("processes", int, "fetching processes sharing the database and the listening socket; --workers are split "
                       "among them, --per-host and --webhook-concurrency hold for all of them together (default: "
                       "one per core when the database allows several)"),
]


def _whole_number(text: str) -> int:
    """argparse type for counts, sizes and ports: the error reads as a sentence, not a Python type name."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _number(text: str) -> float:
    """argparse type for seconds and rates."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


_FLAG_TYPES = {int: _whole_number, float: _number}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose mistakes become one-sentence ConfigErrors instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        """Turn argparse's message into the one sentence main() prints before exiting with status 2."""
        if message.startswith("unrecognized arguments: "):
            message = f"not an option of {self.prog}: {message[len('unrecognized arguments: '):]}"
        elif message.startswith("argument "):
            flag, _, problem = message[len("argument "):].partition(": ")
            if problem.startswith("expected "):  # "expected one argument"
                raise ConfigError(f"{flag} needs a value")
            raise ConfigError(f"{flag}: {problem}")
        raise ConfigError(f"{message}; `{self.prog} --help` lists the options")


def _env_name(flag: str) -> str:
    return "JOBQUEUE_" + flag.upper().replace("-", "_")


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def build_parser(prog: str = "server.py") -> argparse.ArgumentParser:
    """The command line of server.py (and of `jobqueue serve`, named `prog` in help and errors)."""
    defaults = Settings()
    parser = _Parser(
        prog=prog,
        description="jobqueue: submit URLs over HTTP, workers fetch and store them, a dashboard shows it live.",
        epilog="Every option also reads JOBQUEUE_<OPTION> from the environment; a flag beats the variable.",
    )
    for flag, kind, text in _OPTIONS:
        default = getattr(defaults, flag.replace("-", "_"))
        parser.add_argument(f"--{flag}", type=_FLAG_TYPES.get(kind, kind), default=None,
                            help=f"{text} (default: {default})")
    parser.add_argument("--allow-private-addresses", action="store_true", default=None,
                        help="let the fetcher reach loopback, private and link-local addresses")
    parser.add_argument("--allow-network", action="append", default=None, metavar="CIDR",
                        help="allow one private network while the guard stays on (repeatable)")
    parser.add_argument("--api-token", action="append", default=None, metavar="TOKEN",
                        help="require this bearer token on the API and the event stream (repeatable)")
    parser.add_argument("--read-only-token", action="append", default=None, metavar="TOKEN",
                        help="a token that may only read: GET, /metrics and the websocket (repeatable; needs "
                             "--api-token)")
    parser.add_argument("--api-token-file", default=None, metavar="PATH",
                        help="read tokens from a file, one per line ('#' starts a comment)")
    parser.add_argument("--allowed-origins", default=None, metavar="ORIGINS",
                        help="comma-separated origins that may open the websocket besides the "
                             "dashboard's own ('*' for any)")
    parser.add_argument("--version", action="version", version=f"jobqueue {__version__}")
    return parser


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
                  prog: str = "server.py") -> Settings:
    """Merge defaults, environment and flags into validated Settings."""
    env = os.environ if environ is None else environ
    args = build_parser(prog).parse_args(argv)
    values: dict[str, object] = {}
    for flag, kind, _text in _OPTIONS:
        key = flag.replace("-", "_")
        value = getattr(args, key)
        if value is None and _env_name(flag) in env:
            raw = env[_env_name(flag)]
            try:
                value = kind(raw)
            except ValueError as exc:
                raise ConfigError(f"{_env_name(flag)}={raw!r} is not a valid {kind.__name__}") from exc
        if value is not None:
            values[key] = value
    if args.allow_private_addresses or _truthy(env.get("JOBQUEUE_ALLOW_PRIVATE_ADDRESSES", "")):
        values["allow_private_addresses"] = True
    networks = args.allow_network
    if networks is None and env.get("JOBQUEUE_ALLOW_NETWORK"):
        networks = [n for n in env["JOBQUEUE_ALLOW_NETWORK"].split(",") if n.strip()]
    if networks:
        values["allow_networks"] = tuple(n.strip() for n in networks)
    origins = args.allowed_origins if args.allowed_origins is not None else env.get("JOBQUEUE_ALLOWED_ORIGINS")
    if origins:
        values["allowed_origins"] = tuple(o.strip().rstrip("/") for o in origins.split(",") if o.strip())
    tokens = list(args.api_token or [])
    if not tokens and env.get("JOBQUEUE_API_TOKEN"):
        tokens = [t for t in env["JOBQUEUE_API_TOKEN"].split(",") if t.strip()]
    token_file = args.api_token_file or env.get("JOBQUEUE_API_TOKEN_FILE")
    if token_file:
        tokens += read_token_file(token_file)
    if tokens:
        values["api_tokens"] = tuple(t.strip() for t in tokens)
    readers = list(args.read_only_token or [])
    if not readers and env.get("JOBQUEUE_READ_ONLY_TOKEN"):
        readers = [t for t in env["JOBQUEUE_READ_ONLY_TOKEN"].split(",") if t.strip()]
    if readers:
        values["read_only_tokens"] = tuple(t.strip() for t in readers)
    settings = Settings(**values)  # type: ignore[arg-type]
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
    """Refuse settings that cannot work, with one sentence saying why."""
    positive = ("workers", "per_host", "max_attempts", "max_body_size", "max_request_size", "max_batch_request_size")
    for key in positive:
        if getattr(settings, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be at least 1")
    for key in ("connect_timeout", "fetch_timeout", "lease_seconds"):
        if getattr(settings, key) <= 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be greater than 0")
    if settings.read_only_tokens and not settings.api_tokens:
        raise ConfigError("--read-only-token needs at least one --api-token: without one every client may do "
                          "everything anyway")
    if set(settings.read_only_tokens) & set(settings.api_tokens):
        raise ConfigError("a token cannot be both an --api-token and a --read-only-token")
    for token in (*settings.api_tokens, *settings.read_only_tokens):
        if len(token) < 16 or any(c.isspace() for c in token):
            raise ConfigError("an API token must be at least 16 characters with no spaces "
                              "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if settings.rate_limit < 0 or settings.rate_burst < 1:
        raise ConfigError("--rate-limit must be 0 (off) or more, and --rate-burst at least 1")
    if settings.max_queued < 1 or settings.max_websockets < 1:
        raise ConfigError("--max-queued and --max-websockets must be at least 1")
    if settings.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("--log-level must be debug, info, warning or error")
    if settings.log_format not in ("text", "json"):
        raise ConfigError("--log-format must be text or json")
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"--port {settings.port} is not a TCP port (0-65535)")
    if settings.sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ConfigError("--sqlite-synchronous must be OFF, NORMAL, FULL or EXTRA")
    _validate_webhooks(settings)
    if settings.retention_days is not None and settings.retention_days <= 0:
        raise ConfigError("--retention-days must be above 0 (leave it out to keep everything)")
    if settings.keep_per_url < 0 or settings.min_every <= 0:
        raise ConfigError("--keep-per-url must be 0 or more, and --min-every above 0 seconds")
    if settings.max_schedules < 0:
        raise ConfigError("--max-schedules must be 0 (no limit) or more")
    try:
        backend_for(settings.database)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    _validate_processes(settings)


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


def _validate_processes(settings: Settings) -> None:
    count = settings.processes
    if count is None:
        return
    if count < 1:
        raise ConfigError("--processes must be at least 1")
    if count > 1 and not shares_database(settings.database):
        raise ConfigError(f"--processes {count} needs a database several processes can share (a SQLite file or "
                          "MongoDB); an in-memory SQLite database belongs to one process")
    if count > settings.workers:
        raise ConfigError(f"--processes {count} needs at least {count} --workers: the workers are split among "
                          "the processes and each fetches at least one job at a time")


def _validate_webhooks(settings: Settings) -> None:
    """The webhook options: a well-formed secret, a URL only with it, positive delays and limits."""
    if settings.webhook_secret is not None:
        try:
            WebhookSigner(settings.webhook_secret)
        except SecretError as exc:
            raise ConfigError(str(exc)) from None
    elif settings.webhook_url is not None:
        raise ConfigError("--webhook-url needs --webhook-secret=whsec_... to sign what it sends")
    try:
        delays = settings.retry_delays
    except ValueError:
        delays = ()
    if not delays or any(not 0 < d <= 7 * 24 * 3600 for d in delays) or len(delays) > 20:
        raise ConfigError("--webhook-retry-delays must be 1-20 comma-separated numbers of seconds, each above 0 "
                          "and at most a week (like 5,30,120)")
    if settings.webhook_concurrency < 1:
        raise ConfigError("--webhook-concurrency must be at least 1")
    if not 0 < settings.webhook_timeout <= 300:
        raise ConfigError("--webhook-timeout must be above 0 and at most 300 seconds")

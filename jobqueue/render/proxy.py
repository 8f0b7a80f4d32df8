"""The guard for the browser: a forwarding proxy (HTTP forward and CONNECT) that connects only where the
address policy allows.

Chromium resolves no names and connects to nothing itself: every request goes to this proxy, which
resolves the host, checks each address with `AddressPolicy.allows` and connects to an allowed address
as a literal, so the address checked is the address connected to. A refused request gets a 403 and no
byte goes to the refused address.

Each render gets its own `ProxySession`: its own listening port on 127.0.0.1 (a Playwright context
takes a proxy per context), so every connection that port accepts belongs to that render and its
refusals are counted there, with no credential to check and no 407 round trip. The proxy's default
port (the browser-wide `--proxy-server`) serves no render and refuses everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from jobqueue.addresses import AddressPolicy, parse_ip

log = logging.getLogger("jobqueue.render.proxy")

HEAD_LIMIT = 64 * 1024
_HOP_BY_HOP = frozenset({b"connection", b"proxy-connection", b"keep-alive", b"proxy-authorization",
                         b"proxy-authenticate", b"te", b"trailer", b"upgrade"})
_REFUSED_BODY = b"refused by jobqueue: not an allowed address\n"


@dataclass
class Refusal:
    """One request the guard refused: what it was for and the address it would have reached."""

    key: str  # "http://host:port/path" for a forwarded request, "host:port" for a tunnel
    address: str  # the first refused address ("" when the name did not resolve to any)


@dataclass(eq=False)
class ProxySession:
    """What one render's proxy port saw: its refusals and its upstream failures, by request key."""

    port: int = 0
    refusals: list[Refusal] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # key -> dns_error | connection_error | timeout
    connections: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def blocked_requests(self) -> int:
        """How many requests the guard refused for this render."""
        return len(self.refusals)

    @property
    def server(self) -> str:
        """The proxy URL a browser context is given."""
        return f"http://127.0.0.1:{self.port}"

    def refused(self, url: str) -> Refusal | None:
        """The refusal that stopped a request for `url`, if the guard refused it (tunnels match host:port)."""
        for key in request_keys(url):
            for refusal in self.refusals:
                if refusal.key == key:
                    return refusal
        return None

    def failure(self, url: str) -> str | None:
        """The error code of an upstream failure met by a request for `url`, if any."""
        for key in request_keys(url):
            if key in self.failures:
                return self.failures[key]
        return None


def request_keys(url: str) -> list[str]:
    """The keys under which the proxy files a request for `url`: the forwarded URL, or the tunnel."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    tunnel = f"{host}:{port}"
    if parts.scheme == "http":
        return [url.split("#", 1)[0], tunnel]
    return [tunnel]


class GuardProxy:
    """The forwarding proxy: one refuse-everything default port plus one port per render session."""

    def __init__(self, policy: AddressPolicy, connect_timeout: float = 10.0) -> None:
        self.policy = policy
        self.connect_timeout = connect_timeout
        self._default: ProxySession | None = None
        self.sessions: set[ProxySession] = set()
        self.stray_refusals = 0  # requests on the default port, which no render uses

    @property
    def default_server(self) -> str:
        """The browser-wide proxy URL: it serves no render and refuses every request."""
        assert self._default is not None, "start() the proxy first"
        return self._default.server

    async def start(self) -> None:
        """Open the default port."""
        self._default = await self._listen(None)

    async def stop(self) -> None:
        """Close every port and connection."""
        for session in list(self.sessions):
            await self.close_session(session)
        if self._default is not None:
            await self._close(self._default)
            self._default = None

    async def open_session(self) -> ProxySession:
        """A new port on 127.0.0.1 whose requests are all one render's."""
        session = await self._listen(ProxySession())
        self.sessions.add(session)
        return session

    async def close_session(self, session: ProxySession) -> None:
        """Close a render's port and every connection still open on it (websockets, slow bodies)."""
        self.sessions.discard(session)
        await self._close(session)

    async def _listen(self, session: ProxySession | None) -> ProxySession:
        owner = session if session is not None else ProxySession()
        serving = session

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            owner._writers.add(writer)
            owner.connections += 1
            try:
                await self._serve(serving, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                pass
            except Exception:  # a bug must not take the proxy down; the request just fails
                log.exception("proxy connection failed")
            finally:
                owner._writers.discard(writer)
                writer.close()

        owner._server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=HEAD_LIMIT)
        owner.port = owner._server.sockets[0].getsockname()[1]
        return owner

    @staticmethod
    async def _close(session: ProxySession) -> None:
        if session._server is not None:
            session._server.close()
        for writer in list(session._writers):
            writer.transport.abort()
        session._writers.clear()
        if session._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session._server.wait_closed(), 2)

    async def _serve(self, session: ProxySession | None, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, _, rest = head.partition(b"\r\n")
        method, target, version = line.decode("latin-1").split(" ", 2)
        headers = [h for h in rest.split(b"\r\n") if h]
        if method == "CONNECT":
            host, port = _split_authority(target, 443)
            key = f"{_bracket(host)}:{port}"
        else:
            parts = urlsplit(target)
            if parts.scheme != "http" or not parts.hostname:
                await _answer(writer, 400, b"only absolute http URLs and CONNECT are proxied\n")
                return
            host, port = parts.hostname, parts.port or 80
            key = target.split("#", 1)[0]
        if session is None:
            self.stray_refusals += 1
            log.debug("refused %s %s on the default port (no render uses it)", method, target)
            await _answer(writer, 403, _REFUSED_BODY)
            return
        upstream = await self._connect(session, key, host, port)
        if upstream is None:
            code = 502 if key in session.failures else 403
            await _answer(writer, code, _REFUSED_BODY if code == 403 else b"upstream unreachable\n")
            return
        up_reader, up_writer = upstream
        session._writers.add(up_writer)
        try:
            if method == "CONNECT":
                writer.write(f"{version} 200 Connection established\r\n\r\n".encode("latin-1"))
                await writer.drain()
                await _relay(reader, writer, up_reader, up_writer)
            elif not await _forward(method, target, version, headers, reader, writer, up_reader, up_writer):
                session.failures[key] = "connection_error"
                await _answer(writer, 502, b"the server closed the connection without an answer\n")
        finally:
            session._writers.discard(up_writer)
            up_writer.close()

    async def _connect(self, session: ProxySession, key: str, host: str,
                       port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Resolve `host` and connect to its first allowed address; record a refusal or a failure."""
        literal = parse_ip(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                session.failures[key] = "dns_error"
                return None
            addresses = list(dict.fromkeys(info[4][0] for info in infos))
        allowed = [a for a in addresses if self.policy.allows(a)]
        if not allowed:
            session.refusals.append(Refusal(key, addresses[0] if addresses else ""))
            return None
        code = "connection_error"
        for address in allowed:
            try:
                return await asyncio.wait_for(asyncio.open_connection(address, port, limit=HEAD_LIMIT),
                                              self.connect_timeout)
            except TimeoutError:
                code = "timeout"
            except OSError:
                code = "connection_error"
        session.failures[key] = code
        return None


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = authority.rpartition(":")
    if not sep:
        return authority, default_port
    return host, int(port)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _answer(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                 f"Connection: close\r\n\r\n".encode("latin-1") + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _forward(method: str, target: str, version: str, headers: list[bytes], reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                   up_writer: asyncio.StreamWriter) -> bool:
    """One request, then the connection closes: the client never sends a second request down a connection
    that reaches the first request's host (that would hand one site's cookies to another). False if the
    server sent nothing back."""
    parts = urlsplit(target)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kept = [h for h in headers if h.split(b":", 1)[0].strip().lower() not in _HOP_BY_HOP]
    up_writer.write(f"{method} {path} {version}\r\n".encode("latin-1") + b"\r\n".join(kept)
                    + b"\r\nConnection: close\r\n\r\n")
    await _forward_body(headers, reader, up_writer)
    await up_writer.drain()
    try:
        head = await up_reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return False
        writer.write(exc.partial)  # not HTTP/1.x: hand over what came, the browser judges it
        await writer.drain()
        return True
    status_line, _, rest = head[:-4].partition(b"\r\n")
    lines = [h for h in rest.split(b"\r\n") if h and h.split(b":", 1)[0].strip().lower() not in
             (b"connection", b"keep-alive", b"proxy-connection")]
    writer.write(b"\r\n".join([status_line, *lines, b"Connection: close"]) + b"\r\n\r\n")
    await _pump(up_reader, writer)
    return True


async def _forward_body(headers: list[bytes], reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    """Copy exactly the request's body (by Content-Length or chunked), nothing after it."""
    length, chunked = 0, False
    for h in headers:
        name, _, value = h.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            up_writer.write(size_line)
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers, then the empty line
                    trailer = await reader.readuntil(b"\r\n")
                    up_writer.write(trailer)
                    if trailer == b"\r\n":
                        return
            up_writer.write(await reader.readexactly(size + 2))
            await up_writer.drain()
    while length > 0:
        chunk = await reader.read(min(length, 65536))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", length)
        up_writer.write(chunk)
        length -= len(chunk)
        await up_writer.drain()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(65536):
        sink.write(chunk)
        await sink.drain()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up_reader: asyncio.StreamReader,
                 up_writer: asyncio.StreamWriter) -> None:
    """Both ways until either side closes, then both close."""
    tasks = [asyncio.ensure_future(_pump(reader, up_writer)), asyncio.ensure_future(_pump(up_reader, writer))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await task

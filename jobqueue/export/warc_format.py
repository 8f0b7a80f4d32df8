"""WARC/1.1 export through warcio: a warcinfo record, then a request and a response record per fetch (resource
records for a render: its DOM, its screenshot and PDF).

Each record is its own gzip member (the usual `.warc.gz` layout), so a reader can seek to any record
and an export cut short still yields every record written before the cut.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zlib
from datetime import UTC, datetime
from http import HTTPStatus
from urllib.parse import urlsplit

from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders
from warcio.timeutils import datetime_to_iso_date
from warcio.warcwriter import WARCWriter

from jobqueue import __version__
from jobqueue.export.walk import ExportItem
from jobqueue.fetcher import ACCEPT
from jobqueue.models import Result, Task

GZIP_LEVEL = 6  # warcio's own gzip uses 9: several times slower for a few percent
# The stored body is already decoded (curl undoes Content-Encoding and chunking), so headers that
# describe the bytes on the wire would make replay tools decode it a second time.
_WIRE_HEADERS = frozenset({"content-encoding", "transfer-encoding", "content-length"})
ARTIFACT_TYPES = {"screenshot": "image/png", "pdf": "application/pdf"}
_GET_AFTER = {301: ("POST",), 302: ("POST",), 303: ("GET", "POST")}  # redirects that turn the method into GET
RECONSTRUCTED = (
    "Each completed job has a request and a response record; jobs that did not complete have none. "
    "WARC-Target-URI is the final URL after redirects (the redirect hops are not recorded) and WARC-Date "
    "is when the fetch finished. The response record's status line and header lines are those received at "
    "fetch time (their order, case and repeats), except that Content-Encoding and Transfer-Encoding are left "
    "out and Content-Length is set to the stored length, because the stored payload is the decoded body. For "
    "a result stored before raw header lines were kept (an older release) the block is rebuilt from the "
    "stored status and headers instead: the status line says HTTP/1.1 with the standard reason phrase, "
    "header names are lower case and repeated headers are joined with ', '. The request record is rebuilt "
    "from the job's method, the final URL and "
    "the headers the job sent (Host, User-Agent, Accept, its own and its fetch profile's); the values of "
    "Authorization, Cookie and fetch-profile headers are replaced by ***. The payload digests are the "
    "sha256 recorded at fetch time. A job rendered in a browser has no request and response records (its body "
    "is not the bytes received but the DOM after the page's scripts ran): a resource record of the DOM "
    "(text/html; charset=utf-8) at its final URL, and, as Browsertrix writes them, a resource record for each "
    "capture, concurrent to it: urn:view:<url> for a screenshot of the viewport, urn:fullPage:<url> for a "
    "screenshot of the whole page (image/png), urn:pdf:<url> for a PDF (application/pdf)."
)


class WarcEncoder:
    """WARC/1.1, gzip per record, readable by warcio's ArchiveIterator and by replay tools."""

    media_type = "application/warc"
    extension = "warc.gz"
    with_body = True
    views: tuple[str, ...] | None = None  # readable views are a JSON Lines matter

    def __init__(self, filename: str, user_agent: str, query: str) -> None:
        self.filename = filename
        self.user_agent = user_agent
        self.query = query
        self._sink = io.BytesIO()
        self._writer = WARCWriter(self._sink, gzip=False, warc_version="1.1")
        self._info_id = ""

    def begin(self) -> bytes:
        """The warcinfo record: who wrote the file, from which query, and what in it is reconstructed."""
        record = self._writer.create_warcinfo_record(self.filename, {
            "software": f"jobqueue/{__version__} (warcio)",
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/",
            "http-header-user-agent": self.user_agent,
            "jobqueue-query": self.query or "all jobs",
            "description": RECONSTRUCTED,
        })
        self._info_id = record.rec_headers.get_header("WARC-Record-ID")
        return self._write(record)

    def encode(self, item: ExportItem) -> bytes:
        """A request and a response record for a completed fetch; nothing for any other job."""
        result = item.result
        if result is None or result.body is None:
            return b""
        date = _warc_date(result.fetched_at + result.elapsed_ms / 1000)
        if result.rendered:
            return self._rendered(item.task, result, date)
        response = self._response(item.task, result, date)
        request = self._request(item.task, result, date, response.rec_headers.get_header("WARC-Record-ID"))
        return self._write(request) + self._write(response)

    def end(self) -> bytes:
        """Nothing: a cut export is told apart by the connection closing without the end of the response."""
        return b""

    def _rendered(self, task: Task, result: Result, date: str) -> bytes:
        """A render: the DOM as a resource record at the final URL, then one resource record per capture."""
        dom = self._resource(task, result.final_url, date, result.content_type or "text/html; charset=utf-8",
                             result.body or b"")
        out = self._write(dom)
        full = task.render is not None and "screenshot_full" in task.render.capture
        for kind, data in sorted(result.artifacts.items()):
            scheme = "pdf" if kind == "pdf" else "fullPage" if full else "view"
            record = self._resource(task, f"urn:{scheme}:{result.final_url}", date, ARTIFACT_TYPES[kind], data)
            record.rec_headers.add_header("WARC-Concurrent-To", dom.rec_headers.get_header("WARC-Record-ID"))
            out += self._write(record)
        return out

    def _resource(self, task: Task, uri: str, date: str, media_type: str, payload: bytes) -> ArcWarcRecord:
        digest = _digest(hashlib.sha256(payload).digest())
        return self._writer.create_warc_record(uri, "resource", payload=io.BytesIO(payload), length=len(payload),
                                               warc_content_type=media_type, warc_headers_dict={
                                                   "WARC-Date": date,
                                                   "WARC-Warcinfo-ID": self._info_id,
                                                   "WARC-Payload-Digest": digest,
                                                   "WARC-Block-Digest": digest,
                                                   "JobQueue-Task-ID": task.id,
                                               })

    def _response(self, task: Task, result: Result, date: str) -> ArcWarcRecord:
        body = result.body or b""
        http = _received_headers(result.raw_headers, len(body)) if result.raw_headers else None
        if http is None:
            status = result.http_status
            headers = [(k, v) for k, v in result.headers.items() if k.lower() not in _WIRE_HEADERS]
            headers.append(("content-length", str(len(body))))
            http = StatusAndHeaders(f"{status} {_reason(status)}", headers, protocol="HTTP/1.1")
        return self._record("response", task, result.final_url, date, http, body, _payload_digest(result))

    def _request(self, task: Task, result: Result, date: str, response_id: str) -> ArcWarcRecord:
        method, body = _final_method(task, result)
        url = urlsplit(result.final_url)
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = [("Host", url.netloc.rpartition("@")[2]), ("User-Agent", task.fetch.user_agent or self.user_agent),
                   ("Accept", ACCEPT)]
        shown = task.fetch.to_json()["headers"]  # its own redaction: secrets and profile headers as ***
        if _origin(task.url) != _origin(result.final_url):  # the fetcher keeps these from other origins
            shown = {k: v for k, v in shown.items() if k.lower() in ("accept", "content-type")}
        headers = [h for h in headers if h[0].lower() not in {k.lower() for k in shown}] + list(shown.items())
        payload = (body or "").encode("utf-8")
        if payload:
            headers.append(("Content-Length", str(len(payload))))
        http = StatusAndHeaders(f"{method} {target} HTTP/1.1", headers, is_http_request=True)
        record = self._record("request", task, result.final_url, date, http, payload,
                              _digest(hashlib.sha256(payload).digest()))
        record.rec_headers.add_header("WARC-Concurrent-To", response_id)
        return record

    def _record(self, kind: str, task: Task, uri: str, date: str, http: StatusAndHeaders, payload: bytes,
                payload_digest: str) -> ArcWarcRecord:
        http.compute_headers_buffer()
        block = hashlib.sha256(http.headers_buff)
        block.update(payload)
        return self._writer.create_warc_record(uri, kind, payload=io.BytesIO(payload), length=len(payload),
                                               http_headers=http, warc_headers_dict={
                                                   "WARC-Date": date,
                                                   "WARC-Warcinfo-ID": self._info_id,
                                                   "WARC-Payload-Digest": payload_digest,
                                                   "WARC-Block-Digest": _digest(block.digest()),
                                                   "JobQueue-Task-ID": task.id,
                                               })

    def _write(self, record: ArcWarcRecord) -> bytes:
        self._writer.write_record(record)
        raw = self._sink.getvalue()
        self._sink.seek(0)
        self._sink.truncate()
        gzip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return gzip.compress(raw) + gzip.flush()


def _final_method(task: Task, result: Result) -> tuple[str, str | None]:
    """The method and body of the request that got the final response, as the fetcher changes them."""
    method, body = task.fetch.method, task.fetch.body
    for hop in result.redirects:
        if method in _GET_AFTER.get(hop.get("status", 0), ()):
            method, body = "GET", None
    return method, body


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _received_headers(raw: bytes, length: int) -> StatusAndHeaders | None:
    """The header block as received, minus what describes the wire encoding; None if it does not parse."""
    lines = raw.decode("iso-8859-1").split("\r\n")
    protocol, _, status = lines[0].partition(" ")
    if not protocol.startswith("HTTP/") or not status[:3].isdigit():
        return None
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip() and name.strip().lower() not in _WIRE_HEADERS:
            headers.append((name.strip(), value.strip()))
    headers.append(("Content-Length", str(length)))
    return StatusAndHeaders(status, headers, protocol=protocol)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _warc_date(ts: float) -> str:
    return datetime_to_iso_date(datetime.fromtimestamp(ts, UTC).replace(tzinfo=None), use_micros=True)


def _digest(raw: bytes) -> str:
    return "sha256:" + base64.b32encode(raw).decode("ascii")


def _payload_digest(result: Result) -> str:
    try:
        raw = bytes.fromhex(result.sha256)
    except ValueError:
        raw = b""
    if len(raw) != 32:  # no usable stored digest: compute it from the body
        raw = hashlib.sha256(result.body or b"").digest()
    return _digest(raw)

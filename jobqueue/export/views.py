"""Readable views in a JSON Lines export: which ones a line carries, and reading them through ReadableViews."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobqueue.errors import BadRequest
from jobqueue.models import Result, Task

if TYPE_CHECKING:  # the extraction stack loads only where a server wires it in
    from jobqueue.readable import ReadableViews

VIEWS = ("markdown", "text", "links", "metadata")  # the job spec's `formats`, in the order a line shows them


def parse_with(value: str | None) -> tuple[str, ...]:
    """The views `/export?with=markdown,text` asks of every job: comma-separated names of VIEWS (or `all`),
    checked before a byte is sent; absent or empty asks for none beyond each job's own `formats`."""
    if not value:
        return ()
    names = value.split(",")  # exactly as /openapi.json describes it: no spaces, no empty names
    if names == ["all"]:
        return VIEWS
    unknown = [name for name in names if name not in VIEWS]
    if unknown:
        raise BadRequest("invalid_format", f"with= takes {', '.join(VIEWS)} or all, comma-separated; "
                         f"not {unknown[0]!r}")
    return tuple(name for name in VIEWS if name in names)


def asked_of(task: Task, wanted: tuple[str, ...]) -> tuple[str, ...]:
    """The views one job's line carries: the export's `with=` and the job's own `formats`, in VIEWS order."""
    # `formats` is a Task field only once the service stores it; until then, a task asks for nothing itself
    own = getattr(task, "formats", None) or ()
    return tuple(name for name in VIEWS if name in wanted or name in own)


async def views_of(readable: ReadableViews, result: Result, names: tuple[str, ...]) -> dict[str, Any]:
    """The named views of one result as a line shows them; a body without any (binary, too slow, broken)
    gives each name null and `views_error` {code, message} saying why, rather than ending the export."""
    from jobqueue.extract import ExtractionFailed, ExtractionTimeout, NotHtml

    try:
        views = await readable.of(result)
    except (NotHtml, ExtractionTimeout, ExtractionFailed) as exc:
        return {**dict.fromkeys(names), "views_error": {"code": exc.code, "message": str(exc)}}
    shown = views.as_dict()
    return {name: shown[name] for name in names}

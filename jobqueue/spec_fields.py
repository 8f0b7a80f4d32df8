"""How one field of a job is declared, and everything read from its declaration.

`jobqueue.spec` declares each field once, as the metadata of its dataclass field (`declare`): the rule its
value obeys, its default, its query parameter, how it is stored and shown, and its description. Reading a
request (JSON or query parameters), storing and showing the fetch options, the reuse key and the OpenAPI
schemas all walk those declarations, so a new field is written in one place.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobqueue.errors import BadRequest, Code

if TYPE_CHECKING:
    from jobqueue.spec import SpecLimits

_DECLARED = "jobqueue.declared"
_SHOWN = 100  # characters of a bad query value quoted back in an error
_ABSENT = object()
BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
ONE_LINE = "^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$"  # BAD_VALUE as a JSON Schema pattern: no control character but tab
# HTTP sends header values as bytes: ours are encoded as Latin-1, so nothing past U+00FF can be sent
BEYOND_LATIN1 = re.compile(r"[^\x00-\xff]")


@dataclass(frozen=True)
class Reading:
    """What a rule may consult: the server's limits, where the value sits (`jobs[3].fetch.timeout`), the time of
    the request, and the fields of the same object read before it."""

    limits: SpecLimits
    where: str
    now: float
    before: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Rule:
    """What a field's value may be: how it is checked, typed from a query parameter, and described."""

    repeated = False  # as a query parameter it may be given several times, and is then a list

    def read(self, raw: Any, at: Reading) -> Any:
        """The checked, typed value of `raw`; BadRequest names `at.where` and what is expected."""
        raise NotImplementedError

    def schema(self, limits: SpecLimits) -> dict[str, Any]:
        """The JSON Schema of a given (non-null) value, its limits those of this server."""
        raise NotImplementedError

    def query_schema(self, limits: SpecLimits) -> dict[str, Any]:
        """The JSON Schema of the field as a query parameter."""
        return self.schema(limits)

    def from_query(self, name: str, values: list[str]) -> Any:
        """The query parameter's text typed as its JSON would be, for `read` to check."""
        return values if self.repeated else values[-1]


def _plain(number: float) -> float:
    return int(number) if float(number).is_integer() else number


@dataclass(frozen=True)
class Number(Rule):
    """A number from `low` to `high`; a bound given as a name is that attribute of the server's SpecLimits."""

    low: float | str
    high: float | str
    says: str  # what is expected, formatted with {low} and {high}
    whole: bool = False
    above: bool = False  # `low` itself is refused

    def bounds(self, limits: SpecLimits) -> tuple[float, float]:
        """(low, high) for this server."""
        low, high = (getattr(limits, b) if isinstance(b, str) else b for b in (self.low, self.high))
        return low, high

    def read(self, raw: Any, at: Reading) -> Any:
        low, high = self.bounds(at.limits)
        typed = is_int(raw) if self.whole else is_number(raw)
        if not typed or not (low < raw if self.above else low <= raw) or not raw <= high:
            raise BadRequest(Code.INVALID_FIELD, f"{at.where}: {self.says.format(low=low, high=high)}")
        return int(raw) if self.whole else float(raw)

    def schema(self, limits: SpecLimits) -> dict[str, Any]:
        low, high = self.bounds(limits)
        return {"type": "integer" if self.whole else "number",
                "exclusiveMinimum" if self.above else "minimum": _plain(low), "maximum": _plain(high)}

    def from_query(self, name: str, values: list[str]) -> Any:
        value = values[-1]
        text = value.strip()
        body = text[1:] if text.startswith("-") else text
        integer, _, fraction = body.partition(".")
        bad_fraction = bool(fraction) and (self.whole or not fraction.isdigit())
        if not text.isascii() or not integer.isdigit() or bad_fraction or len(text) > 20:
            raise BadRequest(Code.INVALID_FIELD, f"{name}: {value[:_SHOWN]!r} is not a "
                             f"{'whole ' if self.whole else ''}number")
        return int(text) if self.whole else float(text)


@dataclass(frozen=True)
class Flag(Rule):
    """true or false (`?name=true` in a query)."""

    def read(self, raw: Any, at: Reading) -> Any:
        if not isinstance(raw, bool):
            raise BadRequest(Code.INVALID_FIELD, f"{at.where}: must be true or false")
        return raw

    def schema(self, limits: SpecLimits) -> dict[str, Any]:
        return {"type": "boolean"}

    def from_query(self, name: str, values: list[str]) -> Any:
        if values[-1] not in ("true", "false"):
            raise BadRequest(Code.INVALID_FIELD, f"{name}: must be true or false")
        return values[-1] == "true"


@dataclass(frozen=True)
class Choice(Rule):
    """One of a few words, read without regard to case and kept in upper case."""

    words: tuple[str, ...]

    def read(self, raw: Any, at: Reading) -> Any:
        if not isinstance(raw, str) or raw.upper() not in self.words:
            raise BadRequest(Code.INVALID_FIELD, f"{at.where}: must be one of {', '.join(self.words)}")
        return raw.upper()

    def schema(self, limits: SpecLimits) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.words)}


@dataclass(frozen=True)
class HeaderText(Rule):
    """Text sent in a request header: 1 to `longest` characters on one line, each Latin-1."""

    longest: int

    def read(self, raw: Any, at: Reading) -> Any:
        if not isinstance(raw, str) or not 0 < len(raw) <= self.longest or BAD_VALUE.search(raw):
            raise BadRequest(Code.INVALID_FIELD, f"{at.where}: must be 1-{self.longest} characters, no control "
                             "characters")
        beyond = BEYOND_LATIN1.search(raw) if not raw.isascii() else None
        if beyond is not None:
            shown = beyond.group()
            raise BadRequest(Code.INVALID_FIELD, f"{at.where}: {shown!r} (U+{ord(shown):04X}) cannot be sent in a "
                             "header, whose values are Latin-1 (ISO-8859-1) bytes")
        return raw

    def schema(self, limits: SpecLimits) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "maxLength": self.longest, "pattern": ONE_LINE}


@dataclass(frozen=True)
class Checked(Rule):
    """A rule written as a function, for a value no generic rule describes (headers, times, tags)."""

    check: Callable[[Any, Reading], Any]
    shape: dict[str, Any]  # its JSON Schema
    query_shape: dict[str, Any] | None = None  # as a query parameter, when that differs
    repeated: bool = False

    def read(self, raw: Any, at: Reading) -> Any:
        return self.check(raw, at)

    def schema(self, limits: SpecLimits) -> dict[str, Any]:
        return dict(self.shape)

    def query_schema(self, limits: SpecLimits) -> dict[str, Any]:
        return dict(self.query_shape if self.query_shape is not None else self.shape)


@dataclass(frozen=True)
class Nested(Rule):
    """An object of declared fields (`fetch`), read key by key; an unknown key is refused."""

    cls: type
    noun: str  # what one key is called in errors: "fetch option"

    def read(self, raw: Any, at: Reading) -> Any:
        if not isinstance(raw, dict):
            raise BadRequest(Code.INVALID_FIELD, f"{at.where}: must be a JSON object")
        names = request_fields(self.cls)
        unknown = sorted(set(raw) - set(names))
        if unknown:
            raise BadRequest(Code.UNKNOWN_FIELD, f"{at.where}.{unknown[0]}: not a {self.noun}; the options are "
                             f"{', '.join(sorted(names))}")
        return self.cls(**read_fields(self.cls, raw, at))

    def schema(self, limits: SpecLimits) -> dict[str, Any]:
        return {"type": "object"}


@dataclass(frozen=True)
class Declared:
    """Everything said about one field besides its name, type and default."""

    rule: Rule | None  # None: not a request field but derived from the others (`derive`)
    doc: str = ""  # its description in the OpenAPI document
    nullable: bool = True  # a JSON null means "not given": the default
    query: str | None = None  # its query parameter beside a text/plain or form submission, if any
    offered: bool = True  # False: left out of the OpenAPI request schemas (docs/API.md describes it)
    store: Callable[[Any], Any] | None = None  # its JSON form (stored, and shown), when not the value itself
    load: Callable[[Any], Any] | None = None  # the value again from that form
    show: Callable[[Any, Any], Any] | None = None  # its API form, given the value and the whole object, when not
    # its JSON form
    shown_schema: dict[str, Any] | None = None  # the JSON Schema of the shown form, when not the value's
    answer: bool = False  # it changes what the fetch brings back, so it is part of the reuse key
    key: Callable[[Any], Any] | None = None  # its form in the reuse key, when not the value itself
    derive: Callable[[Mapping[str, Any], Reading], Any] | None = None


def declare(default: Any, rule: Rule | None = None, doc: str = "", **about: Any) -> Any:
    """A dataclass field carrying its declaration: `timeout: float | None = declare(None, Number(1, 300, ...))`."""
    return dataclasses.field(default=default, metadata={_DECLARED: Declared(rule, doc, **about)})


def declared(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Declared]]:
    """The declared fields of `cls`, in declaration order (the order they are read and shown in)."""
    for item in dataclasses.fields(cls):
        about = item.metadata.get(_DECLARED)
        if about is not None:
            yield item, about


def request_fields(cls: type) -> tuple[str, ...]:
    """The names a request may give for `cls`."""
    return tuple(item.name for item, about in declared(cls) if about.rule is not None)


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def read_fields(cls: type, raw: Mapping[str, Any], at: Reading) -> dict[str, Any]:
    """The keyword arguments of `cls` for the request fields in `raw`, each checked by its rule in turn."""
    values: dict[str, Any] = {}
    for item, about in declared(cls):
        if about.rule is None:
            if about.derive is not None:
                values[item.name] = about.derive(values, at)
            continue
        given = raw.get(item.name, _ABSENT)
        if given is _ABSENT or (given is None and about.nullable):
            values[item.name] = item.default
        else:
            values[item.name] = about.rule.read(given, Reading(at.limits, _at(at.where, item.name), at.now, values))
    return values


def query_form(cls: type, prefix: tuple[str, ...] = ()) -> dict[str, tuple[tuple[str, ...], Declared]]:
    """Query parameter name -> (path of the field it sets, its declaration), nested objects included."""
    out: dict[str, tuple[tuple[str, ...], Declared]] = {}
    for item, about in declared(cls):
        if isinstance(about.rule, Nested):
            out.update(query_form(about.rule.cls, (*prefix, item.name)))
        elif about.query is not None and about.rule is not None:
            out[about.query] = ((*prefix, item.name), about)
    return out


def value_schema(about: Declared, limits: SpecLimits, nullable: bool) -> dict[str, Any]:
    """The JSON Schema of a field's value (null allowed when `nullable`), without its description."""
    assert about.rule is not None
    schema = about.rule.schema(limits)
    if nullable and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    elif nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def stored_form(obj: Any) -> dict[str, Any]:
    """The declared fields of `obj` that differ from their defaults, in their stored JSON form."""
    out = {}
    for item, about in declared(type(obj)):
        value = getattr(obj, item.name)
        if value != item.default:
            out[item.name] = about.store(value) if about.store is not None else value
    return out


def from_stored_form(cls: type, stored: Mapping[str, Any]) -> Any:
    """An object of `cls` again from what `stored_form` wrote (an absent field has its default)."""
    values = {}
    for item, about in declared(cls):
        if item.name in stored:
            value = stored[item.name]
            values[item.name] = about.load(value) if about.load is not None else value
    return cls(**values)


def shown_form(obj: Any) -> dict[str, Any]:
    """Every request field of `obj` as the API shows it: its `show` form, else its JSON form."""
    out = {}
    for item, about in declared(type(obj)):
        if about.rule is not None:
            value = getattr(obj, item.name)
            out[item.name] = (about.show(value, obj) if about.show is not None
                              else about.store(value) if about.store is not None else value)
    return out


def is_int(value: Any) -> bool:
    """A whole number, as JSON Schema counts them (6.0 is one)."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A number that is not a boolean and not NaN."""
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value

"""Server options declared once, as fields of a settings dataclass; the command line, the JOBQUEUE_* variables,
the checks and the table of docs/configuration.md are all read from those fields.

A field is declared with `option(default, help, section, *checks, ...)`: its type is the field's annotation,
its flag is `--` + its name with dashes (unless `flag=` says otherwise) and its variable is JOBQUEUE_ + the
flag in upper case. jobqueue/config.py declares the server's; nothing else lists them.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from jobqueue import __version__

T = TypeVar("T")

# (flag, value) -> the sentence saying what is wrong, or None
Check = Callable[[str, Any], str | None]

# how a limit holds when --processes runs several fetching processes (the docs say it)
SPLIT = "split evenly among `--processes`"
SHARED = "counted in the database across every process (and every server) on it"
OWN = "each process's own"


class ConfigError(ValueError):
    """A setting that cannot work; the message says which and what to do."""


@dataclass(frozen=True)
class Option:
    """What a settings field needs besides its name, type and default to be a documented, checked option."""

    help: str  # one text for --help and the docs (backticks are dropped in --help)
    section: str  # the heading it is listed under in docs/configuration.md
    checks: tuple[Check, ...] = ()  # run in order on a value other than None; the first complaint wins
    flag: str = ""  # without the dashes; default: the field's name with dashes
    metavar: str | None = None
    repeatable: bool = False  # a tuple option whose flag may be given again (else one comma-separated value)
    item: Callable[[str], str] | None = None  # tidies each item of a tuple option
    shown_default: str | None = None  # the docs' words for a default that is unset or computed
    processes: str | None = None  # SPLIT, SHARED or OWN


def option(default: T, help: str, section: str, *checks: Check, **details: Any) -> T:
    """A settings field that is also a command-line option (typed as its default, for the type checker)."""
    return dataclasses.field(default=default, metadata={"option": Option(help, section, checks=checks, **details)})


@dataclass(frozen=True)
class Declared:
    """One option as the parser, the loader and the docs use it, resolved from its field."""

    name: str  # the field
    kind: type  # int, float, str, bool or tuple
    default: Any
    spec: Option

    @property
    def flag(self) -> str:
        """`--per-host`."""
        return "--" + (self.spec.flag or self.name.replace("_", "-"))

    @property
    def env(self) -> str:
        """JOBQUEUE_PER_HOST."""
        return "JOBQUEUE_" + self.flag[2:].upper().replace("-", "_")

    @property
    def dest(self) -> str:
        """The argparse attribute."""
        return self.flag[2:].replace("-", "_")

    def meaning(self) -> str:
        """The help, and how the option holds across --processes when it says."""
        return self.spec.help + (f"; {self.spec.processes}" if self.spec.processes else "")

    def shown_default(self) -> str:
        """The default as the docs show it: `value`, or words when it is unset or computed."""
        if self.spec.shown_default is not None:
            return self.spec.shown_default
        if self.default is None or self.default == ():
            return "none"
        if self.default is False:
            return "off"
        value = self.default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"`{str(value).replace(__version__, '<version>')}`"


def declared(settings_class: type) -> list[Declared]:
    """The options of a settings dataclass, in field order."""
    hints = typing.get_type_hints(settings_class)
    out = []
    for field in dataclasses.fields(settings_class):
        spec = field.metadata.get("option")
        if spec is not None:
            out.append(Declared(field.name, _kind(hints[field.name]), field.default, spec))
    return out


def _kind(hint: Any) -> type:
    """int, float, str, bool or tuple from an annotation such as `float | None` or `tuple[str, ...]`."""
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    kind = typing.get_origin(hint) or hint
    if kind not in (int, float, str, bool, tuple):
        raise TypeError(f"an option cannot be a {hint}")
    return kind


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


_FLAG_TYPES: dict[type, Callable[[str], Any]] = {int: _whole_number, float: _number, str: str, tuple: str}


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


def build_parser(options: list[Declared], prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A command line with one flag per option; every default is None, so an unset flag leaves the variable."""
    parser = _Parser(prog=prog, description=description, epilog=epilog)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt in options:
        group = groups.get(opt.spec.section) or groups.setdefault(opt.spec.section,
                                                                  parser.add_argument_group(opt.spec.section))
        text = _plain(opt.meaning())
        if opt.kind is bool:
            group.add_argument(opt.flag, action="store_true", default=None, help=text)
        elif opt.spec.repeatable:
            group.add_argument(opt.flag, action="append", default=None, metavar=opt.spec.metavar, help=text)
        else:
            group.add_argument(opt.flag, type=_FLAG_TYPES[opt.kind], default=None, metavar=opt.spec.metavar,
                               help=f"{text} (default: {_plain(opt.shown_default())})")
    parser.add_argument("--version", action="version", version=f"jobqueue {__version__}")
    return parser


def _plain(markdown: str) -> str:
    """Help text for argparse: no Markdown backticks, and its % escaped."""
    return markdown.replace("`", "").replace("%", "%%")


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _split(text: str) -> list[str]:
    return [part for part in text.split(",") if part.strip()]


def read_values(options: list[Declared], args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
    """The options set by a flag or, failing that, by their variable, keyed by field; unset ones are left out."""
    values: dict[str, Any] = {}
    for opt in options:
        given = getattr(args, opt.dest)
        raw = env.get(opt.env)
        if opt.kind is bool:
            value: Any = True if given or (raw is not None and _truthy(raw)) else None
        elif opt.kind is tuple:
            items = given if opt.spec.repeatable and given is not None else None
            if items is None:
                text = given if given is not None else raw
                items = _split(text) if text else []
            tidy = opt.spec.item or (lambda item: item)
            value = tuple(tidy(item.strip()) for item in items) if items else None
        elif given is not None:
            value = given
        elif raw is not None:
            try:
                value = opt.kind(raw)
            except ValueError as exc:
                raise ConfigError(f"{opt.env}={raw!r} is not a valid {opt.kind.__name__}") from exc
        else:
            value = None
        if value is not None:
            values[opt.name] = value
    return values


def check(options: list[Declared], settings: object) -> None:
    """Run each option's checks on its value (None is unset and skips them); ConfigError on the first complaint."""
    for opt in options:
        value = getattr(settings, opt.name)
        if value is None:
            continue
        for rule in opt.spec.checks:
            complaint = rule(opt.flag, value)
            if complaint is not None:
                raise ConfigError(complaint)


def rule(test: Callable[[Any], bool], message: str) -> Check:
    """A check that complains with `message` (which may name {flag} and {value}) when `test(value)` is false."""
    return lambda flag, value: None if test(value) else message.format(flag=flag, value=value)


def at_least(low: int) -> Check:
    """`--workers must be at least 1`."""
    return rule(lambda value: value >= low, "{flag} must be at least " + str(low))


def above_zero() -> Check:
    """`--fetch-timeout must be greater than 0`."""
    return rule(lambda value: value > 0, "{flag} must be greater than 0")


def each(item_check: Check) -> Check:
    """A check of every item of a tuple option."""
    def check_items(flag: str, values: tuple[Any, ...]) -> str | None:
        return next((c for c in (item_check(flag, v) for v in values) if c is not None), None)
    return check_items


def accepted_by(build: Callable[[Any], object], *errors: type[Exception]) -> Check:
    """A check that the value builds what will use it: the builder's error message is the complaint."""
    def check_builds(_flag: str, value: Any) -> str | None:
        try:
            build(value)
        except errors as exc:
            return str(exc)
        return None
    return check_builds


def markdown_tables(options: list[Declared]) -> str:
    """The options as one Markdown table per section, in order of first appearance (docs/configuration.md)."""
    sections: dict[str, list[Declared]] = {}
    for opt in options:
        sections.setdefault(opt.spec.section, []).append(opt)
    parts = []
    for section, members in sections.items():
        rows = [f"### {section}", "", "| option | default | variable | meaning |", "|---|---|---|---|"]
        for opt in members:
            name = f"`{opt.flag} {opt.spec.metavar}`" if opt.spec.metavar else f"`{opt.flag}`"
            rows.append(f"| {name} | {opt.shown_default()} | `{opt.env}` | {opt.meaning()} |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts) + "\n"

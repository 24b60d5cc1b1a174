"""One declaration per ``bourse serve`` option, from which everything a
user sees of it is derived: the command-line flag, the ``BOURSE_*``
environment variable, the default, the check of a given value, the
``--help`` line and the README's configuration table. Kept by hand in four
places, those copies drifted apart; derived from one, they cannot.

An option is declared on its ``ServerConfig`` field, as the field's
metadata (the field is made by ``setting(default, help, parse)``); this
module is the vocabulary of those declarations and what turns them into
argparse arguments and a markdown table. It imports only the standard
library, so the server's configuration can use it and ``bourse serve
--help`` stays fast.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

#: The metadata key under which a dataclass field carries its ``Option``.
OPTION = "bourse.option"

#: What every option's environment variable starts with.
ENVIRONMENT_PREFIX = "BOURSE_"

MAX_PORT = 65535

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Option:
    """How a user sets one setting. ``help`` is markdown (code in
    backticks): the README shows it as written, ``--help`` without the
    backticks. ``default_text`` says what the default is when its value
    alone would mislead (it depends on the machine, or ``0`` means off)."""

    help: str
    parse: Callable[[str], Any] = str
    #: The value may hold a secret (a password in a URL): never shown.
    secret: bool = False
    default_text: str | None = None


def setting(
    default: _T,
    help_text: str,
    parse: Callable[[str], Any] = str,
    *,
    secret: bool = False,
    default_text: str | None = None,
) -> _T:
    """A dataclass field that is a ``bourse serve`` option, and its default."""
    return field(default=default, metadata={OPTION: Option(help_text, parse, secret, default_text)})


def computed_setting(
    default: Callable[[], _T],
    help_text: str,
    parse: Callable[[str], Any] = str,
    *,
    default_text: str,
) -> _T:
    """An option whose default is computed on this machine when the field
    is made: ``default_text`` says in words what it is."""
    option = Option(help_text, parse, default_text=default_text)
    return field(default_factory=default, metadata={OPTION: option})


@dataclass(frozen=True, slots=True)
class Declared:
    """An option with its name and default: what a parser and the README
    table are built from."""

    name: str
    option: Option
    default: Any

    @property
    def flag(self) -> str:
        """``database_url`` is ``--database-url``."""
        return "--" + self.name.replace("_", "-")

    @property
    def variable(self) -> str:
        """``database_url`` is ``BOURSE_DATABASE_URL``."""
        return ENVIRONMENT_PREFIX + self.name.upper()


def declared_options(settings: type[Any]) -> tuple[Declared, ...]:
    """The fields of the dataclass ``settings`` that are options, in order."""
    return tuple(
        Declared(spec.name, spec.metadata[OPTION], _default_of(spec))
        for spec in fields(settings)
        if OPTION in spec.metadata
    )


def _default_of(spec: Field[Any]) -> Any:
    """The field's default; one computed on this machine must say in
    words what it is, or the README would depend on where it was written."""
    if spec.default_factory is MISSING:
        return spec.default
    if spec.metadata[OPTION].default_text is None:
        raise TypeError(f"option {spec.name} has a computed default but no default_text")
    return spec.default_factory()


# Value parsers: each turns a command-line or environment string into the
# field's value, or says why it cannot.


def count(text: str) -> int:
    """A whole number, zero or more."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a count: {text}")
    return value


def positive_count(text: str) -> int:
    """A whole number, one or more."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive count: {text}")
    return value


def tcp_port(text: str) -> int:
    """A TCP port, or 0 for any free one."""
    value = int(text)
    if not 0 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text}")
    return value


def port_or_off(text: str) -> int | None:
    """A TCP port, 0 for any free one, or ``off`` (None): no listener."""
    return None if text == "off" else tcp_port(text)


def number(text: str) -> float:
    """A number, zero or more (a rate, a burst)."""
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"not a number of zero or more: {text}")
    return value


def seconds(text: str) -> float:
    """A duration in seconds, zero or more."""
    return number(text)


def positive_seconds(text: str) -> float:
    """A duration in seconds, more than zero."""
    value = number(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"not a positive duration: {text}")
    return value


def networks(text: str) -> tuple[str, ...]:
    """``10.0.0.0/8,192.168.1.7`` as a tuple of networks, each checked."""
    given = tuple(part.strip() for part in text.split(",") if part.strip())
    for network in given:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
    return given


def switch(text: str) -> bool:
    """On or off: ``1``, ``true``, ``yes``, ``on`` or ``0``, ``false``,
    ``no``, ``off`` (in an environment variable; on the command line the
    flag alone turns it on and ``--no-…`` off)."""
    word = text.strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is neither on nor off")


class OneOf:
    """A parser that accepts only the given words."""

    def __init__(self, *words: str) -> None:
        self.words = words

    def __call__(self, text: str) -> str:
        if text not in self.words:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(self.words)}")
        return text


_METAVARS: dict[Callable[[str], Any], str] = {
    count: "N",
    positive_count: "N",
    tcp_port: "PORT",
    port_or_off: "PORT|off",
    number: "N",
    seconds: "SECONDS",
    positive_seconds: "SECONDS",
    networks: "CIDR[,CIDR…]",
    Path: "PATH",
}


def _metavar(parse: Callable[[str], Any]) -> str | None:
    """What ``--help`` shows after the flag; None: argparse's own choice."""
    if isinstance(parse, OneOf):
        return "{" + ",".join(parse.words) + "}"
    return _METAVARS.get(parse)


def add_options(parser: argparse.ArgumentParser, options: Iterable[Declared]) -> None:
    """A ``--flag`` for each option. Its default is the environment
    variable when set, else the declared default; argparse parses a
    variable's text as it would a command-line value, so a bad one is
    reported the same way, and only when the flag does not override it."""
    for declared in options:
        from_environment = os.environ.get(declared.variable)
        if declared.option.parse is switch:
            _add_switch(parser, declared, from_environment)
            continue
        parser.add_argument(
            declared.flag,
            type=declared.option.parse,
            default=declared.default if from_environment is None else from_environment,
            metavar=_metavar(declared.option.parse),
            help=_help_line(declared, from_environment),
        )


def _add_switch(
    parser: argparse.ArgumentParser, declared: Declared, from_environment: str | None
) -> None:
    """``--flag`` / ``--no-flag``; a bad environment value is reported as
    argparse reports a bad flag value."""
    default = declared.default
    if from_environment is not None:
        try:
            default = switch(from_environment)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"{declared.variable}: {exc}")
    parser.add_argument(
        declared.flag,
        action=argparse.BooleanOptionalAction,
        default=default,
        help=_help_line(declared, from_environment),
    )


def _help_line(declared: Declared, from_environment: str | None) -> str:
    """The help text, the default and the variable (with its value, when
    set and not secret)."""
    if from_environment is None:
        variable = declared.variable
    elif declared.option.secret:
        variable = f"{declared.variable}, set"
    else:
        variable = f"{declared.variable}, set to {from_environment}"
    default = _plain(default_text(declared))
    text = f"{_plain(declared.option.help)} (default {default}; env {variable})"
    return text.replace("%", "%%")  # argparse formats help with %


def _plain(markdown: str) -> str:
    """Markdown's code quotes dropped, for a terminal."""
    return markdown.replace("`", "")


def default_text(declared: Declared) -> str:
    """The default as the README shows it."""
    if declared.option.default_text is not None:
        return declared.option.default_text
    value = declared.default
    if value is None or value == ():
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def markdown_table(options: Iterable[Declared]) -> str:
    """The README's table of options: option, default, meaning."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for declared in options:
        cells = (f"`{declared.flag}`", default_text(declared), declared.option.help)
        rows.append("| " + " | ".join(cell.replace("|", r"\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"

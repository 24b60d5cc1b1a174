"""Options that stand for fields of a settings dataclass (``BenchSettings``,
``WorkloadShape``): the flag is the field's name, the type and the default
are its default's, so an option cannot drift from the setting it fills,
and the values parsed go back into the dataclass by the same names.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any


def add_field_options(
    parser: argparse.ArgumentParser, defaults: object, helps: Mapping[str, str]
) -> None:
    """A ``--field-name`` option for each field named in ``helps`` (field
    name → help text), typed and defaulted as that field is in
    ``defaults``; the help ends with the default."""
    for name, help_text in helps.items():
        default = getattr(defaults, name)
        if isinstance(default, bool) or not isinstance(default, int | float | str):
            raise TypeError(f"{name}: only int, float and str fields make a typed option")
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(default),
            default=default,
            help=help_text + " (%(default)s)",
        )


def field_values(args: argparse.Namespace, helps: Mapping[str, str]) -> dict[str, Any]:
    """The parsed values of the options ``add_field_options`` added for
    ``helps``, by field name (keyword arguments of the dataclass)."""
    return {name: getattr(args, name) for name in helps}

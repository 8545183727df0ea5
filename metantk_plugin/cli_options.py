"""Command-line options written from dataclass fields, so a command's defaults are the API's.

:func:`add_dataclass_arguments` adds one option per named field: the flag is
``--field-name`` (or the field's ``metadata['flag']``), the type and default are the
field's, and the help is ``metadata['help']`` followed by ``(default VALUE)``;
:func:`dataclass_values` reads the parsed values back by field name. This module
imports neither torch nor the package's heavy modules.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["add_dataclass_arguments", "dataclass_values", "option_flag"]

_TYPES = {"int": int, "float": float, "str": str}


def option_flag(field: dataclasses.Field) -> str:
    """The command-line flag of ``field``: ``metadata['flag']``, else ``--name-with-dashes``."""
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def _dest(field: dataclasses.Field) -> str:
    return option_flag(field).lstrip("-").replace("-", "_")


def _value_type(field: dataclasses.Field) -> type:
    """``int`` for a field annotated ``int`` or ``int | None`` (likewise float and str)."""
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    base = annotation.replace(" ", "").replace("|None", "")
    if base.startswith("Optional[") and base.endswith("]"):
        base = base[len("Optional["):-1]
    if base not in _TYPES:
        raise ValueError(f"field {field.name!r} has type {annotation!r}; options are written for int, float and str")
    return _TYPES[base]


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    settings: type,
    fields: Iterable[str] | None = None,
    *,
    help: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add the options of the ``fields`` (default: all) of the dataclass ``settings`` to
    ``parser`` (or an argument group), in that order. ``help`` replaces a field's help text; ``defaults``
    replaces a field's default where a command's settings differ from ``settings``'."""
    known = {f.name: f for f in dataclasses.fields(settings)}
    help, defaults = dict(help or {}), dict(defaults or {})
    for name in known if fields is None else fields:
        if name not in known:
            raise ValueError(f"{settings.__name__} has no field {name!r}")
        field = known[name]
        default = defaults.get(name, field.default)
        if default is dataclasses.MISSING:
            raise ValueError(f"field {name!r} of {settings.__name__} has no default to offer on the command line")
        text = help.get(name, field.metadata.get("help", ""))
        if default is not None and "default" not in text:
            text = f"{text} (default {default})"
        extra = {"metavar": field.metadata["metavar"]} if "metavar" in field.metadata else {}
        parser.add_argument(option_flag(field), type=_value_type(field), default=default, help=text, **extra)


def dataclass_values(args: argparse.Namespace, settings: type, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """``{field name: parsed value}`` for the ``fields`` (default: all) of ``settings`` that
    :func:`add_dataclass_arguments` added, e.g. ``TaskSpec(**dataclass_values(args, TaskSpec))``."""
    known = {f.name: f for f in dataclasses.fields(settings)}
    return {name: getattr(args, _dest(known[name])) for name in (known if fields is None else fields)}

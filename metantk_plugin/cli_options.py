"""Command-line options written from dataclass fields, so a command's defaults are the API's.

A settings dataclass declares each field that is an option with :func:`option` (its default
and the help of its option). :func:`add_dataclass_arguments` adds one option per named field
(by default, per field declared with :func:`option`): the flag is
``--field-name`` (or the field's ``metadata['flag']``), the type, default and choices are
the field's, a bool field that defaults to False is a switch, and the help is
``metadata['help']`` followed by ``(default VALUE)``; :func:`dataclass_values` reads the
parsed values back by field name. This module imports neither torch nor the package's
heavy modules.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["add_dataclass_arguments", "dataclass_values", "option", "option_flag"]

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def option(default: Any, help: str, *, flag: str | None = None, metavar: str | None = None,
           choices: Sequence[Any] | None = None) -> Any:
    """A dataclass field with the ``help`` (and ``flag``, ``metavar``, ``choices``) of its
    command-line option, which :func:`add_dataclass_arguments` writes."""
    cli = {"flag": flag, "metavar": metavar, "choices": choices}
    return dataclasses.field(default=default, metadata={"help": help, **{k: v for k, v in cli.items() if v}})


def option_flag(field: dataclasses.Field) -> str:
    """The command-line flag of ``field``: ``metadata['flag']``, else ``--name-with-dashes``."""
    return field.metadata.get("flag", "--" + field.name.replace("_", "-"))


def _dest(field: dataclasses.Field) -> str:
    return option_flag(field).lstrip("-").replace("-", "_")


def _value_type(field: dataclasses.Field) -> type:
    """``int`` for a field annotated ``int`` or ``int | None`` (likewise float, str and bool)."""
    annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    base = annotation.replace(" ", "").replace("|None", "")
    if base.startswith("Optional[") and base.endswith("]"):
        base = base[len("Optional["):-1]
    if base not in _TYPES:
        raise ValueError(f"field {field.name!r} has type {annotation!r}; options are written for int, float, str "
                         "and bool")
    return _TYPES[base]


def _option_names(settings: type) -> list[str]:
    """The fields of ``settings`` declared with :func:`option`, in order."""
    return [f.name for f in dataclasses.fields(settings) if "help" in f.metadata]


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    settings: type,
    fields: Iterable[str] | None = None,
    *,
    help: Mapping[str, str] | None = None,
    choices: Mapping[str, Sequence[Any]] | None = None,
) -> None:
    """Add the options of the ``fields`` of the dataclass ``settings`` (default: those declared
    with :func:`option`) to ``parser`` (or an argument group), in that order. ``help`` replaces
    a field's help text; ``choices`` gives a field's accepted values where its metadata cannot
    (their defining module imports torch)."""
    known = {f.name: f for f in dataclasses.fields(settings)}
    help, choices = dict(help or {}), dict(choices or {})
    for name in _option_names(settings) if fields is None else fields:
        if name not in known:
            raise ValueError(f"{settings.__name__} has no field {name!r}")
        field = known[name]
        if field.default is dataclasses.MISSING:
            raise ValueError(f"field {name!r} of {settings.__name__} has no default to offer on the command line")
        text = help.get(name, field.metadata.get("help", ""))
        value_type = _value_type(field)
        if value_type is bool:
            if field.default is not False:
                raise ValueError(f"field {name!r} of {settings.__name__} is a switch only when it defaults to False")
            parser.add_argument(option_flag(field), action="store_true", help=text)
            continue
        if field.default is not None and "default" not in text:
            text = f"{text} (default {field.default})"
        extra = {key: field.metadata[key] for key in ("metavar", "choices") if key in field.metadata}
        if name in choices:
            extra["choices"] = choices[name]
        parser.add_argument(option_flag(field), type=value_type, default=field.default, help=text, **extra)


def dataclass_values(args: argparse.Namespace, settings: type, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """``{field name: parsed value}`` for the ``fields`` of ``settings`` (default: those declared
    with :func:`option`) that :func:`add_dataclass_arguments` added, e.g.
    ``TaskSpec(**dataclass_values(args, TaskSpec))``."""
    known = {f.name: f for f in dataclasses.fields(settings)}
    return {name: getattr(args, _dest(known[name])) for name in (_option_names(settings) if fields is None else fields)}

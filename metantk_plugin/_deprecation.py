"""Renamed public names that keep working, with a DeprecationWarning, for one release."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def renamed(module: str, names: dict[str, str],
            fallback: Callable[[str], Any] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``names`` (old name -> its new dotted name, imported on
    first use), each access warning that the old name is deprecated; other names go to
    ``fallback`` (another module ``__getattr__``, such as a lazy re-export)."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            if fallback is not None:
                return fallback(name)
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new = names[name]
        warnings.warn(f"{module}.{name} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
        where, _, attribute = new.rpartition(".")
        return getattr(importlib.import_module(where), attribute)

    return __getattr__

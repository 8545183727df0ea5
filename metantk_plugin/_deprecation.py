"""Renamed public names that keep working, with a DeprecationWarning, for one release."""

from __future__ import annotations

import warnings
from collections.abc import Callable


def renamed(module: str, names: dict[str, tuple[str, object]]) -> Callable[[str], object]:
    """A module ``__getattr__`` serving ``names`` (old name -> (its new dotted name, the
    value)), each access warning that the old name is deprecated."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new, value = names[name]
        warnings.warn(f"{module}.{name} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
        return value

    return __getattr__

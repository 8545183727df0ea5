"""Package re-exports imported on first use, so that importing one light submodule (a
settings dataclass, a list of names) does not import torch through its package."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that answers each name of ``exports[submodule]``
    with the attribute of that name of ``package.submodule`` (imported then)."""
    modules = {name: f"{package}.{submodule}" for submodule, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(modules[name]), name)

    return __getattr__

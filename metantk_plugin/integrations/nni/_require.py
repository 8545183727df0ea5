"""Import NNI 3.0 on demand, with an error that says how to install it."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

__all__ = ["INSTALL_HINT", "require_nni"]

INSTALL_HINT = "pip install 'metantk-plugin[nni]'"


def require_nni(module: str = "nni") -> ModuleType:
    """``import module`` (an ``nni...`` module), or an ImportError naming the install command.

    NNI 3.0 needs three packages it does not declare (pytorch-lightning, peewee<4,
    setuptools<81); the ``nni`` extra pins them. The RuntimeWarnings NNI emits when it
    first wraps ``torch.nn`` (``torch.nn.Buffer`` and others are not modules) are harmless
    and muted: NNI's wrappers are imported here, with them, so that a later import of
    ``nni.nas`` by the user finds them done and prints nothing.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"nni\.nas\.nn\.pytorch\.layers")
            importlib.import_module("nni.nas.nn.pytorch")
            return importlib.import_module(module)
    except (ImportError, NameError) as exc:  # NNI's benchmark package raises NameError without peewee
        raise ImportError(
            f"metantk_plugin.integrations.nni needs NNI 3.0 ({module} failed to import: {exc}); "
            f"install it with: {INSTALL_HINT}"
        ) from exc

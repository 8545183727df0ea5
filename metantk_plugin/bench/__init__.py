"""Deprecated: ``metantk_plugin.bench`` is now :mod:`metantk_plugin.scoring` (and its
``scoring`` module is ``metantk_plugin.scoring.run``). The old imports keep working, with a
DeprecationWarning, for one release."""

from __future__ import annotations

import importlib
import sys
import warnings

warnings.warn("metantk_plugin.bench is deprecated; import metantk_plugin.scoring instead",
              DeprecationWarning, stacklevel=2)

_MOVED = {"architectures": "architectures", "correlation": "correlation", "executors": "executors",
          "plotting": "plotting", "report": "report", "scoring": "run", "settings": "settings", "store": "store"}

for _old, _new in _MOVED.items():
    sys.modules[f"{__name__}.{_old}"] = globals()[_old] = importlib.import_module(f"metantk_plugin.scoring.{_new}")

from metantk_plugin.scoring import *  # noqa: E402,F401,F403
from metantk_plugin.scoring import __all__  # noqa: E402,F401

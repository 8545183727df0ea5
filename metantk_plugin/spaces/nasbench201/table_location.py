"""Where the shared NAS-Bench-201 accuracy table ``nb201_accuracies.csv.gz`` is looked up:
the file named by ``$METANTK_NB201_CSV``, else ``shared/data/nasbench201/`` beside the
working directory, one of its parents or the source tree. Imports neither torch nor pandas."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CSV_ENV_VAR", "default_csv_path"]

CSV_ENV_VAR = "METANTK_NB201_CSV"
_SHARED_CSV = Path("shared") / "data" / "nasbench201" / "nb201_accuracies.csv.gz"


def default_csv_path() -> Path:
    """``$METANTK_NB201_CSV`` if set, else the first ``shared/data/nasbench201/nb201_accuracies.csv.gz``
    found beside the working directory or one of its parents (``../shared/...`` from a
    checkout) or beside the source tree (the last, when none exists)."""
    configured = os.environ.get(CSV_ENV_VAR)
    if configured:
        return Path(configured)
    cwd = Path.cwd().resolve()
    candidates = [folder / _SHARED_CSV for folder in (cwd, *cwd.parents)]
    candidates.append(Path(__file__).resolve().parents[4] / _SHARED_CSV)
    return next((c for c in candidates if c.is_file()), candidates[-1])

"""NAS-Bench-201 interop for NNI's ``nni.nas.hub.pytorch.NasBench201`` space.

NNI samples are ``{'cell/0_1': 'conv_3x3', ...}`` (key ``i_j`` = edge i -> j, NNI op
names); the benchmark speaks official strings ``|nor_conv_3x3~0|+|...|``. The codec is
the NAS-Bench-201 adapter's :class:`~metantk_plugin.spaces.nasbench201.NB201Arch`.
Accuracies come from :class:`~metantk_plugin.spaces.nasbench201.GroundTruth`: the shared
table by default, or NNI's own NAS-Bench-201 SQLite database when the user has one
(``python -m nni.nas.benchmark.download nasbench201`` puts it at
:func:`nni_database_path`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from metantk_plugin.integrations.nni._require import require_nni
from metantk_plugin.spaces.nasbench201 import GroundTruth, NB201Arch, parse_arch

__all__ = ["NNI_DATABASE_FILE", "nb201_accuracy", "nb201_ground_truth", "nni_database_path", "sample_from_string",
           "sample_to_string"]

NNI_DATABASE_FILE = "nasbench201-b2b60732.db"


def sample_to_string(sample: Mapping[str, str], label: str | None = "cell") -> str:
    """The official string of an NNI sample dict (keys ``label/i_j``; ``label=None`` for bare ``i_j``)."""
    return NB201Arch.from_nni(sample, label).to_string()


def sample_from_string(arch, label: str | None = "cell") -> dict[str, str]:
    """The NNI sample dict of an architecture given in any encoding (official string, index, ...)."""
    return parse_arch(arch).to_nni(label)


def nni_database_path() -> Path:
    """Where NNI keeps its NAS-Bench-201 database: ``$NASBENCHMARK_DIR``, else
    ``<NNI cache home>/nasbenchmark`` (``$NNI_HOME``, else ``$XDG_CACHE_HOME/nni``, else
    ``~/.cache/nni``), file :data:`NNI_DATABASE_FILE`."""
    blob_utils = require_nni("nni.common.blob_utils")
    folder = os.environ.get("NASBENCHMARK_DIR") or os.path.join(blob_utils.nni_cache_home(), "nasbenchmark")
    return Path(folder) / NNI_DATABASE_FILE


def nb201_ground_truth(source: str | Path | None = None) -> GroundTruth:
    """Accuracies from ``source``: None -> the shared CSV table (or ``$METANTK_NB201_CSV``);
    ``'nni'`` -> NNI's database at :func:`nni_database_path`; a path -> its format
    (``.db`` NNI database, ``.csv(.gz)``, ``.pth``, NATS-Bench)."""
    if isinstance(source, str) and source == "nni":
        path = nni_database_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"NNI's NAS-Bench-201 database is not at {path}; download it with "
                "'python -m nni.nas.benchmark.download nasbench201', set NASBENCHMARK_DIR to its folder, "
                "or pass the path of the .db file"
            )
        return GroundTruth.from_nni_database(path)
    return GroundTruth.open(source)


def nb201_accuracy(sample: Mapping[str, str], *, dataset: str = "cifar10", split: str = "test", epochs: int = 200,
                   label: str | None = "cell", ground_truth: GroundTruth | None = None) -> float:
    """Trained accuracy (percent, seed mean) of the cell an NNI sample selects."""
    truth = ground_truth if ground_truth is not None else nb201_ground_truth()
    return truth.accuracy(NB201Arch.from_nni(sample, label), dataset=dataset, split=split, epochs=epochs)

"""NAS-Bench-201: the 15,625-cell space, its exact networks and its trained accuracies.

* :mod:`.codec`: :class:`NB201Arch` and the official string / index, NNI and NASLib encodings.
* :mod:`.isomorphism`: the canonical form reproducing NATS-Bench's 6,466 classes.
* :mod:`.network`: :class:`NB201Network`, the official network (BatchNorm, GroupNorm or none).
* :mod:`.ground_truth`: :class:`GroundTruth`, accuracies from CSV, ``.pth``, NATS-Bench or NNI files.
"""

from __future__ import annotations

from metantk_plugin.spaces.nasbench201.accuracy_metrics import DATASETS, EPOCHS, SPLITS, Metric
from metantk_plugin.spaces.nasbench201.codec import (
    EDGES,
    NUM_ARCHITECTURES,
    OPERATIONS,
    NB201Arch,
    all_architectures,
    parse_arch,
)
from metantk_plugin.spaces.nasbench201.ground_truth import GroundTruth
from metantk_plugin.spaces.nasbench201.isomorphism import canonical_form, isomorphism_classes
from metantk_plugin.spaces.nasbench201.network import NORMS, NB201Network, build_network

__all__ = [
    "DATASETS",
    "EDGES",
    "EPOCHS",
    "NORMS",
    "NUM_ARCHITECTURES",
    "OPERATIONS",
    "SPLITS",
    "GroundTruth",
    "Metric",
    "NB201Arch",
    "NB201Network",
    "all_architectures",
    "build_network",
    "canonical_form",
    "isomorphism_classes",
    "parse_arch",
]

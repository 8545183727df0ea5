"""NAS-Bench-201: the 15,625-cell space, its exact networks and its trained accuracies.

* :mod:`.codec`: :class:`NB201Arch` and the official string / index, NNI and NASLib encodings.
* :mod:`.isomorphism`: the canonical form reproducing NATS-Bench's 6,466 classes.
* :mod:`.network`: :class:`NB201Network`, the official network (BatchNorm, GroupNorm or none).
* :mod:`.ground_truth`: :class:`GroundTruth`, accuracies from CSV, ``.pth``, NATS-Bench or NNI files.

The names below are imported on first use, so that the light modules (:mod:`.accuracy_metrics`,
:mod:`.table_location`) import no torch.
"""

from __future__ import annotations

from metantk_plugin._lazy import lazy_exports

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

__getattr__ = lazy_exports(__name__, {
    "accuracy_metrics": ("DATASETS", "EPOCHS", "SPLITS", "Metric"),
    "codec": ("EDGES", "NUM_ARCHITECTURES", "OPERATIONS", "NB201Arch", "all_architectures", "parse_arch"),
    "ground_truth": ("GroundTruth",),
    "isomorphism": ("canonical_form", "isomorphism_classes"),
    "network": ("NORMS", "NB201Network", "build_network"),
})

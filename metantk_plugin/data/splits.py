"""Class-level operations on :class:`LabelledImages`: disjoint class splits, class
subsets and rotated copies of classes as new classes."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from metantk_plugin.data.images import LabelledImages

__all__ = ["select_classes", "shuffled_class_split", "split_counts", "with_rotated_classes"]


def split_counts(n_classes: int, fractions: Sequence[float]) -> list[int]:
    """Class counts for the leading splits, ``round(n * f)`` each; the last split takes the rest.

    Example: 242 classes with fractions (40/242, 40/242) for val and test give [40, 40]."""
    counts = [int(round(n_classes * f)) for f in fractions]
    if any(c < 1 for c in counts) or sum(counts) >= n_classes:
        raise ValueError(f"cannot split {n_classes} classes into fractions {list(fractions)} plus a rest")
    return counts


def shuffled_class_split(class_names: Sequence[str], counts: Sequence[int], seed: int = 0) -> list[list[int]]:
    """Disjoint class-id lists: the names are sorted, shuffled with ``random.Random(seed)``,
    and cut into consecutive pieces of ``counts`` classes (the pieces cover all classes).

    Returns the class ids (indices into ``class_names``) of each piece in shuffled order."""
    if sum(counts) != len(class_names) or any(int(c) < 1 for c in counts):
        raise ValueError(f"split counts {list(counts)} must be positive and sum to {len(class_names)} classes")
    if len(set(class_names)) != len(class_names):
        raise ValueError("class names must be distinct to define a split")
    order = sorted(range(len(class_names)), key=lambda i: class_names[i])
    keys = [class_names[i] for i in order]
    random.Random(seed).shuffle(keys)
    position = {name: i for i, name in enumerate(class_names)}
    pieces, start = [], 0
    for count in counts:
        pieces.append([position[name] for name in keys[start:start + int(count)]])
        start += int(count)
    return pieces


def select_classes(data: LabelledImages, class_ids: Sequence[int]) -> LabelledImages:
    """The images of ``class_ids`` only, relabelled ``0..len(class_ids)-1`` in the given order."""
    class_ids = [int(c) for c in class_ids]
    if len(set(class_ids)) != len(class_ids):
        raise ValueError("class_ids must be distinct")
    missing = sorted(set(class_ids) - set(data.classes.tolist()))
    if missing:
        raise ValueError(f"class ids {missing[:10]} are not in the data (it has {len(data.classes)} classes)")
    new_label = np.full(int(data.labels.max()) + 1, -1, dtype=np.int64)
    new_label[class_ids] = np.arange(len(class_ids))
    keep = np.flatnonzero(new_label[data.labels] >= 0)
    names = [data.class_names[c] for c in class_ids] if data.class_names else []
    return LabelledImages(data.images[keep], new_label[data.labels[keep]], names)


def with_rotated_classes(data: LabelledImages, quarter_turns: Sequence[int] = (1, 2, 3)) -> LabelledImages:
    """The classes plus, for each ``k`` in ``quarter_turns``, every class rotated by k x 90
    degrees as a new class (ids shifted by ``C * (position + 1)`` for C classes), as in the
    Omniglot protocol of Santoro et al. / Finn et al. Images must be square."""
    if data.images.shape[1] != data.images.shape[2]:
        raise ValueError(f"rotating classes needs square images, got {data.images.shape[1:3]}")
    n_classes = int(data.labels.max()) + 1
    images, labels = [data.images], [data.labels]
    names = list(data.class_names) if data.class_names else [str(c) for c in range(n_classes)]
    all_names = list(names)
    for position, k in enumerate(quarter_turns):
        if int(k) % 4 == 0:
            raise ValueError(f"quarter_turns must not contain multiples of 4, got {list(quarter_turns)}")
        images.append(np.ascontiguousarray(np.rot90(data.images, k=int(k), axes=(1, 2))))
        labels.append(data.labels + n_classes * (position + 1))
        all_names += [f"{name}@rot{90 * (int(k) % 4)}" for name in names]
    return LabelledImages(np.concatenate(images), np.concatenate(labels), all_names)

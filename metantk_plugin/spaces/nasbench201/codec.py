"""Encodings of a NAS-Bench-201 cell: the official string, the official index, NNI 3.0
sample dicts and NASLib op-index tuples, all exact and invertible.

A cell is a DAG on nodes 0 (input) .. 3 (output) with one operation on each of the six
edges ``i -> j`` (i < j). :class:`NB201Arch` holds the six operations in the official
edge order ``0->1, 0->2, 1->2, 0->3, 1->3, 2->3``.

The official index (0..15624, the ``index`` of NAS-Bench-201 / NATS-Bench tss) is the
position of a cell in this list: enumerate all 5^6 cells lexicographically (first edge
most significant, operations in :data:`OPERATIONS` order), then shuffle the list with
the Fisher-Yates shuffle driven by Python's Mersenne Twister seeded with 88 (exactly
``random.Random(88).shuffle``). The tests check this rule against all 15,625 rows of the
shared ground-truth table.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from metantk_plugin.user_input import quoted

__all__ = [
    "EDGES",
    "NASLIB_EDGES",
    "NASLIB_OPERATIONS",
    "NNI_OPERATIONS",
    "NUM_ARCHITECTURES",
    "OPERATIONS",
    "STRING_FORM",
    "NB201Arch",
    "all_architectures",
    "parse_arch",
]

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""Official operation names, in the official order (the lexicographic digit order)."""

EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""Official edge order ``(source, target)``: the order of the tokens in the string."""

NUM_ARCHITECTURES = len(OPERATIONS) ** len(EDGES)

NNI_OPERATIONS = {
    "none": "none",
    "skip_connect": "skip_connect",
    "nor_conv_1x1": "conv_1x1",
    "nor_conv_3x3": "conv_3x3",
    "avg_pool_3x3": "avg_pool_3x3",
}
"""Official name -> NNI 3.0 name (``nni.nas.hub.pytorch.NasBench201``)."""

NASLIB_OPERATIONS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
"""NASLib op index -> official name (NASLib's own order, not the official one)."""

NASLIB_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
"""NASLib tuple position -> official edge. NASLib numbers the nodes 1..4, so its edges
``(1,2), (1,3), (1,4), (2,3), (2,4), (3,4)`` are these shifted by one."""

STRING_FORM = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"

_OFFICIAL_SHUFFLE_SEED = 88
_OPS_HINT = ", ".join(OPERATIONS)
_NNI_HINT = ", ".join(NNI_OPERATIONS.values())
_FROM_NNI = {nni: official for official, nni in NNI_OPERATIONS.items()}
_NASLIB_FORM = (
    f"a tuple of {len(NASLIB_EDGES)} ints in 0..{len(NASLIB_OPERATIONS) - 1} ("
    + ", ".join(f"{code}={name}" for code, name in enumerate(NASLIB_OPERATIONS))
    + f") on the edges {', '.join(f'{s + 1}->{t + 1}' for s, t in NASLIB_EDGES)} of NASLib's nodes 1..4"
)


@dataclass(frozen=True)
class NB201Arch:
    """A NAS-Bench-201 cell: ``ops[k]`` is the official operation name on ``EDGES[k]``."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        ops = self.ops
        if not isinstance(ops, (tuple, list)):
            raise ValueError(
                f"NB201Arch needs a tuple of {len(EDGES)} operation names in the edge order "
                f"{_edges_text(EDGES)}; got {type(ops).__name__} {quoted(ops)}"
            )
        if len(ops) != len(EDGES):
            raise ValueError(
                f"NB201Arch needs {len(EDGES)} operations (edges {_edges_text(EDGES)}), got {len(ops)}: {quoted(ops)}"
            )
        for (source, target), op in zip(EDGES, ops):
            if not isinstance(op, str) or op not in OPERATIONS:
                raise ValueError(
                    f"unknown operation {quoted(op)} on edge {source}->{target}; expected one of {_OPS_HINT}"
                )
        object.__setattr__(self, "ops", tuple(ops))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_string(cls, text: str) -> NB201Arch:
        """Parse an official string such as ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
        return cls(_parse_string(text))

    @classmethod
    def from_index(cls, index: int) -> NB201Arch:
        """The cell at an official index 0..15624."""
        index = _as_int(index, "an architecture index", f"an int in 0..{NUM_ARCHITECTURES - 1}")
        if not 0 <= index < NUM_ARCHITECTURES:
            raise ValueError(f"architecture index {index} is out of range; expected 0..{NUM_ARCHITECTURES - 1}")
        return cls(_ops_of_rank(_official_order()[0][index]))

    @classmethod
    def from_nni(cls, sample: Mapping[str, str], label: str | None = "cell") -> NB201Arch:
        """Read an NNI 3.0 sample dict ``{'cell/0_1': 'conv_3x3', ...}``.

        ``label`` is the label of the cell choices (``'cell'`` in NNI's ``NasBench201``);
        ``None`` reads bare keys ``'0_1'`` as used by NNI's benchmark database. Keys outside
        ``label/`` (other choices of a larger space) are ignored."""
        return cls(_parse_nni(sample, label))

    @classmethod
    def from_naslib(cls, op_indices) -> NB201Arch:
        """Read a NASLib op-index tuple (6 ints in 0..4, NASLib's edge and op orders)."""
        return cls(_parse_naslib(op_indices))

    # ------------------------------------------------------------------ encodings
    def to_string(self) -> str:
        """The official string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        by_edge = dict(zip(EDGES, self.ops))
        groups = [
            "|" + "|".join(f"{by_edge[(source, target)]}~{source}" for source in range(target)) + "|"
            for target in (1, 2, 3)
        ]
        return "+".join(groups)

    @property
    def index(self) -> int:
        """The official index 0..15624."""
        return _official_order()[1][_rank_of_ops(self.ops)]

    def to_nni(self, label: str | None = "cell") -> dict[str, str]:
        """NNI 3.0 sample dict ``{'cell/0_1': 'conv_3x3', ...}`` (bare ``'0_1'`` keys if ``label`` is None)."""
        prefix = _nni_prefix(label)
        return {f"{prefix}{source}_{target}": NNI_OPERATIONS[op] for (source, target), op in zip(EDGES, self.ops)}

    def to_naslib(self) -> tuple[int, ...]:
        """NASLib op-index tuple (edge order :data:`NASLIB_EDGES`, op order :data:`NASLIB_OPERATIONS`)."""
        by_edge = dict(zip(EDGES, self.ops))
        return tuple(NASLIB_OPERATIONS.index(by_edge[edge]) for edge in NASLIB_EDGES)

    def op(self, source: int, target: int) -> str:
        """The operation on edge ``source -> target``."""
        try:
            return self.ops[EDGES.index((source, target))]
        except ValueError:
            raise ValueError(f"no edge {quoted(source)}->{quoted(target)}; edges are {_edges_text(EDGES)}") from None

    def __str__(self) -> str:
        return self.to_string()


def parse_arch(value, *, nni_label: str | None = "cell") -> NB201Arch:
    """An :class:`NB201Arch` from any encoding: an ``NB201Arch``, an official string, an
    official index, an NNI sample dict (with choice label ``nni_label``) or a NASLib tuple."""
    if isinstance(value, NB201Arch):
        return value
    if isinstance(value, str):
        return NB201Arch.from_string(value)
    if isinstance(value, Mapping):
        return NB201Arch.from_nni(value, nni_label)
    if isinstance(value, (tuple, list, np.ndarray)):
        return NB201Arch.from_naslib(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return NB201Arch.from_index(value)
    raise ValueError(
        f"cannot read a NAS-Bench-201 architecture from {type(value).__name__} {quoted(value)}; expected an "
        f"official string {STRING_FORM}, an index 0..{NUM_ARCHITECTURES - 1}, an NNI sample dict or a "
        "NASLib op-index tuple"
    )


@lru_cache(maxsize=1)
def all_architectures() -> tuple[NB201Arch, ...]:
    """All 15,625 cells in official index order (``all_architectures()[i].index == i``)."""
    return tuple(NB201Arch(_ops_of_rank(rank)) for rank in _official_order()[0])


# ---------------------------------------------------------------------- official order
@lru_cache(maxsize=1)
def _official_order() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(rank_at_index, index_of_rank)``: the seeded Fisher-Yates shuffle of the lexicographic ranks."""
    ranks = list(range(NUM_ARCHITECTURES))
    rng = random.Random(_OFFICIAL_SHUFFLE_SEED)
    for i in range(len(ranks) - 1, 0, -1):
        j = _uniform_below(rng, i + 1)
        ranks[i], ranks[j] = ranks[j], ranks[i]
    index_of_rank = [0] * NUM_ARCHITECTURES
    for index, rank in enumerate(ranks):
        index_of_rank[rank] = index
    return tuple(ranks), tuple(index_of_rank)


def _uniform_below(rng: random.Random, n: int) -> int:
    """Uniform integer in ``[0, n)`` by rejection on ``n.bit_length()`` random bits (CPython's rule)."""
    bits = n.bit_length()
    draw = rng.getrandbits(bits)
    while draw >= n:
        draw = rng.getrandbits(bits)
    return draw


def _rank_of_ops(ops: tuple[str, ...]) -> int:
    """Lexicographic rank: the ops as base-5 digits, first edge most significant."""
    rank = 0
    for op in ops:
        rank = rank * len(OPERATIONS) + OPERATIONS.index(op)
    return rank


def _ops_of_rank(rank: int) -> tuple[str, ...]:
    digits = []
    for _ in EDGES:
        rank, digit = divmod(rank, len(OPERATIONS))
        digits.append(OPERATIONS[digit])
    return tuple(reversed(digits))


# ---------------------------------------------------------------------- parsers
def _parse_string(text) -> tuple[str, ...]:
    if not isinstance(text, str):
        raise ValueError(f"an architecture string must be a str, got {type(text).__name__} {quoted(text)}")

    def fail(problem: str) -> ValueError:
        return ValueError(
            f"bad NAS-Bench-201 architecture string {quoted(text)}: {problem}; expected the form "
            f"{STRING_FORM} with op one of {_OPS_HINT}"
        )

    groups = text.split("+")
    if len(groups) != 3:
        raise fail(f"found {len(groups)} node groups separated by '+', expected 3")
    by_edge = {}
    for target, group in enumerate(groups, start=1):
        if len(group) < 2 or not group.startswith("|") or not group.endswith("|"):
            raise fail(f"the group of node {target}, {quoted(group)}, must start and end with '|'")
        tokens = group[1:-1].split("|")
        if len(tokens) != target:
            raise fail(f"the group of node {target}, {quoted(group)}, has {len(tokens)} edges, expected {target}")
        for source, token in enumerate(tokens):
            op, tilde, node = token.partition("~")
            if not tilde:
                raise fail(f"token {quoted(token)} has no '~' between the operation and its source node")
            if op not in OPERATIONS:
                raise fail(f"unknown operation {quoted(op)} in token {quoted(token)}")
            if node != str(source):
                raise fail(
                    f"token {quoted(token)} names source node {quoted(node)}, but token {source + 1} of node "
                    f"{target}'s group must come from node {source}"
                )
            by_edge[(source, target)] = op
    return tuple(by_edge[edge] for edge in EDGES)


def _parse_nni(sample, label) -> tuple[str, ...]:
    prefix = _nni_prefix(label)
    expected_keys = [f"{prefix}{source}_{target}" for source, target in EDGES]
    expected_text = ", ".join(f"{key!r}: op" for key in expected_keys)
    if not isinstance(sample, Mapping):
        raise ValueError(
            f"an NNI sample must be a dict {{{expected_text}}}; got {type(sample).__name__} {quoted(sample)}"
        )
    own = [key for key in sample if not prefix or (isinstance(key, str) and key.startswith(prefix))]
    for key in own:
        if key not in expected_keys:
            raise ValueError(
                f"unexpected key {key!r} in NNI sample; expected exactly the keys {', '.join(expected_keys)} "
                f"(choice label {quoted(label)})"
            )
    missing = [key for key in expected_keys if key not in sample]
    if missing:
        raise ValueError(
            f"NNI sample lacks the key(s) {', '.join(map(repr, missing))}; expected {{{expected_text}}} "
            f"(choice label {quoted(label)}; pass the label your space gives the cell choices, or None for bare keys)"
        )
    ops = []
    for key in expected_keys:
        value = sample[key]
        if not isinstance(value, str) or value not in _FROM_NNI:
            raise ValueError(
                f"unknown NNI operation {quoted(value)} for key {quoted(key)}; expected one of {_NNI_HINT}"
            )
        ops.append(_FROM_NNI[value])
    return tuple(ops)


def _parse_naslib(op_indices) -> tuple[str, ...]:
    if isinstance(op_indices, np.ndarray):
        if op_indices.ndim != 1:
            raise ValueError(
                f"a NASLib op-index array must be 1-D, got shape {op_indices.shape}; expected {_NASLIB_FORM}"
            )
        op_indices = op_indices.tolist()
    if not isinstance(op_indices, (tuple, list)):
        raise ValueError(
            f"NASLib op indices must be {_NASLIB_FORM}; got {type(op_indices).__name__} {quoted(op_indices)}"
        )
    if len(op_indices) != len(NASLIB_EDGES):
        raise ValueError(
            f"NASLib op indices {quoted(op_indices)} have {len(op_indices)} entries; expected {_NASLIB_FORM}"
        )
    by_edge = {}
    for position, (edge, value) in enumerate(zip(NASLIB_EDGES, op_indices)):
        code = _as_int(value, f"NASLib op index at position {position}", _NASLIB_FORM)
        if not 0 <= code < len(NASLIB_OPERATIONS):
            raise ValueError(f"NASLib op index {code} at position {position} is out of range; expected {_NASLIB_FORM}")
        by_edge[edge] = NASLIB_OPERATIONS[code]
    return tuple(by_edge[edge] for edge in EDGES)


def _as_int(value, what: str, expected: str) -> int:
    """``value`` as a Python int; bools, floats and strings are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an int, got {type(value).__name__} {quoted(value)}; expected {expected}")
    return operator.index(value)


def _nni_prefix(label) -> str:
    if label is None:
        return ""
    if not isinstance(label, str) or not label:
        raise ValueError(f"an NNI choice label must be a non-empty str or None, got {quoted(label)}")
    return f"{label}/"


def _edges_text(edges) -> str:
    return ", ".join(f"{source}->{target}" for source, target in edges)

"""Canonical form of a NAS-Bench-201 cell: cells with equal forms compute the same
function family, and the partition it induces on the 15,625 cells is exactly the 6,466
classes of NATS-Bench's ``get_unique_str`` (the ``iso_class`` column of the shared table).

The form is an expression string built node by node in topological order. The input
node 0 is written ``0``. An edge ``i -> j`` with operation ``op`` contributes the term

* ``#`` (zero) if ``op`` is ``none`` or if node ``i``'s string is exactly ``#``;
* node ``i``'s string itself if ``op`` is ``skip_connect``;
* ``(<node i>)@op`` otherwise.

Node ``j`` is its terms sorted as strings and joined with ``+`` (addition commutes); the
form of the cell is the string of the output node 3, so edges that cannot reach the
output do not matter.

The classes are those of the *strings*, so the exact characters matter; they were
checked against all 15,625 rows. The rule is finer than full functional equivalence in
three ways, all needed to reproduce the table: zero terms stay in a sum (``#+0`` differs
from ``0``); a node summing several zero terms (``#+#``) is not treated as zero by the
edges leaving it; and a skip edge inserts the source's whole sum as one sorted term, not
merged into the target's sum. Because of that last point, which cells share a string
depends on the sort order of the symbols: the same rule written with ``x`` for the input,
``0`` for zero and ``op(...)`` for terms gives 6,344 classes instead of 6,466.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from metantk_plugin.spaces.nasbench201.codec import EDGES, all_architectures, parse_arch

__all__ = ["canonical_form", "isomorphism_classes"]

_INPUT = "0"
_ZERO = "#"


def canonical_form(arch) -> str:
    """The canonical string of the cell's output, e.g. ``'(0)@nor_conv_3x3+0'``.

    ``arch`` is anything :func:`~metantk_plugin.spaces.nasbench201.codec.parse_arch` reads."""
    ops = dict(zip(EDGES, parse_arch(arch).ops))
    nodes = [_INPUT]
    for target in (1, 2, 3):
        terms = [_term(ops[(source, target)], nodes[source]) for source in range(target)]
        nodes.append("+".join(sorted(terms)))
    return nodes[3]


@lru_cache(maxsize=1)
def isomorphism_classes() -> np.ndarray:
    """int64 ``[15625]``: for each official index, the smallest index with the same canonical form."""
    first: dict[str, int] = {}
    classes = [first.setdefault(canonical_form(arch), index) for index, arch in enumerate(all_architectures())]
    result = np.asarray(classes, dtype=np.int64)
    result.setflags(write=False)
    return result


def _term(op: str, source: str) -> str:
    if op == "none" or source == _ZERO:
        return _ZERO
    if op == "skip_connect":
        return source
    return f"({source})@{op}"

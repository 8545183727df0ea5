"""Genotypes of the few-shot DARTS space in the MetaNAS/DARTS format.

A genotype fixes, for the normal and the reduction cell, the two inputs of each
intermediate node: ``normal[i] = ((op, src), (op, src))`` where ``src`` 0 is the output
of cell k-2, 1 that of cell k-1 and ``src >= 2`` the earlier node ``src - 2``; the cell
output concatenates the nodes listed in ``*_concat`` (by default all of them, 2..nodes+1).

The string form is the one MetaNAS and the official MetaNTK-NAS code print and ``eval``::

    Genotype(normal=[[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], ...], normal_concat=[2, 3, 4],
             reduce=[[...], ...], reduce_concat=[2, 3, 4])

:func:`parse_genotype` reads it without ``eval`` (from the syntax tree, literals and
``range(a, b)`` only); the JSON form is ``{"normal": [[["sep_conv_3x3", 0], ...], ...],
"normal_concat": [2, 3, 4], "reduce": ..., "reduce_concat": ...}``.
"""

from __future__ import annotations

import ast
import json
import random
from dataclasses import dataclass
from typing import Any

from metantk_plugin.spaces.darts_fewshot.operations import OP_ALIASES, OP_NAMES
from metantk_plugin.user_input import quoted

__all__ = ["DEFAULT_NODES", "FIELDS", "Genotype", "parse_genotype", "random_genotype"]

DEFAULT_NODES = 3
FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_MAX_TEXT = 100_000

Node = tuple[tuple[str, int], ...]
Cell = tuple[Node, ...]


@dataclass(frozen=True, repr=False)
class Genotype:
    """A validated genotype; build it with :meth:`from_string`, :meth:`from_dict` or
    the constructor (which accepts lists and the MetaNAS pool names and validates).

    ``nodes`` is the expected number of intermediate nodes (3 in this space); pass
    ``nodes=None`` to the readers to accept any count (both cells must still agree)."""

    normal: Cell
    normal_concat: tuple[int, ...]
    reduce: Cell
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        _validate_into(self)

    # ------------------------------------------------------------------ readers
    @classmethod
    def from_string(cls, text: str, *, nodes: int | None = DEFAULT_NODES) -> Genotype:
        """Parse the MetaNAS string form (see :func:`parse_genotype`)."""
        return parse_genotype(text, nodes=nodes)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, nodes: int | None = DEFAULT_NODES) -> Genotype:
        """Read the JSON dict form ``{"normal": [[[op, src], [op, src]], ...], "normal_concat": [...], ...}``."""
        if not isinstance(data, dict):
            raise ValueError(f"a genotype dict must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(FIELDS))
        missing = [f for f in FIELDS if f not in data and not f.endswith("_concat")]
        if unknown:
            raise ValueError(f"unknown genotype field(s) {', '.join(map(repr, unknown))}; expected {', '.join(FIELDS)}")
        if missing:
            raise ValueError(f"genotype dict lacks the field(s) {', '.join(map(repr, missing))}")
        return _build(dict(data), expected_nodes=nodes)

    @classmethod
    def from_json(cls, text: str, *, nodes: int | None = DEFAULT_NODES) -> Genotype:
        """Read the JSON form written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not valid genotype JSON: {err}") from None
        except RecursionError:
            raise ValueError("the genotype JSON is nested too deeply") from None
        return cls.from_dict(data, nodes=nodes)

    # ------------------------------------------------------------------ writers
    def to_dict(self) -> dict[str, list]:
        """The JSON dict form (lists only)."""
        return {
            "normal": [[[op, src] for op, src in node] for node in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[[op, src] for op, src in node] for node in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def to_json(self) -> str:
        """The JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict())

    def __str__(self) -> str:
        """The MetaNAS string, byte-identical to the official ``genotype2cmd`` output."""
        return (
            f"Genotype(normal={_cell_text(self.normal)}, normal_concat={list(self.normal_concat)}, "
            f"reduce={_cell_text(self.reduce)}, reduce_concat={list(self.reduce_concat)})"
        )

    __repr__ = __str__

    @property
    def nodes(self) -> int:
        """The number of intermediate nodes per cell."""
        return len(self.normal)

    def cell(self, reduction: bool) -> Cell:
        """The reduction cell's nodes if ``reduction`` else the normal cell's."""
        return self.reduce if reduction else self.normal

    def concat(self, reduction: bool) -> tuple[int, ...]:
        """The concatenated node indices of the reduction or the normal cell."""
        return self.reduce_concat if reduction else self.normal_concat


def _cell_text(cell: Cell) -> str:
    return "[" + ", ".join("[" + ", ".join(f"({op!r}, {src})" for op, src in node) + "]" for node in cell) + "]"


# ---------------------------------------------------------------------- validation
def _validate_into(genotype: Genotype) -> None:
    """Normalise the fields of a freshly built Genotype in place and validate them."""
    normal = _check_cell(genotype.normal, "normal")
    reduce = _check_cell(genotype.reduce, "reduce")
    if len(normal) != len(reduce):
        raise ValueError(f"the normal cell has {len(normal)} nodes but the reduction cell has {len(reduce)}")
    object.__setattr__(genotype, "normal", normal)
    object.__setattr__(genotype, "reduce", reduce)
    for field in ("normal_concat", "reduce_concat"):
        object.__setattr__(genotype, field, _check_concat(getattr(genotype, field), field, len(normal)))


def _check_cell(cell: Any, field: str) -> Cell:
    if not isinstance(cell, (list, tuple)) or not cell:
        raise ValueError(f"{field} must be a non-empty list of nodes, got {quoted(cell)}")
    nodes = []
    for i, node in enumerate(cell):
        where = f"{field} node {i}"
        if not isinstance(node, (list, tuple)) or len(node) != 2:
            raise ValueError(f"{where} must list exactly 2 inputs (op, src), got {quoted(node)}")
        pairs = []
        for k, pair in enumerate(node):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise ValueError(f"{where}, input {k} must be a pair (op, src), got {quoted(pair)}")
            op, src = pair
            pairs.append((_check_op(op, f"{where}, input {k}"), _check_src(src, i, f"{where}, input {k}")))
        nodes.append(tuple(pairs))
    return tuple(nodes)


def _check_op(op: Any, where: str) -> str:
    if not isinstance(op, str):
        raise ValueError(f"{where}: the operation must be a string, got {quoted(op)}")
    canonical = OP_ALIASES.get(op, op)
    if canonical == "none":
        raise ValueError(f"{where}: 'none' cannot be a chosen operation (a genotype keeps only real operations)")
    if canonical not in OP_NAMES:
        choices = ", ".join(o for o in OP_NAMES if o != "none")
        raise ValueError(
            f"{where}: unknown operation {quoted(op)}; expected one of {choices} (or max_pool_3x3/avg_pool_3x3)"
        )
    return canonical


def _check_src(src: Any, node: int, where: str) -> int:
    if isinstance(src, bool) or not isinstance(src, int):
        raise ValueError(f"{where}: the source must be an int, got {quoted(src)}")
    if not 0 <= src < node + 2:
        raise ValueError(f"{where}: source {src} is out of range; node {node} may read states 0..{node + 1}")
    return src


def _check_concat(concat: Any, field: str, nodes: int) -> tuple[int, ...]:
    if isinstance(concat, range):
        concat = list(concat)
    if not isinstance(concat, (list, tuple)) or not concat:
        raise ValueError(f"{field} must be a non-empty list of node indices, got {quoted(concat)}")
    for c in concat:
        if isinstance(c, bool) or not isinstance(c, int) or not 2 <= c < nodes + 2:
            raise ValueError(f"{field}: {quoted(c)} is not an intermediate node index (expected 2..{nodes + 1})")
    if list(concat) != sorted(set(concat)):
        raise ValueError(f"{field} must be strictly increasing without repeats, got {list(concat)}")
    return tuple(concat)


def _build(fields: dict[str, Any], expected_nodes: int | None) -> Genotype:
    for cell in ("normal", "reduce"):
        if f"{cell}_concat" not in fields:
            count = len(fields[cell]) if isinstance(fields[cell], (list, tuple)) else 0
            fields[f"{cell}_concat"] = list(range(2, 2 + count))
    genotype = Genotype(**fields)
    if expected_nodes is not None and genotype.nodes != expected_nodes:
        raise ValueError(f"expected {expected_nodes} intermediate nodes per cell, got {genotype.nodes}")
    return genotype


def random_genotype(seed: int, *, nodes: int = DEFAULT_NODES) -> Genotype:
    """A uniformly random genotype (the random-search baseline of DARTS-like spaces): each
    intermediate node ``i`` of each cell reads two distinct states of ``0..i+1``, each
    through an operation drawn uniformly from the real operations (all but ``none``)."""
    rng = random.Random(seed)
    ops = [op for op in OP_NAMES if op != "none"]

    def cell() -> list:
        return [[(rng.choice(ops), src) for src in sorted(rng.sample(range(i + 2), 2))] for i in range(nodes)]

    return Genotype(normal=cell(), normal_concat=list(range(2, nodes + 2)), reduce=cell(),
                    reduce_concat=list(range(2, nodes + 2)))


# ---------------------------------------------------------------------- string parser
def parse_genotype(text: str, *, nodes: int | None = DEFAULT_NODES) -> Genotype:
    """Parse ``Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])``.

    Reads the Python syntax tree and accepts only literals (lists, tuples, strings, ints)
    and ``range(a, b)`` for the concat lists; positional arguments follow the namedtuple
    order ``normal, normal_concat, reduce, reduce_concat``. Nothing is evaluated. Raises
    ValueError quoting the offending text."""
    if not isinstance(text, str):
        raise ValueError(f"a genotype string must be a str, got {type(text).__name__}")
    if len(text) > _MAX_TEXT:
        raise ValueError(f"a genotype string of {len(text)} characters is too long (limit {_MAX_TEXT})")
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError) as err:
        detail = getattr(err, "msg", str(err))
        column = getattr(err, "offset", None)
        where = f" at column {column}" if column else ""
        raise ValueError(f"not a Genotype(...) expression: {detail}{where} in {quoted(source)}") from None
    except (RecursionError, MemoryError):
        raise ValueError("the genotype string is nested too deeply") from None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
        raise ValueError(f"expected a call Genotype(...), got {quoted(_segment(source, call))}")
    fields: dict[str, ast.expr] = {}
    if len(call.args) > len(FIELDS):
        raise ValueError(f"Genotype(...) takes at most {len(FIELDS)} arguments, got {len(call.args)}")
    for name, arg in zip(FIELDS, call.args):
        fields[name] = arg
    for kw in call.keywords:
        if kw.arg is None:
            raise ValueError(f"unsupported argument {quoted(_segment(source, kw.value))}: write the fields out")
        if kw.arg not in FIELDS:
            raise ValueError(f"unknown genotype field {quoted(kw.arg)}; expected {', '.join(FIELDS)}")
        if kw.arg in fields:
            raise ValueError(f"the genotype field {quoted(kw.arg)} is given twice")
        fields[kw.arg] = kw.value
    missing = [f for f in ("normal", "reduce") if f not in fields]
    if missing:
        raise ValueError(f"Genotype(...) lacks the field(s) {', '.join(map(repr, missing))}")
    values = {name: _literal(source, node, name) for name, node in fields.items()}
    return _build(values, expected_nodes=nodes)


def _literal(source: str, node: ast.AST, field: str) -> Any:
    """A list/tuple/str/int literal, or ``range(a[, b])`` of int literals, from the tree."""
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(source, item, field) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, int) and not isinstance(value, bool):
            return -value
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 2
    ):
        bounds = [_literal(source, arg, field) for arg in node.args]
        if all(isinstance(b, int) for b in bounds):
            return list(range(*bounds))
    raise ValueError(
        f"in {field}: {quoted(_segment(source, node))} is not allowed here "
        "(expected lists of ('op', src) pairs of string and int literals, or range(a, b) for a concat)"
    )


def _segment(source: str, node: ast.AST) -> str:
    return ast.get_source_segment(source, node) or type(node).__name__


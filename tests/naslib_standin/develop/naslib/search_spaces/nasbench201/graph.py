"""``naslib.search_spaces.nasbench201.graph``."""

from naslib_standin_core.nasbench201 import EDGE_LIST, NUM_EDGES, NUM_OPS, OP_NAMES, NasBench201SearchSpace

__all__ = ["EDGE_LIST", "NUM_EDGES", "NUM_OPS", "OP_NAMES", "NasBench201SearchSpace"]

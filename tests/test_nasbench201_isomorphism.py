"""The canonical form reproduces the 6,466 isomorphism classes of the shared table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metantk_plugin.spaces.nasbench201 import NB201Arch, canonical_form, isomorphism_classes


def test_classes_equal_the_tables_partition(shared_data):
    table = pd.read_csv(shared_data / "nasbench201" / "nb201_accuracies.csv.gz", usecols=["index", "iso_class"])
    ours = isomorphism_classes()
    assert len(np.unique(ours)) == table["iso_class"].nunique() == 6466
    assert (ours == table["iso_class"].to_numpy()).all()  # same class ids, so the same partition


def test_edges_that_cannot_reach_the_output_do_not_matter():
    # node 3 = skip(node 0) only; the other edges feed nodes that never reach node 3
    a = NB201Arch(("nor_conv_3x3", "avg_pool_3x3", "nor_conv_1x1", "skip_connect", "none", "none"))
    b = NB201Arch(("none", "skip_connect", "nor_conv_3x3", "skip_connect", "none", "none"))
    assert canonical_form(a) == canonical_form(b) == "#+#+0"


def test_skip_chains_and_commuted_sums_are_identified():
    # 0 -skip-> 1 -conv-> 3  is  0 -conv-> 3
    a = NB201Arch(("skip_connect", "none", "none", "none", "nor_conv_3x3", "none"))
    b = NB201Arch(("none", "none", "none", "nor_conv_3x3", "none", "none"))
    assert canonical_form(a) == canonical_form(b) == "#+#+(0)@nor_conv_3x3"
    # conv(x) + x, with the conv on 0->3 and the skip through node 1, or the other way round
    c = NB201Arch(("skip_connect", "none", "none", "nor_conv_3x3", "skip_connect", "none"))
    d = NB201Arch(("nor_conv_3x3", "none", "none", "skip_connect", "skip_connect", "none"))
    assert canonical_form(c) == canonical_form(d) == "#+(0)@nor_conv_3x3+0"
    assert canonical_form(c) != canonical_form(NB201Arch(("avg_pool_3x3",) + d.ops[1:]))


def test_zero_propagates_only_from_a_single_zero_term():
    # node 1 is zero (none on 0->1), so conv on 1->3 contributes zero
    a = NB201Arch(("none", "none", "none", "skip_connect", "nor_conv_3x3", "none"))
    assert canonical_form(a) == "#+#+0"
    # node 2 = 0+0 is not treated as zero by NATS-Bench's rule, so conv on 2->3 differs
    b = NB201Arch(("none", "none", "none", "skip_connect", "none", "nor_conv_3x3"))
    assert canonical_form(b) == "#+(#+#)@nor_conv_3x3+0"
    assert canonical_form(a) != canonical_form(b)


def test_accepts_every_encoding():
    arch = NB201Arch.from_index(1)
    forms = {canonical_form(a) for a in (1, arch.to_string(), arch.to_nni(), arch.to_naslib(), arch)}
    assert forms == {canonical_form(arch)}

"""NAS-Bench-201 encodings: exact round trips over the whole space, the official index
order checked against the shared table, and clean ValueErrors for malformed input."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metantk_plugin.spaces.nasbench201 import NB201Arch, all_architectures, parse_arch
from metantk_plugin.spaces.nasbench201.codec import (
    EDGES,
    NASLIB_OPERATIONS,
    NUM_ARCHITECTURES,
    OPERATIONS,
)

INDEX_1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def table(shared_data) -> pd.DataFrame:
    return pd.read_csv(shared_data / "nasbench201" / "nb201_accuracies.csv.gz", usecols=["index", "arch"])


def test_official_index_order_matches_all_rows_of_the_table(table):
    archs = all_architectures()
    assert len(archs) == NUM_ARCHITECTURES == len(table) == 15625
    assert (table["index"].to_numpy() == np.arange(NUM_ARCHITECTURES)).all()
    assert [a.to_string() for a in archs] == table["arch"].tolist()


def test_index_rule_is_cpythons_seeded_shuffle_of_the_lexicographic_enumeration():
    lexicographic = [NB201Arch(ops).to_string() for ops in itertools.product(OPERATIONS, repeat=len(EDGES))]
    random.Random(88).shuffle(lexicographic)
    assert [a.to_string() for a in all_architectures()] == lexicographic


def test_round_trips_string_index_nni_naslib_for_all_architectures(table):
    for index, text in zip(table["index"], table["arch"]):
        arch = NB201Arch.from_string(text)
        assert arch.index == index
        assert NB201Arch.from_index(index) == arch
        assert arch.to_string() == text
        nni = arch.to_nni()
        assert NB201Arch.from_nni(nni) == arch
        assert NB201Arch.from_nni(arch.to_nni(label=None), label=None) == arch
        naslib = arch.to_naslib()
        assert NB201Arch.from_naslib(naslib) == arch
        assert parse_arch(nni) == parse_arch(naslib) == parse_arch(text) == parse_arch(int(index)) == arch


def test_all_encodings_are_distinct_over_the_space():
    archs = all_architectures()
    assert len({a.to_naslib() for a in archs}) == NUM_ARCHITECTURES
    assert len({tuple(a.to_nni().values()) for a in archs}) == NUM_ARCHITECTURES
    assert sorted(a.index for a in archs) == list(range(NUM_ARCHITECTURES))


def test_nni_dict_uses_nni_names_and_key_i_j_for_edge_i_to_j():
    arch = NB201Arch.from_string(INDEX_1)
    assert arch.to_nni() == {
        "cell/0_1": "conv_3x3", "cell/0_2": "conv_3x3", "cell/1_2": "avg_pool_3x3",
        "cell/0_3": "skip_connect", "cell/1_3": "conv_3x3", "cell/2_3": "skip_connect",
    }
    assert arch.to_nni(label="model/cell")["model/cell/2_3"] == "skip_connect"
    assert NB201Arch.from_nni({**arch.to_nni(), "other/width": 16}) == arch  # other choices are ignored


def test_naslib_tuple_uses_naslib_edge_and_op_order():
    # NASLib edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4) = official 0->1, 0->2, 0->3, 1->2, 1->3, 2->3;
    # ops 0 skip_connect, 1 none, 2 nor_conv_3x3, 3 nor_conv_1x1, 4 avg_pool_3x3.
    assert NASLIB_OPERATIONS == ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
    assert NB201Arch.from_string(INDEX_1).to_naslib() == (2, 2, 0, 4, 2, 0)
    arch = NB201Arch.from_naslib((1, 0, 3, 4, 2, 0))
    assert arch.to_string() == "|none~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|nor_conv_3x3~1|skip_connect~2|"
    assert NB201Arch.from_naslib(np.array([1, 0, 3, 4, 2, 0])) == arch


def test_index_one_and_edge_lookup():
    arch = NB201Arch.from_index(1)
    assert arch.to_string() == str(arch) == INDEX_1
    assert arch.op(1, 2) == "avg_pool_3x3" and arch.op(0, 3) == "skip_connect"
    assert NB201Arch.from_index(np.int64(1)) == arch


@pytest.mark.parametrize(
    ("text", "token"),
    [
        (INDEX_1.replace("avg_pool_3x3~1", "max_pool_3x3~1"), "'max_pool_3x3'"),  # unknown op
        (INDEX_1.replace("avg_pool_3x3~1", "avg_pool_3x3~2"), "'avg_pool_3x3~2'"),  # wrong node index
        (INDEX_1.replace("skip_connect~2|", "skip_connect~2|none~3|"), "has 4 edges"),  # wrong edge count
        (INDEX_1.replace("|+|skip", "|+|none~0|+|skip"), "4 node groups"),
        (INDEX_1 + " ", "must start and end with '|'"),  # stray character
        (INDEX_1.replace("avg_pool_3x3~1", "avg_pool_3x3-1"), "'avg_pool_3x3-1'"),
        (INDEX_1.replace("~1|+", "~\u0661|+"), "'\u0661'"),  # a non-ASCII digit is not a node index
        ("", "1 node groups"),
    ],
)
def test_malformed_strings_name_the_bad_token_and_the_expected_form(text, token):
    with pytest.raises(ValueError) as caught:
        NB201Arch.from_string(text)
    message = str(caught.value)
    assert token in message
    assert "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|" in message


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (15625, "15625"),
        (-1, "-1"),
        (True, "bool"),
        (3.0, "float"),
        (None, "NoneType"),
        (b"|none~0|", "bytes"),
        ((0, 1, 2, 3, 4), "5 entries"),
        ((0, 1, 2, 3, 4, 5), "op index 5"),
        ((0, 1, 2, 3, 4, 1.0), "float"),
        ((0, 1, 2, 3, 4, True), "bool"),
        (("none",) * 6, "'none'"),
        ({"cell/0_1": "conv_3x3"}, "'cell/0_2'"),
        ({**NB201Arch.from_index(1).to_nni(), "cell/0_4": "none"}, "'cell/0_4'"),
        ({**NB201Arch.from_index(1).to_nni(), "cell/1_2": "nor_conv_3x3"}, "'nor_conv_3x3'"),
        ({**NB201Arch.from_index(1).to_nni(), "cell/1_2": 3}, "3"),
        (np.zeros((2, 3), dtype=int), "1-D"),
    ],
)
def test_malformed_encodings_raise_value_errors_naming_the_bad_value(value, token):
    with pytest.raises(ValueError, match="expected") as caught:
        parse_arch(value)
    assert token in str(caught.value)


def test_nb201arch_constructor_validates_ops():
    with pytest.raises(ValueError, match="'conv_3x3' on edge 0->2"):
        NB201Arch(("none", "conv_3x3", "none", "none", "none", "none"))
    with pytest.raises(ValueError, match="6 operations"):
        NB201Arch(("none",) * 5)
    with pytest.raises(ValueError, match="no edge 2->1"):
        NB201Arch.from_index(0).op(2, 1)
    with pytest.raises(ValueError, match="choice label"):
        NB201Arch.from_index(0).to_nni(label="")


# ---------------------------------------------------------------- property-based
_VALID_STRINGS = st.tuples(*[st.sampled_from(OPERATIONS)] * len(EDGES)).map(lambda ops: NB201Arch(ops).to_string())
_NOISE = st.sampled_from(list("|+~_0123456789 \n\t\u0661\u00b2xonecvkiptal") + ["~0", "|+|", "none", "nor_conv_3x3"])


@st.composite
def _mutated_strings(draw) -> str:
    text = draw(_VALID_STRINGS)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "swap_tokens", "duplicate", "truncate"]))
        at = draw(st.integers(0, len(text)))
        if kind == "delete":
            text = text[:at] + text[at + 1 :]
        elif kind == "insert":
            text = text[:at] + draw(_NOISE) + text[at:]
        elif kind == "replace":
            text = text[:at] + draw(_NOISE) + text[at + 1 :]
        elif kind == "swap_tokens":
            tokens = text.split("|")
            i, j = draw(st.integers(0, len(tokens) - 1)), draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
            text = "|".join(tokens)
        elif kind == "duplicate":
            text = text[:at] + text[at:] + text[at:]
        else:
            text = text[:at]
    return text


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(_mutated_strings())
def test_mutated_strings_parse_exactly_or_raise_a_clean_value_error(text):
    try:
        arch = NB201Arch.from_string(text)
    except ValueError as error:
        assert "expected the form" in str(error)
    else:  # a mutation that happens to give a valid official string must round-trip exactly
        assert arch.to_string() == text


_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-20000, 20000),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.binary(max_size=10),
    st.lists(st.one_of(st.integers(-2, 6), st.text(max_size=3), st.floats()), max_size=8),
    st.lists(st.integers(-1, 5), min_size=6, max_size=6).map(tuple),
    st.dictionaries(
        st.one_of(st.sampled_from([f"cell/{i}_{j}" for i, j in EDGES] + ["cell/0_4", "0_1"]), st.text(max_size=5)),
        st.one_of(
            st.sampled_from(["none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3", "bad"]), st.integers()
        ),
        max_size=8,
    ),
)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(_ANY_VALUE)
def test_any_value_parses_or_raises_a_value_error(value):
    try:
        arch = parse_arch(value)
    except ValueError:
        return
    assert parse_arch(arch.to_string()) == arch

"""Genotypes: the MetaNAS string and JSON forms, round trips, validation errors, no eval."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metantk_plugin.spaces.darts_fewshot import PRESETS, Genotype, parse_genotype

# Printed by the official code (genotype2cmd) for mini 5-cell #1: the exact text to match.
OFFICIAL_TEXT = (
    "Genotype(normal=[[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], [('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], "
    "[('conv_3x3', 0), ('sep_conv_3x3', 2)]], normal_concat=[2, 3, 4], "
    "reduce=[[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], [('conv_1x5_5x1', 1), ('dil_conv_3x3', 2)], "
    "[('dil_conv_3x3', 2), ('dil_conv_3x3', 3)]], reduce_concat=[2, 3, 4])"
)


def test_official_text_parses_and_prints_back_identically():
    genotype = parse_genotype(OFFICIAL_TEXT)
    assert str(genotype) == OFFICIAL_TEXT
    assert genotype == PRESETS["metantk-nas/mini-5cell-1"].genotype
    assert genotype.normal[2] == (("conv_3x3", 0), ("sep_conv_3x3", 2))
    assert genotype.reduce_concat == (2, 3, 4)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_round_trips(name):
    genotype = PRESETS[name].genotype
    assert parse_genotype(str(genotype)) == genotype
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert Genotype.from_dict(json.loads(json.dumps(genotype.to_dict()))) == genotype


def test_metanas_spelling_multiline_and_range_are_accepted():
    # genotype_metanas_v1 as written in boschresearch/metanas (metanas/utils/genotypes.py)
    text = """Genotype(
        normal=[
            [("conv_3x3", 0), ("conv_3x3", 1)],
            [("conv_1x5_5x1", 0), ("dil_conv_3x3", 2)],
            [("conv_1x5_5x1", 0), ("max_pool_3x3", 3)],
        ],
        normal_concat=range(2, 5),
        reduce=[
            [("dil_conv_3x3", 0), ("sep_conv_3x3", 1)],
            [("conv_3x3", 0), ("max_pool_3x3", 1)],
            [("dil_conv_3x3", 2), ("conv_1x5_5x1", 3)],
        ],
        reduce_concat=range(2, 5),
    )"""
    genotype = parse_genotype(text)
    assert genotype == PRESETS["metanas/v1"].genotype
    assert genotype.normal[2][1] == ("max_pool_3x3BN", 3)
    assert genotype.normal_concat == (2, 3, 4)
    assert PRESETS["metanas/og-v2"].genotype.normal[1][0] == ("avg_pool_3x3BN", 0)
    positional = parse_genotype(
        f"Genotype({[list(n) for n in genotype.normal]}, [2, 3, 4], {[list(n) for n in genotype.reduce]}, [2, 3, 4])"
    )
    assert positional == genotype


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ("('conv_3x3', 0)", "('conv_9x9', 0)", "unknown operation 'conv_9x9'"),
        ("('conv_3x3', 0)", "('none', 0)", "'none' cannot be a chosen operation"),
        ("('conv_3x3', 0)", "('conv_3x3', 4)", "normal node 2, input 0: source 4 is out of range"),
        (
            "('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], [('sep_conv_3x3', 1)",
            "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1)], [('sep_conv_3x3', 1)",
            "must list exactly 2 inputs",
        ),
        ("('conv_3x3', 0)", "('conv_3x3', -1)", "source -1 is out of range"),
        ("('conv_3x3', 0)", "('conv_3x3', True)", "'True' is not allowed here"),
        ("('conv_3x3', 0)", "('conv_3x3', 0.5)", "'0.5' is not allowed here"),
        ("normal_concat=[2, 3, 4]", "normal_concat=[1, 2]", "normal_concat: 1 is not an intermediate node"),
        ("normal_concat=[2, 3, 4]", "normal_concat=[3, 2]", "strictly increasing"),
        ("normal_concat=[2, 3, 4]", "normal_concat=[2, 3, 4], extra=[1]", "unknown genotype field 'extra'"),
        ("normal_concat=[2, 3, 4]", "normal_concat=[2, 3, 4], normal=[]", "given twice"),
        ("('conv_3x3', 0)", "(__import__('os').getcwd(), 0)", "__import__"),
        ("Genotype(", "Genome(", "expected a call Genotype"),
        ("reduce_concat=[2, 3, 4])", "reduce_concat=[2, 3, 4]", "not a Genotype(...) expression"),
    ],
)
def test_malformed_strings_name_the_bad_token(replace, by, message):
    assert replace in OFFICIAL_TEXT
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_genotype(OFFICIAL_TEXT.replace(replace, by, 1))


def test_node_count_is_checked():
    two_nodes = (
        OFFICIAL_TEXT.replace(", [('conv_3x3', 0), ('sep_conv_3x3', 2)]]", "]")
        .replace(", [('dil_conv_3x3', 2), ('dil_conv_3x3', 3)]]", "]")
        .replace("[2, 3, 4]", "[2, 3]")
    )
    with pytest.raises(ValueError, match="expected 3 intermediate nodes per cell, got 2"):
        parse_genotype(two_nodes)
    assert parse_genotype(two_nodes, nodes=None).nodes == 2
    mismatched = OFFICIAL_TEXT.replace(", [('conv_3x3', 0), ('sep_conv_3x3', 2)]]", "]")
    with pytest.raises(ValueError, match="normal cell has 2 nodes but the reduction cell has 3"):
        parse_genotype(mismatched)


def test_missing_fields_and_bad_json():
    with pytest.raises(ValueError, match="lacks the field"):
        parse_genotype("Genotype(normal=[])")
    with pytest.raises(ValueError, match="not valid genotype JSON"):
        Genotype.from_json("{normal: 1")
    with pytest.raises(ValueError, match="lacks the field"):
        Genotype.from_dict({"normal": []})
    with pytest.raises(ValueError, match="unknown genotype field"):
        Genotype.from_dict({**PRESETS["metanas/v1"].genotype.to_dict(), "nodes": 3})
    data = PRESETS["metanas/v1"].genotype.to_dict()
    data["normal"][0][1][1] = True
    with pytest.raises(ValueError, match="normal node 0, input 1: the source must be an int, got True"):
        Genotype.from_dict(data)
    data = PRESETS["metanas/v1"].genotype.to_dict()
    del data["normal_concat"], data["reduce_concat"]
    assert Genotype.from_dict(data).normal_concat == (2, 3, 4)


def test_nothing_is_evaluated(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ValueError):
        parse_genotype(f"Genotype(normal=open({str(marker)!r}, 'w'), reduce=[])")
    assert not marker.exists()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_strings_parse_or_raise_value_error(data):
    text = OFFICIAL_TEXT
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text) - 1))
        kind = data.draw(st.sampled_from(["delete", "replace", "insert"]))
        ch = data.draw(st.sampled_from(list("()[],'\"0123456789_ax=-. ")))
        if kind == "delete":
            text = text[:i] + text[i + 1 :]
        elif kind == "replace":
            text = text[:i] + ch + text[i + 1 :]
        else:
            text = text[:i] + ch + text[i:]
    try:
        genotype = parse_genotype(text)
    except ValueError:
        return
    assert parse_genotype(str(genotype)) == genotype  # anything accepted is valid and round-trips

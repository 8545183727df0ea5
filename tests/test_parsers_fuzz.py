"""Fuzzing the public parsers of user text with at least 1,000 generated inputs of each kind:
NAS-Bench-201 architecture strings (and 300 of the other encodings parse_arch takes), few-shot
DARTS genotype texts, and ``metantk score --set`` values; each test counts the inputs its
parser really saw. Each input parses, or fails with a ValueError (or subclass) that carries a
short message; any other exception is a bug."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metantk_plugin.commands import parse_proxy_options
from metantk_plugin.scoring.settings import ScoreSettings
from metantk_plugin.spaces.darts_fewshot import parse_genotype
from metantk_plugin.spaces.darts_fewshot.genotype import Genotype
from metantk_plugin.spaces.darts_fewshot.presets import resolve_genotype
from metantk_plugin.spaces.nasbench201 import parse_arch

_FUZZ = settings(max_examples=1_000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _clean_error(parse, value) -> None:
    try:
        parse(value)
    except ValueError as error:
        message = str(error)
        assert message.strip(), f"empty message for {value!r}"
        assert len(message) < 2000, f"message of {len(message)} characters for {value!r}"


def _joined(tokens: list[str], max_size: int = 40) -> st.SearchStrategy[str]:
    """Strings glued from meaningful pieces and noise, so many get deep into the parser."""
    return st.lists(st.one_of(st.sampled_from(tokens), st.text(max_size=3)), max_size=max_size).map("".join)


_ARCH_TOKENS = ["|", "+", "~", "0", "1", "2", "3", "-1", "none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                "avg_pool_3x3", "|nor_conv_3x3~0|", "|none~0|none~1|", "|skip_connect~0|avg_pool_3x3~1|none~2|"]
_GENOTYPE_TOKENS = ["Genotype(", ")", "normal=", "reduce=", "normal_concat=", "reduce_concat=", "[", "]", "(", ",",
                    "'sep_conv_3x3'", "'skip_connect'", "'none'", "'max_pool_3x3'", "0", "1", "2", "-3", "range(2, 6)",
                    "range(", "**x", "__import__('os')", "{", "}", '"normal": ', "1e999", "True"]
_SET_TOKENS = ["metantk", "synflow", "nwot", ".", "=", "reg", "inner_lr_time", "backend", "algorithm", "1e-3",
               "nan", "NaN", "inf", "-inf", "Infinity", "true", "null", "[", "]", "{", "}", '"gram"', "gram", "anil",
               "0", "-1", "1e400", ",", " "]


@_FUZZ
@given(text=st.one_of(_joined(_ARCH_TOKENS), st.text(max_size=60)))
def _architecture_strings(seen: list, text: str) -> None:
    seen.append(text)
    _clean_error(parse_arch, text)


@settings(_FUZZ, max_examples=300)
@given(value=st.one_of(st.integers(), st.lists(st.integers(-2, 6)),
                       st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=7), st.none(),
                       st.floats()))
def _other_architecture_encodings(seen: list, value) -> None:
    seen.append(value)
    _clean_error(parse_arch, value)


@_FUZZ
@given(text=st.one_of(_joined(_GENOTYPE_TOKENS, 60), st.text(max_size=80)))
def _genotype_texts(seen: list, text: str) -> None:
    seen.append(text)
    _clean_error(parse_genotype, text)
    _clean_error(resolve_genotype, text)
    _clean_error(Genotype.from_json, text)


@_FUZZ
@given(items=st.lists(_joined(_SET_TOKENS, 12), min_size=1, max_size=3))
def _set_values(seen: list, items: list[str]) -> None:
    seen.extend(items)
    _clean_error(_score_settings, items)


def _score_settings(values: list[str]) -> None:
    ScoreSettings(proxies=("metantk", "synflow"), proxy_options=parse_proxy_options(values))


@pytest.mark.parametrize(("fuzz", "at_least"), [(_architecture_strings, 1_000), (_other_architecture_encodings, 300),
                                                (_genotype_texts, 1_000), (_set_values, 1_000)],
                         ids=["architecture-strings", "other-architecture-encodings", "genotype-texts", "set-values"])
def test_parsers_fail_cleanly(fuzz, at_least):
    seen: list = []
    fuzz(seen)
    assert len(seen) >= at_least, f"only {len(seen)} generated inputs reached the parser"


@pytest.mark.parametrize("text", ["[" * 100_000, "Genotype(normal=" + "[" * 100_000, '{"normal": ' + "[" * 100_000])
def test_deep_nesting_is_a_clean_error(text):
    _clean_error(parse_genotype, text)
    _clean_error(resolve_genotype, text)
    _clean_error(Genotype.from_json, text)
    _clean_error(lambda t: parse_proxy_options([f"metantk.reg={t}"]), text)

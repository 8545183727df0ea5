"""The parsers of values typed on the command line (``metantk_plugin.commands``), and their
old home ``metantk_plugin.scoring.settings``, which still answers with a DeprecationWarning."""

from __future__ import annotations

import math

import pytest

from metantk_plugin.commands import parse_option_value, parse_proxy_norms, parse_proxy_options


def test_proxy_options_and_norms_parse():
    assert parse_proxy_options(["metantk.reg=1e-4", "metantk.inner_lr_time=inf", "zen.mode=fast"]) == {
        "metantk": {"reg": 1e-4, "inner_lr_time": math.inf}, "zen": {"mode": "fast"}}
    assert parse_option_value("[1, 2]") == [1, 2] and parse_option_value("true") is True
    assert parse_proxy_norms(["synflow=group", "nwot=none"]) == {"synflow": "group", "nwot": "none"}
    with pytest.raises(ValueError, match="--set expects PROXY.OPTION=VALUE"):
        parse_proxy_options(["metantk=1"])
    with pytest.raises(ValueError, match="--norm expects PROXY=NORM"):
        parse_proxy_norms(["synflow"])


def test_the_old_imports_from_scoring_settings_warn_and_keep_working():
    from metantk_plugin.scoring import settings

    for name, moved in (("parse_option_value", parse_option_value), ("parse_proxy_options", parse_proxy_options)):
        with pytest.warns(DeprecationWarning, match=f"settings.{name} is deprecated; import it from "
                                                    "metantk_plugin.commands"):
            assert getattr(settings, name) is moved
    with pytest.raises(AttributeError):
        settings.parse_nothing  # noqa: B018

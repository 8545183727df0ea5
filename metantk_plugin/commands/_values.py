"""Values typed on the command line, parsed into what the settings objects take."""

from __future__ import annotations

import json
import math

from metantk_plugin.user_input import quoted

__all__ = ["parse_option_value", "parse_proxy_norms", "parse_proxy_options"]


def parse_proxy_options(items: list[str]) -> dict[str, dict[str, object]]:
    """``['metantk.reg=1e-4', ...]`` (the ``--set`` values) -> ``{'metantk': {'reg': 0.0001}}``;
    ValueError quoting an item that is not ``PROXY.OPTION=VALUE``. The values are checked
    against the proxies when the :class:`~metantk_plugin.scoring.settings.ScoreSettings` are made."""
    options: dict[str, dict[str, object]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        proxy, dot, option = key.partition(".")
        if not sep or not dot or not proxy or not option:
            raise ValueError(f"--set expects PROXY.OPTION=VALUE, got {quoted(item)}")
        options.setdefault(proxy, {})[option] = parse_option_value(value)
    return options


def parse_option_value(text: str) -> object:
    """A CLI option value: JSON when it parses (numbers, true/false, lists), ``inf`` as
    a float, else the string itself."""
    if text.lower() in ("inf", "+inf", "infinity"):
        return math.inf
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def parse_proxy_norms(items: list[str]) -> dict[str, str]:
    """``['synflow=group', ...]`` (the ``--norm`` values) -> ``{'synflow': 'group'}``; ValueError
    for an item that is not ``PROXY=NORM``."""
    norms = {}
    for item in items:
        proxy, sep, norm = item.partition("=")
        if not sep or not proxy:
            raise ValueError(f"--norm expects PROXY=NORM, got {item!r}")
        norms[proxy] = norm
    return norms

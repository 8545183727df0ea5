"""Subcommands of the ``metantk`` CLI, one module each (see :mod:`metantk_plugin.cli`), and
the parsers of the values typed on the command line."""

from metantk_plugin.commands._values import parse_option_value, parse_proxy_norms, parse_proxy_options

__all__ = ["parse_option_value", "parse_proxy_norms", "parse_proxy_options"]

"""Subcommands of the ``metantk`` CLI, one module each (see :mod:`metantk_plugin.cli`)."""

"""The ``metantk`` command. Each subcommand lives in ``metantk_plugin.commands.<name>``
and exposes ``add_parser(subparsers)``, which registers its parser with
``set_defaults(func=run_command)``; ``run_command(args) -> int``, wrapped by
:func:`metantk_plugin.commands._runner.command`, is the exit status. Parsers import
nothing heavy (no torch, proxies, h5py, pandas or matplotlib), so ``--help`` is quick;
the handlers import what they run."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings
from collections.abc import Sequence

# Before torch starts OpenMP: idle threads sleep instead of spinning, so a run that shares
# its cores with another process does not slow down several-fold.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from metantk_plugin import __version__, commands  # noqa: E402
from metantk_plugin.allocator import keep_freed_memory  # noqa: E402

_DESCRIPTION = """\
MetaNTK: a training-free proxy for how well an architecture meta-learns, and
MetaNTK-NAS, the search that prunes a supernet with it.

Typical day:
  metantk search --space nb201 --data synthetic        # find a cell without training
  metantk score --space nb201 --archs sample:100 --proxies metantk,synflow --out s.h5
  metantk correlate s.h5 --dataset cifar10             # how well each proxy ranks
Run 'metantk COMMAND --help' for the options of one command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metantk", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"metantk-plugin {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").add_parser(subparsers)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as one line, without the source line Python would quote."""
    return f"metantk: {category.__name__}: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except KeyboardInterrupt:  # Ctrl-C while the parsers are built; inside a command, its runner answers
        print("metantk: interrupted before any work was done", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    keep_freed_memory()
    previous, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return int(args.func(args) or 0)
    finally:
        warnings.formatwarning = previous


if __name__ == "__main__":
    sys.exit(main())

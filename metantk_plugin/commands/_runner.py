"""How every ``metantk`` command runs: ordinary failures and Ctrl-C become one line on
stderr and an exit status; outputs and the device are checked before the work
(:func:`check_writable`, :func:`refuse_overwrite`, :func:`check_device`) and outputs are
written whole (:func:`write_atomic`).

A command's ``run_command(args) -> int`` is wrapped by :func:`command`:

* bad input the user can fix (``ValueError`` and its subclasses, a missing or unwritable
  file, a missing optional package) prints ``metantk CMD: error: MESSAGE`` and exits 2;
* running out of memory (``MemoryError``, or torch's allocator refusing a tensor) prints
  one line naming the sizes to lower and exits 1;
* Ctrl-C, or SIGTERM (``kill``, ``timeout``, a batch scheduler), prints ``metantk CMD:
  interrupted; ...`` (what was kept) and exits 130.

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from metantk_plugin.atomic_files import write_file_atomically as write_atomic
from metantk_plugin.interrupts import terminate_as_interrupt
from metantk_plugin.scoring.executors import EXECUTORS, RAY_ADDRESS_VARIABLE
from metantk_plugin.user_input import quoted

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OUT_OF_MEMORY",
    "EXIT_USAGE",
    "add_executor_arguments",
    "check_device",
    "check_writable",
    "command",
    "one_line",
    "print_run_summary",
    "refuse_overwrite",
    "write_atomic",
]

EXIT_USAGE = 2
EXIT_OUT_OF_MEMORY = 1
EXIT_INTERRUPTED = 130

_USAGE_ERRORS = (ValueError, OSError, ImportError)
_ALLOCATOR_MESSAGES = ("can't allocate memory", "out of memory", "not enough memory", "invalid buffer size")

Handler = Callable[[argparse.Namespace], int]


def command(name: str, *, interrupted: Callable[[argparse.Namespace], str] | str = "nothing was saved"):
    """Decorator for the handler of ``metantk name``; ``interrupted`` says (or computes from
    the arguments) what Ctrl-C leaves behind."""

    def decorator(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapped(args: argparse.Namespace) -> int:
            try:
                with terminate_as_interrupt():
                    return int(handler(args) or 0)
            except KeyboardInterrupt:
                kept = interrupted(args) if callable(interrupted) else interrupted
                print(f"metantk {name}: interrupted; {kept}", file=sys.stderr)
                return EXIT_INTERRUPTED
            except MemoryError as error:
                _print_out_of_memory(name, error)
                return EXIT_OUT_OF_MEMORY
            except RuntimeError as error:
                if not any(m in str(error) for m in _ALLOCATOR_MESSAGES):
                    raise
                _print_out_of_memory(name, error)
                return EXIT_OUT_OF_MEMORY
            except _USAGE_ERRORS as error:
                print(f"metantk {name}: error: {_describe(error)}", file=sys.stderr)
                return EXIT_USAGE

        return wrapped

    return decorator


def one_line(text: str, limit: int = 2000) -> str:
    """``text`` on one line (line breaks become '; '), at most ``limit`` characters."""
    flat = "; ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return one_line(f"{error.filename}: {error.strerror}")
    return one_line(str(error) or type(error).__name__)


def _print_out_of_memory(name: str, error: BaseException) -> None:
    print(f"metantk {name}: error: out of memory ({one_line(str(error), 200) or 'MemoryError'}); "
          "lower the sizes asked for (tasks, ways, shots, queries, image size, channels, cells)", file=sys.stderr)


def add_executor_arguments(group, *, scope: str = "") -> None:
    """``--executor``, ``--workers`` and ``--ray-address`` (read back as ``executor``,
    ``workers`` and ``ray_address``); ``scope`` starts their help (e.g. '--archs: ')."""
    group.add_argument("--executor", default="local", choices=EXECUTORS,
                       help=f"{scope}local (this process), processes (a pool) or ray (a local Ray instance, or the "
                            "cluster at --ray-address) (default local)")
    group.add_argument("--workers", type=int, default=None,
                       help=f"{scope}parallel workers for processes/ray (default: the CPU count, of the cluster "
                            "with --ray-address); each uses 1 torch thread")
    group.add_argument("--ray-address", default=None, metavar="HOST:PORT",
                       help=f"{scope}with --executor ray, the running Ray cluster to use (its head's HOST:PORT, "
                            f"ray://HOST:PORT or auto) instead of starting one (default: ${RAY_ADDRESS_VARIABLE})")


def check_device(device: str, *, option: str = "--device") -> None:
    """ValueError unless ``device`` is a torch device this machine has: torch must parse it
    (``cpu``, ``cuda``, ``cuda:N``, ...) and a CUDA device must exist."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"{option} {quoted(device)} is not a device; use cpu, cuda or cuda:N") from None
    if parsed.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise ValueError(f"{option} {device} was asked for, but CUDA is not available here (torch sees no CUDA device)")
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"{option} {device} was asked for, but torch sees {torch.cuda.device_count()} CUDA "
                         "device(s)")


def refuse_overwrite(path: str | os.PathLike | None, *, force: bool, option: str) -> None:
    """FileExistsError when ``path`` exists and ``force`` is not set (``option`` names the flag)."""
    if path is not None and Path(path).exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace what already exists there, or choose "
                              f"another {option}")


def check_writable(path: str | os.PathLike | None, *, option: str, folder: bool = False) -> None:
    """Raise a clear OSError now, before any work, when ``path`` (a file, whose folder must
    exist, or a folder, created later with its parents, when ``folder``) cannot be written:
    by creating and removing a temporary file in the folder that would hold it, so
    permissions, read-only disks and a file where a folder should be are all caught."""
    if path is None:
        return
    path = Path(path)
    if not folder and path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{option} {path} is a file, not a folder")
    existing = path if folder and path.is_dir() else path.parent
    while folder and not existing.exists():  # a folder is created with its parents; a file is not
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise NotADirectoryError(f"{option} {path} cannot be created: {existing} is a file, not a folder")
    if not existing.exists():
        raise FileNotFoundError(f"{option} {path} cannot be created: the folder {existing} does not exist")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".metantk-write-check-"):
            pass
    except OSError as error:
        raise PermissionError(f"{option} {path} cannot be written ({error.strerror or error})") from None


def print_run_summary(summary, columns, *, as_json: bool, done: str, extra: dict | None = None) -> None:
    """Report a :class:`~metantk_plugin.scoring.store.RunSummary`: a JSON object, or one line
    saying how many architectures were ``done`` (e.g. 'scored') now and before."""
    if as_json:
        info = {"out": str(summary.path), "requested": summary.requested, "already_done": summary.already_done,
                done.split()[0]: summary.scored, "seconds": round(summary.seconds, 3), "columns": list(columns),
                **(extra or {})}
        print(json.dumps(info, indent=2))
    else:
        print(f"{summary.path}: {summary.requested} architectures requested, {summary.already_done} already {done}, "
              f"{summary.scored} {done} now in {summary.seconds:.1f} s")

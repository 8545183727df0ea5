"""Run ``metantk`` in a child process, as a user does: to see exactly what it prints, and to
press Ctrl-C (a real SIGINT), or do something else, once it is working."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

_READY = "metantk-test: imported"
_HEAVY = ("metantk_plugin.data.sources", "metantk_plugin.fewshot.pipeline", "metantk_plugin.fewshot.table",
          "metantk_plugin.proxies.builtin", "metantk_plugin.scoring.plotting", "metantk_plugin.scoring.report",
          "metantk_plugin.scoring.run", "metantk_plugin.search.spaces")
# The commands import their modules when they run: import them, and the parser, then print the marker.
# Ctrl-C acts as in a terminal even when the tests run from a background job, which starts with SIGINT ignored.
_LAUNCH = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    f"import sys, {', '.join(_HEAVY)}; from metantk_plugin.cli import build_parser, main; build_parser(); "
    f"print({_READY!r}, file=sys.stderr, flush=True); sys.exit(main(sys.argv[1:]))"
)


def run_metantk(args: list[str], *, cwd: Path, timeout: float = 600.0,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``metantk ARGS`` to its end, with ``env`` added to the environment; stdout and stderr as text."""
    return subprocess.run([sys.executable, "-c", _LAUNCH, *args], cwd=cwd, env=_environment(env), capture_output=True,
                          text=True, timeout=timeout)


def interrupt_metantk(args: list[str], *, cwd: Path, wait_for: str | None = None, delay: float = 1.0,
                      timeout: float = 240.0, signum: int = signal.SIGINT) -> tuple[int, str]:
    """Start ``metantk ARGS``; once its stderr matches the regular expression ``wait_for`` (or
    ``delay`` seconds after it imported), send ``signum`` (Ctrl-C's SIGINT by default); return
    its exit status and the stderr it wrote."""

    def interrupt(proc: subprocess.Popen) -> None:
        if wait_for is None:
            time.sleep(delay)
        proc.send_signal(signum)

    return act_on_metantk(args, cwd=cwd, wait_for=wait_for or re.escape(_READY), action=interrupt, timeout=timeout)


def act_on_metantk(args: list[str], *, cwd: Path, wait_for: str, action: Callable[[subprocess.Popen], None],
                   timeout: float = 240.0, env: dict[str, str] | None = None,
                   own_group: bool = False) -> tuple[int, str]:
    """Start ``metantk ARGS`` (``env`` added to its environment; with ``own_group`` in a process
    group of its own, as a terminal starts a command, so that ``os.killpg(process.pid, ...)``
    reaches it and every process it starts); once its stderr matches the regular expression
    ``wait_for``, call ``action(process)``; return its exit status and the stderr it wrote once it ends."""
    environment = _environment({"PYTHONUNBUFFERED": "1", **(env or {})})
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, *args], cwd=cwd, env=environment,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=own_group)
    lines: list[str] = []
    reader = threading.Thread(target=_read_chunks, args=(proc.stderr, lines), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    target = re.compile(wait_for)
    while not target.search("".join(lines)):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"metantk {args[0]} ended or hung before {target.pattern!r}: {''.join(lines)[-2000:]}")
        time.sleep(0.05)
    action(proc)
    try:
        status = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"metantk {args[0]} did not end after {target.pattern!r}: "
                             f"{''.join(lines)[-2000:]}") from None
    finally:
        proc.kill()
    reader.join(timeout=10)
    return status, "".join(lines)


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **(extra or {})}


def _read_chunks(stream, lines: list[str]) -> None:
    """Collect ``stream`` as it comes (progress bars end lines with '\\r', not '\\n')."""
    while True:
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            return
        lines.append(chunk.decode(errors="replace"))


def spawned_children(pid: int) -> list[int]:
    """The process ids of the spawned multiprocessing workers (``spawn_main``) of process ``pid``."""
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False

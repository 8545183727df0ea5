"""SIGTERM acts as Ctrl-C in the process that runs a command, and as by default in its forked
workers; inside deferred_interrupt the first of either is only noted, and a forked worker
goes on with its task on Ctrl-C."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from metantk_plugin.interrupts import deferred_interrupt, terminate_as_interrupt


def _sleep() -> None:
    time.sleep(30)


def _worker_ends_by(signum: int, *, after_ctrl_c: bool = False) -> int:
    """Exit code of a worker forked inside the blocks, sent ``signum`` (after a Ctrl-C that it
    must outlive, if ``after_ctrl_c``)."""
    worker = multiprocessing.get_context("fork").Process(target=_sleep)
    worker.start()
    time.sleep(0.2)
    if after_ctrl_c:
        os.kill(worker.pid, signal.SIGINT)
        time.sleep(0.2)
        assert worker.is_alive()
    os.kill(worker.pid, signum)
    worker.join(timeout=10)
    return worker.exitcode


def test_sigterm_raises_keyboard_interrupt_here_and_ends_a_forked_worker():
    before = signal.getsignal(signal.SIGTERM)
    with terminate_as_interrupt():
        assert _worker_ends_by(signal.SIGTERM) == -signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_deferred_interrupt_notes_the_first_signal_and_raises_on_the_second(signum):
    with terminate_as_interrupt(), deferred_interrupt() as request:
        assert _worker_ends_by(signal.SIGTERM, after_ctrl_c=True) == -signal.SIGTERM
        os.kill(os.getpid(), signum)
        time.sleep(0.1)
        assert request.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
            time.sleep(1)

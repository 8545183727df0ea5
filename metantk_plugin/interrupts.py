"""Stopping a command cleanly. Ctrl-C (SIGINT) and SIGTERM (``kill``, ``timeout``, a batch
scheduler's stop) act alike: while a command runs, either raises KeyboardInterrupt, so what
Ctrl-C keeps is kept (:func:`terminate_as_interrupt`); inside :func:`deferred_interrupt` the
first one is only noted, so a loop can finish its step, save, and stop; a second one
interrupts at once."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

__all__ = ["StopRequest", "deferred_interrupt", "terminate_as_interrupt"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Whether Ctrl-C (or SIGTERM) came inside :func:`deferred_interrupt`."""

    def __init__(self) -> None:
        self.requested = False


def _end_as_by_default(signum: int) -> None:
    """End this process as ``signum`` would without a handler."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in this process, as Ctrl-C does. A
    process forked inside the block (a worker) that gets SIGTERM ends as by default. Outside
    the main thread nothing is changed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def interrupt(signum, frame) -> None:
        if os.getpid() != owner:
            _end_as_by_default(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[StopRequest]:
    """Note the first Ctrl-C or SIGTERM in ``request.requested`` instead of raising
    KeyboardInterrupt; a second one raises it at once. A forked worker goes on with its task
    on Ctrl-C and ends on SIGTERM. Outside the main thread nothing is changed."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    owner = os.getpid()
    previous = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}

    def note(signum, frame) -> None:
        if os.getpid() != owner:  # a forked worker finishes its task on Ctrl-C; SIGTERM ends it
            if signum == signal.SIGTERM:
                _end_as_by_default(signum)
            return
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True

    for signum in _STOP_SIGNALS:
        signal.signal(signum, note)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

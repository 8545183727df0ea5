"""Ctrl-C that waits for the end of a step: the first SIGINT is only noted, so a loop can
finish its step, save, and stop cleanly; a second one interrupts at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["StopRequest", "deferred_interrupt"]


class StopRequest:
    """Whether Ctrl-C was pressed inside :func:`deferred_interrupt`."""

    def __init__(self) -> None:
        self.requested = False


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[StopRequest]:
    """Note the first Ctrl-C in ``request.requested`` instead of raising KeyboardInterrupt;
    a second Ctrl-C raises it at once. Outside the main thread nothing is changed."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = signal.getsignal(signal.SIGINT)

    def note(signum, frame) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True

    signal.signal(signal.SIGINT, note)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)

"""Ctrl-C and SIGTERM (`kill`, `ray job stop`) end a run the same way: at once, in one line, with the
committed rounds kept. Ray-free; actors.cluster installs the handler once Ray is up.

ray.init installs its own SIGTERM handler, which raises SystemExit: a run then waited for its busy
coordinator's graceful close, and a compare died in an abort of Ray's core worker. Ours raises
KeyboardInterrupt, which every layer already ends a run on. Ray turns an interrupt that arrives
inside one of its calls into a plain KeyboardInterrupt, so whether it was SIGTERM is kept here.
"""

from __future__ import annotations

import signal
import threading

_terminated = False


def raise_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread (signals reach no other)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum, frame):
    global _terminated
    _terminated = True
    raise KeyboardInterrupt("SIGTERM")


def terminated() -> bool:
    """Whether SIGTERM arrived since the handler was installed (or since the last reset)."""
    return _terminated


def reset() -> None:
    global _terminated
    _terminated = False

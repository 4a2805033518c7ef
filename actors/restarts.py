"""Waiting for Ray to bring restarted actors back (the scoring pool's, after a scorer died mid-pass)."""

from __future__ import annotations

import time

import ray


def wait_until_ready(actors: list, deadline_s: float, first_backoff_s: float = 0.2, max_backoff_s: float = 5.0) -> None:
    """Block until every actor answers `ready()`, asking again while Ray restarts it.

    A call to an actor that is restarting fails at once (ActorUnavailableError) instead of
    waiting for it, so a pass redone straight after a death could land before the restart is
    done, as often as it is retried. An actor out of restarts raises ActorDiedError at once.
    """
    deadline, backoff = time.monotonic() + deadline_s, first_backoff_s
    for actor in actors:
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise ray.exceptions.GetTimeoutError
                ray.get(actor.ready.remote(), timeout=left)
                break
            except ray.exceptions.ActorUnavailableError:
                time.sleep(min(backoff, max(left, 0.0)))
                backoff = min(2 * backoff, max_backoff_s)
            except ray.exceptions.GetTimeoutError:
                raise TimeoutError(f"a restarted scoring actor did not come back within {deadline_s:g} s") from None

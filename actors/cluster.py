"""Which Ray a run uses: its own local one, or a cluster named explicitly; and a quiet console.

`ray.init()` without an address joins "the latest cluster started on this machine", which it
reads from /tmp/ray/ray_current_cluster even when that cluster died long ago: the run then
waits minutes for a GCS that will never answer. So a run without an address always starts its
own local Ray, and one with an address (`--address`, or RAY_ADDRESS, which `ray job submit`
sets) first checks that something listens there, and fails in seconds with one line if not.
`--address auto` keeps Ray's own meaning, for people on a head node.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import tempfile
import time

from actors.ray_private import replace_console_printer
from pipeline.errors import ClactiveError, first_line
from pipeline.loop import interrupts

REACH_TIMEOUT_S = 10  # how long a refused address is retried: a head that is just starting gets this long
CONNECT_TIMEOUT_S = 5  # one try's: an address that drops packets instead of refusing them
RAY_TEMP_DIR = "/tmp/ray"  # where `ray start` records the latest cluster's address (Ray's default)
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"
# A raylet with more workers than CPUs (a run's actors count) kills a task worker after 1 s idle,
# so every scoring pass started its read tasks' worker processes anew, and their imports of Ray
# and pyarrow took the cores the scorer computed on (README, "Where a scoring pass's time goes").
# Kept 5 min, they serve every pass of a run whose rounds are shorter; cluster.yaml sets the same.
IDLE_WORKER_ENV, IDLE_WORKER_MS = "RAY_idle_worker_killing_time_threshold_ms", "300000"


def requested_address(address: str | None) -> str | None:
    """The address a run was given: --address, else RAY_ADDRESS, else None (start a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def connect(address: str | None = None, verbose: bool = False) -> None:
    """Start this run's local Ray, or join the cluster at `address`; once per process.

    Raises ClactiveError (one line: the address, why, what to do) when `address` cannot be reached.
    """
    import ray

    if ray.is_initialized():
        return
    address = requested_address(address)
    quiet = dict(log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR)
    if not verbose:
        _keep_raylet_messages_off_the_console()
    if address is None:
        _start_local(quiet)
    else:
        _join(address, quiet)
    interrupts.raise_on_sigterm()  # in place of ray.init's own: pipeline/loop/interrupts.py says why


def _join(address: str, quiet: dict) -> None:
    import ray

    if address == "auto":
        address = _latest_cluster()
    if not address.startswith("ray://"):
        _check_reachable(address)
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, TimeoutError) as exc:
        raise ClactiveError(f"cannot join the Ray cluster at {address} ({first_line(exc)}): {_ADDRESS_FIX}") from None


_ADDRESS_FIX = (
    "check --address / RAY_ADDRESS (the head's host:port, 6379 unless `ray start --port` said "
    "otherwise), or leave both out to run on a Ray started for this run"
)


def _start_local(quiet: dict) -> None:
    """A Ray of this process's own, in a temporary directory of its own.

    Ray's processes look up "the cluster on this machine" themselves (Ray Train's placement-group
    cleaner asks the state API through it): in the shared /tmp/ray they would find a dead head,
    and wait on it for seconds at every call, or another live cluster, whose answers are wrong for
    this one. In a directory of its own the record names this run's Ray, as `ray start` would
    write it. The directory holds Ray's logs, and is left for them when the run ends.
    """
    import ray

    # short: Ray puts its sockets in it
    temp_dir = os.path.join(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir(), f"clactive-{os.getpid()}")
    os.environ["RAY_TMPDIR"] = temp_dir  # before ray.init: every process Ray starts inherits it
    # Ray Train watches for nodes being drained (spot preemption) from an actor of its own; a Ray on
    # one machine has no other node, so that is a process (and its imports) per run for nothing.
    os.environ.setdefault(PREEMPTION_WATCHER_ENV, "0")
    os.environ.setdefault(IDLE_WORKER_ENV, IDLE_WORKER_MS)
    ray.init(address="local", **quiet)
    ray_dir = os.path.join(temp_dir, "ray")
    with open(os.path.join(ray_dir, "ray_current_cluster"), "w") as f:
        f.write(ray.get_runtime_context().gcs_address)


OUT_OF_MEMORY = re.compile(r"out of memory|OutOfMemory|memory monitor", re.IGNORECASE)


def _keep_raylet_messages_off_the_console() -> None:
    """Ray prints the messages its raylets publish ("N worker processes have been started ...",
    a task killed, ...) on this process's stdout whatever `log_to_driver` says; each is also in the
    raylet's own log file. Off the console they go, but for the one a user must act on: a process
    killed because a node ran out of memory, said in clactive's words."""

    def rephrase(data: dict, ignore_prefix: bool) -> None:
        for line in data.get("lines", []):
            if OUT_OF_MEMORY.search(line):
                print(
                    f"clactive: warning: Ray killed a process because its node ran out of memory; it is "
                    f"restarted up to its retry limit, but if this repeats lower scoring.batch_size or give the "
                    f"nodes more memory (Ray's message: {line.strip()[:200]})",
                    file=sys.stderr,
                    flush=True,
                )

    replace_console_printer(rephrase)


def _latest_cluster() -> str:
    path = os.path.join(RAY_TEMP_DIR, "ray_current_cluster")
    try:
        with open(path) as f:
            address = f.read().strip()
    except OSError:
        address = ""
    if not address:
        raise ClactiveError(
            f"--address auto: no Ray cluster was started on this machine ({path} is missing): "
            "start one with `ray start --head`, or leave --address out to run on a Ray started "
            "for this run"
        )
    return address


def _check_reachable(address: str) -> None:
    """Fail fast when nothing accepts connections at host:port (Ray itself would wait for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClactiveError(f"--address {address}: write host:port (e.g. 10.0.0.5:6379), auto, or ray://host:port")
    deadline = time.monotonic() + REACH_TIMEOUT_S
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ClactiveError(
                    f"no Ray cluster answers at {address} ({exc.strerror or exc}): {_ADDRESS_FIX}"
                ) from None
            time.sleep(1)

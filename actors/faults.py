"""Test hooks for crash-and-resume and fault tests: pause or crash at a named point of a round.

A hook is "<round>:<stage>:<action>"; several may be given, comma-separated. Stages, in the process where they fire:
  scorer  a scoring actor, as it scores its first batch
  label   the coordinator, labels acquired, the round not committed
  train   Ray Train worker rank 0, as the update starts
Actions:
  pause       drop a marker `.hook-<round>-<stage>` in the run directory and sleep, so a test can
              SIGKILL the whole run at that point;
  hold        as pause, once: the process started in its place goes on, so a test can remove the
              node the process runs on and let Ray start it elsewhere;
  crash       the process dies there (os._exit), once: the marker stops the process Ray restarts
              from dying again;
  slow_crash  as crash, and the process Ray starts in its place takes SLOW_RESTART_S before it
              serves: recovery must wait for a restart, however long it takes, not race it.
Hooks come only from CLACTIVE_TEST_HOOK, read by the CLI; without it they do nothing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from pipeline.loop.run_store import RoundWriter, RunStore
from pipeline.storage import Storage

HOOK_ENV = "CLACTIVE_TEST_HOOK"
STAGES = ("scorer", "label", "train")
ACTIONS = ("pause", "hold", "crash", "slow_crash")
SLOW_RESTART_S = 5.0  # "several seconds": far longer than a retry straight after a death takes to land


def marker_name(round_index: int, stage: str) -> str:
    return f".hook-{round_index}-{stage}"


def check_hook(specs: str) -> None:
    for spec in specs.split(","):
        parts = spec.split(":")
        if len(parts) != 3 or not parts[0].isdigit() or parts[1] not in STAGES or parts[2] not in ACTIONS:
            raise ValueError(f"{HOOK_ENV}={specs!r}: write <round>:<{'|'.join(STAGES)}>:<{'|'.join(ACTIONS)}>[,...]")


@dataclass(frozen=True)
class Hook:
    """The hook of one round of one run; `at(stage)` fires it when it names this round and stage."""

    spec: str | None = None
    run_dir: str = ""
    round_index: int = -1

    def _specs(self) -> list[tuple[int, str, str]]:
        return [
            (int(r), stage, action) for r, stage, action in (s.split(":") for s in (self.spec or "").split(",") if s)
        ]

    def at(self, stage: str) -> None:
        actions = [
            action for at_round, at_stage, action in self._specs() if (at_round, at_stage) == (self.round_index, stage)
        ]
        if not actions:
            return
        action, storage, marker = actions[0], Storage(self.run_dir), marker_name(self.round_index, stage)
        if action == "pause":
            storage.write(marker, b"")
            time.sleep(3600)
        elif not storage.is_file(marker):  # the others: once
            storage.write(marker, b"")
            if action == "hold":
                time.sleep(3600)
            os._exit(1)

    def starting(self, stage: str) -> None:
        """Called as a process of `stage` starts (any round): after its slow_crash, the first
        process started in the dead one's place sleeps SLOW_RESTART_S, once."""
        storage = Storage(self.run_dir)
        for at_round, at_stage, action in self._specs():
            slept = marker_name(at_round, stage) + "-slow"
            if (
                (at_stage, action) == (stage, "slow_crash")
                and storage.is_file(marker_name(at_round, stage))
                and not storage.is_file(slept)
            ):
                storage.write(slept, b"")
                time.sleep(SLOW_RESTART_S)


class LabelHookStore(RunStore):
    """A RunStore whose round writers fire the `label` hook once a round's labels are written and
    before it commits: the coordinator hands this to the round loop, which never sees a hook."""

    def __init__(self, run_dir: str, spec: str | None = None):
        super().__init__(run_dir)
        self.spec = spec

    def _writer(self, round_index: int) -> RoundWriter:
        return _LabelHookWriter(self, round_index)


class _LabelHookWriter(RoundWriter):
    def __init__(self, store: LabelHookStore, round_index: int):
        super().__init__(store, round_index)
        self.hook = Hook(store.spec, store.location, round_index)

    def labels(self, pool_ids: np.ndarray, labels: np.ndarray) -> None:
        super().labels(pool_ids, labels)
        self.hook.at("label")

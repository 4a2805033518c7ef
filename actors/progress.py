"""A round's live progress: the processes doing a stage's work report counts to the coordinator,
and the driver polls the coordinator for one snapshot a second (pipeline.report.progress draws it).

    scorers (examples scored) ─┐
                               ├─> coordinator: StageBoard ─> driver: Progress line
    Train worker (steps done) ─┘

Reports are fire-and-forget actor calls at most one a second per process, so a pass of thousands
of batches sends a handful; a report that arrives after its stage ended carries the old stage's
token and is dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sink:
    """Where a worker sends its counts: the coordinator's handle and the stage they belong to."""

    coordinator: Any  # a Ray actor handle with report_progress(token, part, done): Ray types its methods no further
    token: int


class StageBoard:
    """The stage the coordinator's round is in and the counts its workers reported (no Ray)."""

    def __init__(self) -> None:
        self.token = 0
        self.current: dict | None = None
        self.parts: dict[str, int] = {}

    def stage(self, round_index: int, name: str, total: int | None, unit: str) -> int:
        self.token += 1
        self.current = {"round": round_index, "stage": name, "total": total, "unit": unit}
        self.parts = {}
        return self.token

    def report(self, token: int, part: str, done: int) -> None:
        if token == self.token:
            self.parts[part] = done

    def snapshot(self) -> dict | None:
        """{"round", "stage", "total", "unit", "done"} of the running stage, or None before the first."""
        return None if self.current is None else {**self.current, "done": sum(self.parts.values())}


class Reporter:
    """A worker's side: `reporter(done)` sends its running count at most every `interval_s`;
    `reporter(done, final=True)` always sends. A None sink (no coordinator: tests, benchmarks) sends nothing."""

    def __init__(self, sink: Sink | None, part: str, interval_s: float = 1.0):
        self.sink, self.part, self.interval_s = sink, part, interval_s
        self.last = float("-inf")

    def __call__(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if self.sink is None or (not final and now - self.last < self.interval_s):
            return
        self.last = now
        self.sink.coordinator.report_progress.remote(self.sink.token, self.part, done)

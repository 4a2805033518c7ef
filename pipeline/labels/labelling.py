"""Who labels a round's selection, behind one `ask()` (pipeline.loop.rounds.Oracle): the simulated
oracle, which reveals the pool's label column at once, and people, through the label requests of
pipeline.labels.requests, which pause the round until they have answered. No Ray."""

from __future__ import annotations

import time

from pipeline.data import PreparedData
from pipeline.data.rows import read_labels, read_rows
from pipeline.labels.requests import LabelRequests, Request
from pipeline.loop.preflight import RunPlan
from pipeline.loop.run_store import RunStore
from pipeline.loop.seams import Answer, Selection


def make_oracle(plan: RunPlan, store: RunStore, accept_partial: bool = False):
    """The oracle `plan.config.oracle` names; accept_partial: people's round continues with the answers so far."""
    if plan.config.oracle == "external":
        return ExternalOracle(store, plan.data, plan.num_rounds, accept_partial)
    return SimulatedOracle(plan.data)


class SimulatedOracle:
    """Reveals the pool's label column at once: the oracle of benchmarks and of the paper."""

    may_pause = False

    def __init__(self, data: PreparedData):
        self.data = data

    def asked(self, round_index: int) -> Selection | None:
        return None

    def ask(self, round_index: int, chosen: Selection, hints, elapsed_s: float) -> Answer:
        return Answer(chosen.pool_ids, read_labels(chosen.pool or self.data.split_dir("pool"), chosen.pool_ids))


class ExternalOracle:
    """People: a round's first ask writes its request and returns waiting; once answers are stored
    (`clactive label import`), ask returns them, all of them unless accept_partial."""

    may_pause = True

    def __init__(self, store: RunStore, data: PreparedData, num_rounds: int, accept_partial: bool = False):
        self.requests, self.data = LabelRequests(store), data
        self.num_rounds, self.accept_partial = num_rounds, accept_partial

    def asked(self, round_index: int) -> Selection | None:
        """The selection round `round_index`'s request holds, with the random state selection left."""
        request = self.requests.get(round_index)
        if request is None:
            return None
        meta = request.meta
        return Selection(
            request.pool_ids,
            None,
            meta["admitted"],
            meta["candidates"],
            meta["seconds"],
            meta["rng"],
            score_mean=meta.get("score_mean"),
        )

    def ask(self, round_index: int, chosen: Selection, hints, elapsed_s: float) -> Answer:
        request = self.requests.get(round_index) or self._write(round_index, chosen, hints, elapsed_s)
        if request.answered == 0 or (request.missing and not self.accept_partial):
            return Answer(waiting={"round": round_index, "waiting": request.missing, "requested": request.requested})
        pool_ids, labels = request.answered_ids()
        return Answer(
            pool_ids,
            labels,
            record={
                "requested": request.requested,
                "answered": int(len(pool_ids)),
                "answer_wait_s": time.time() - request.meta["created"],
            },
            seconds_before=request.meta["paused_after_s"],
        )

    def _write(self, round_index: int, chosen: Selection, hints, elapsed_s: float) -> Request:
        """The request: the chosen ids in selection order, their images, the selection model's hints
        (none in round 0), and what resuming the round needs."""
        start = time.perf_counter()
        images, _ = read_rows(chosen.pool or self.data.split_dir("pool"), chosen.pool_ids, self.data.image_shape)
        hint_values = hints(chosen.pool_ids, images) if hints is not None else None
        hints_s = time.perf_counter() - start
        meta = {
            "num_classes": self.data.num_classes,
            "num_rounds": self.num_rounds,
            "rng": chosen.rng_state,
            "admitted": chosen.admitted,
            "candidates": int(chosen.candidates),
            "score_mean": chosen.score_mean,
            "seconds": {**chosen.seconds, "hints": hints_s},
            "paused_after_s": elapsed_s + hints_s,
            "created": time.time(),
        }
        return self.requests.create(round_index, chosen.pool_ids, images, hint_values, meta)

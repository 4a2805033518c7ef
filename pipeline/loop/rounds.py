"""One run's rounds, top-down, with no Ray: what a round does, in the order it does it.

    [1/6] select   the pool at round r (a growing pool takes in its new classes or arrival shards
                   first) and the ids to label from it: a random initial set in round 0, the
                   scorers' top k after
    [2/6] ask      the oracle: the simulated one reveals the label column at once; an external one
                   (people, see pipeline.labels.requests) writes a request and the round pauses until it
                   is answered; a request written earlier already holds this round's selection
    [3/6] label    the answered labels join the labelled set, written to the round's directory
    [4/6] plan     the strategy says what to train, from where, on which ids, how many steps
    [5/6] update   the learner trains, then evaluates on the validation split (what choices read)
                   and the test split (what reports)
    [6/6] commit   labels, strategy state, checkpoint, rng state, the model's predictions on the stop
                   set and record, in one atomic step; a stopping criterion that holds (pipeline.loop.stopping)
                   says so in the record, and the run is finished there

The scorers, the learner and the oracle come in behind the small interfaces of pipeline.loop.seams; Ray's side
(actors/coordinator.py) passes its actors in, a unit test passes stand-ins. A Rounds started on a
run directory that holds committed rounds continues after the last one with the same labels,
memory, weights, optimizer state and random state; a round a crash interrupted left nothing
behind and is redone from its start. A round paused for an external oracle keeps its selection
and the random state selection left in its request, so the round resumed days later labels
exactly those ids and the run makes the choices an unbroken run with the simulated oracle would.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from pipeline.data.growth import create_growth
from pipeline.data.rows import parquet_dataset
from pipeline.ids import positions_of
from pipeline.loop.candidates import Candidates
from pipeline.loop.preflight import RunPlan
from pipeline.loop.records import class_figures, round_record, stop_set_kappa, target_record
from pipeline.loop.run_store import RoundWriter, RunStore
from pipeline.loop.seams import Answer, Learner, Oracle, Scorers, Selection, UpdateResult
from pipeline.loop.stopping import create_criteria, first_stop
from pipeline.update.strategies import UpdatePlan, create_strategy


class Rounds:
    def __init__(
        self,
        plan: RunPlan,
        store: RunStore,
        scorers: Scorers,
        learner: Learner,
        oracle: Oracle,
        restarted: bool = False,
        on_stage: Callable | None = None,
    ):
        config, data = plan.config, plan.data
        self.plan, self.config, self.data, self.store = plan, config, data, store
        self.scorers, self.learner, self.oracle = scorers, learner, oracle
        # on_stage(round, stage, total, unit): a long stage begins (scoring, update, target fit), for progress
        self.on_stage = on_stage or (lambda *stage: None)
        self.strategy = create_strategy(config, max(plan.round_sizes, default=plan.initial_size))
        self.growth = create_growth(config, data)
        self.candidates = Candidates(config, data, store, scorers)
        self.rng = np.random.default_rng(config.seed)
        self.round = 0
        self.labelled_ids = np.empty(0, dtype=np.int64)
        self.labels = np.empty(0, dtype=np.int64)  # ids and labels only: the pixels stay in the pool
        self.weights: bytes | None = None  # the selection model's latest checkpoint
        self.admitted: list[str] = []  # arrival shards in the pool, in the order committed rounds admitted them
        self.restart_unreported = restarted  # the next committed round's record says the coordinator restarted
        self.criteria = create_criteria(config.stopping)
        self.stop_set: np.ndarray | None = None  # the last committed model's predictions on the stop set
        self.stopped = False  # a stopping criterion ended the run after its last committed round
        self.resumed_records = self._resume()

    def run_round(self, r: int) -> dict:
        """Round r; idempotent, so a restarted coordinator may be asked for it again.

        Returns the round's record, or {"round": r, "waiting": labels missing, "requested": ...}
        while an external oracle has not answered round r's request (written on the first call).
        """
        if r < self.round:
            return self.store.records()[r]
        self._check_next(r)
        round_start = time.perf_counter()

        # [1/6] select. The worker group comes up meanwhile, unless the round may pause for people.
        chosen = self.oracle.asked(r)
        if chosen is None:
            if not self.oracle.may_pause:
                self.learner.start()
            chosen = self._select(r)

        # [2/6] ask
        answer = self.oracle.ask(r, chosen, self._hints(r), elapsed_s=time.perf_counter() - round_start)
        if answer.waiting is not None:
            return answer.waiting
        answered_ids, answered_labels = _answered(answer)
        self.learner.start()
        self.rng.bit_generator.state = chosen.rng_state
        seconds = dict(chosen.seconds)

        # [3/6] label
        writer, labelled_ids, labels, seconds["label"] = self._label(r, answered_ids, answered_labels)

        # [4/6] plan
        plan = self.strategy.plan(r, answered_ids, answered_labels, labelled_ids, self.rng)

        # [5/6] update and evaluate. The next round's scorers start now: their start-up (a process, torch,
        # the model) overlaps the update instead of adding to the next round's scoring pass.
        if r + 1 < self.plan.num_rounds:
            self.scorers.start()
        self.on_stage(r, "update", plan.steps, "steps")
        rows_from = self.growth.rows_from(self.admitted + chosen.admitted)
        result = self._update(plan, labelled_ids, labels, rows_from, seed=self._seed(r), seconds=seconds)

        # [6/6] commit: until the rename inside, a crash leaves the previous round as the last one
        seconds["round"] = time.perf_counter() - round_start + answer.seconds_before
        record = self._commit(r, writer, chosen, answer, plan, result, seconds, len(labelled_ids))
        self.labelled_ids, self.labels = labelled_ids, labels
        self.weights, self.stop_set, self.stopped = result.checkpoint, result.stop_predictions, "stopped" in record
        self.admitted += chosen.admitted
        self.round += 1
        return record

    def train_target(self, upto_round: int) -> dict:
        """The quality measure: the target, from scratch, on the labels acquired up to and including
        round `upto_round` (which must be committed); done once, then read from the run directory."""
        name = f"targets/{upto_round:04d}.json"
        done = self.store.read_json(name)
        if done is not None:
            return done
        if upto_round >= self.round:
            raise IndexError(f"round {upto_round} is not committed yet; the run has {self.round} rounds")
        count = self.store.records()[upto_round]["labelled"]
        ids, labels = self.labelled_ids[:count], self.labels[:count]
        plan = self.strategy.from_scratch("target", ids)
        self.on_stage(upto_round, "target fit", plan.steps, "steps")
        seconds: dict[str, float] = {}
        rows_from = self.growth.rows_from(self.admitted)
        result = self._update(plan, ids, labels, rows_from, seed=self._seed(10_000 + upto_round), seconds=seconds)
        figures = class_figures(result, self._seen_per_round(upto_round), self.store.records()[:upto_round])
        fit = target_record(self.config, upto_round, int(count), result, figures, seconds["update"])
        self.store.write_json(name, fit)
        return fit

    def close(self) -> None:
        self.learner.close()
        self.scorers.close()

    # --- the steps' parts ---------------------------------------------------------------------

    def _check_next(self, r: int) -> None:
        if self.stopped:
            raise IndexError(f"round {r} asked for, but the run stopped after round {self.round - 1}")
        if r != self.round or r >= self.plan.num_rounds:
            raise IndexError(
                f"round {r} asked for, but the next of this run's {self.plan.num_rounds} rounds is {self.round}"
            )

    def _resume(self) -> list[dict]:
        self.store.discard_uncommitted()
        rounds = self.store.committed_rounds()
        if not rounds:
            return []
        self.labelled_ids, self.labels = self.store.load_labels()
        saved = self.store.load_round_state(rounds[-1])
        self.strategy.load_state_dict(saved["strategy"])
        self.rng.bit_generator.state = saved["rng"]
        self.weights = saved["checkpoint"]
        self.round = rounds[-1] + 1
        self.stop_set = self.store.load_stop_set(rounds[-1])
        records = self.store.records()
        self.stopped = "stopped" in records[-1]
        self.admitted = [path for record in records for path in record.get("admitted", [])]
        return records

    def _select(self, r: int) -> Selection:
        """The pool at round r (arrival shards admitted here are committed with the round) and the ids
        to label from it: a random initial set in round 0, the scorers' choice after."""
        admitted = self.growth.admit(r, self.admitted)
        pool = self.growth.files(r, self.admitted + admitted)
        start = time.perf_counter()
        if r == 0:
            ids = parquet_dataset(pool or self.data.split_dir("pool")).to_table(columns=["id"]).column("id")
            chosen = self.rng.choice(ids.to_numpy(), size=self.plan.initial_size, replace=False)
            seconds = dict(score=0.0, select=time.perf_counter() - start, score_compute=0.0)
            return Selection(chosen, pool, admitted, len(ids), seconds, self.rng.bit_generator.state)
        k = self.plan.round_sizes[r - 1]
        candidate_ids, found_s = self.candidates.draw(pool, self.labelled_ids, k, self._seed(r))
        draw_s = time.perf_counter() - start  # a neighbour index's build and query included
        if candidate_ids is not None:
            total: int | None = len(candidate_ids)
        else:  # a grown pool's unlabelled count is the scorers' to find
            total = self.data.pool_size - len(self.labelled_ids) if pool is None else None
        self.on_stage(r, "scoring", total, "examples")
        if self.weights is None:
            raise IndexError(f"round {r} asked to score the pool, but no round committed a model yet")
        scored = self.scorers.select(self.weights, self.labelled_ids, k, self._seed(r), r, pool, candidate_ids)
        seconds = {**scored.seconds, **found_s, "select": scored.seconds["select"] + draw_s}
        return Selection(
            scored.pool_ids,
            pool,
            admitted,
            scored.candidates,
            seconds,
            self.rng.bit_generator.state,
            scored.redone,
            scored.score_mean,
            scored.peak_rss_mib,
        )

    def _hints(self, r: int) -> Callable | None:
        """The model's guesses for people, per requested id (None in round 0: no model yet)."""
        if r == 0 or self.weights is None:
            return None
        weights, seed = self.weights, self._seed(r)
        return lambda ids, images: self.scorers.hints(weights, ids, images, seed)

    def _label(
        self, r: int, answered_ids: np.ndarray, answered_labels: np.ndarray
    ) -> tuple[RoundWriter, np.ndarray, np.ndarray, float]:
        """Round r's answers into its (uncommitted) round directory: (writer, labelled_ids and labels
        with the answers appended, seconds)."""
        start = time.perf_counter()
        writer = self.store.begin_round(r)
        writer.labels(answered_ids, answered_labels)
        labelled_ids = np.concatenate([self.labelled_ids, answered_ids])
        labels = np.concatenate([self.labels, answered_labels])
        return writer, labelled_ids, labels, time.perf_counter() - start

    def _update(
        self,
        plan: UpdatePlan,
        labelled_ids: np.ndarray,
        labels: np.ndarray,
        rows_from: list[str] | None,
        seed: int,
        seconds: dict[str, float],
    ) -> UpdateResult:
        """The learner's update; its seconds go into `seconds` (update, train, eval, read_rows, and
        learner_overhead: the rest, the workers' read of their rows included)."""
        start = time.perf_counter()
        positions = positions_of(labelled_ids, plan.train_ids)  # into the labelled arrays (ids may repeat in the plan)
        # A warm start continues from the last committed weights whenever the worker group holds no
        # live model: the first update after a resume, or one redone after a worker failure.
        resume_from = self.weights if plan.warm_start else None
        result = self.learner.update(
            plan, labels[positions], rows_from, seed=seed, resume_from=resume_from, round_index=self.round
        )
        seconds["update"] = time.perf_counter() - start
        seconds.update(
            train=result.train_s,
            eval=result.eval_s,
            read_rows=result.read_s,
            learner_overhead=seconds["update"] - result.train_s - result.eval_s,
        )
        return result

    def _commit(
        self,
        r: int,
        writer: RoundWriter,
        chosen: Selection,
        answer: Answer,
        plan: UpdatePlan,
        result: UpdateResult,
        seconds: dict[str, float],
        labelled: int,
    ) -> dict:
        """Round r's state, stop-set predictions and record, committed in one step; a stopping
        criterion that holds says so in the record, and the run is finished there."""
        writer.state(self.strategy.state_dict(), self.rng.bit_generator.state, result.checkpoint)
        writer.stop_set(result.stop_predictions)
        figures = class_figures(result, self._seen_per_round(r), self.store.records()[:r])
        record = round_record(self.config, r, chosen, answer, plan, result, seconds, labelled, figures)
        if self.growth.records_admitted:
            record["admitted"] = chosen.admitted
        record.update(stop_set_kappa(self.stop_set, result, self.data.num_classes))
        if self.restart_unreported:
            record["coordinator_restarted"], self.restart_unreported = True, False
        stop = first_stop(self.criteria, self.store.records() + [record]) if r < self.plan.last_round else None
        if stop is not None:  # the run is finished: the budget is no longer the only end
            record["stopped"] = stop
        writer.commit(record)
        return record

    def _seen_per_round(self, r: int) -> list[tuple[int, ...]] | None:
        """The classes in the pool at rounds 0..r; None when the pool does not grow by class."""
        seen = [self.growth.classes(i) for i in range(r + 1)]
        return None if seen[-1] is None else [c for c in seen if c is not None]

    def _seed(self, round_index: int) -> int:
        return self.config.seed * 1_000_003 + round_index


def _answered(answer: Answer) -> tuple[np.ndarray, np.ndarray]:
    """The answered ids and their labels of an answer that is not waiting for people."""
    if answer.pool_ids is None or answer.labels is None:
        raise ValueError("an oracle answered neither labels nor that it waits for them")
    return answer.pool_ids, answer.labels

"""One run's rounds, top-down, with no Ray: what a round does, in the order it does it.

    [1/6] select   the pool at round r (a growing pool takes in its new classes or arrival shards
                   first) and the ids to label from it: a random initial set in round 0, the
                   scorers' top k after
    [2/6] ask      the oracle: the simulated one reveals the label column at once; an external one
                   (people, see pipeline.labels.oracle) writes a request and the round pauses until it
                   is answered; a request written earlier already holds this round's selection
    [3/6] label    the answered labels join the labelled set, written to the round's directory
    [4/6] plan     the strategy says what to train, from where, on which ids, how many steps
    [5/6] update   the learner trains and evaluates on the test split
    [6/6] commit   labels, strategy state, checkpoint, rng state, the model's predictions on the stop
                   set and record, in one atomic step; a stopping criterion that holds (pipeline.loop.stopping)
                   says so in the record, and the run is finished there

The scorers, the learner and the oracle come in behind the small interfaces below; Ray's side
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
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pipeline.config.schedule import to_count
from pipeline.data.base import parquet_dataset
from pipeline.data.growth import classes_at, forgetting, per_class_accuracy, seen_accuracy
from pipeline.data.pool import admit_arrivals, class_shards, pool_ids, split_files
from pipeline.ids import positions_of
from pipeline.loop.preflight import RunPlan
from pipeline.loop.proc import peak_rss_mib
from pipeline.loop.run_store import RunStore
from pipeline.loop.stopping import cohens_kappa, create_criteria, first_stop
from pipeline.selection.acquisition import draw_candidates
from pipeline.update.strategies import UpdatePlan, create_strategy


@dataclass(frozen=True)
class Selection:
    """What step [1/6] chose, and from which pool."""

    pool_ids: np.ndarray  # to label, in selection order
    pool: list[str] | None  # the pool's Parquet files this round (None: the prepared pool)
    admitted: list[str]  # arrival shards that joined the pool this round
    candidates: int  # unlabelled examples considered
    seconds: dict[str, float]  # score, select, score_compute (and where the rest of the pass went)
    rng_state: dict  # the run's random state once selection was done
    redone_passes: int = 0  # scoring passes redone because a scorer died
    score_mean: float | None = None  # the chosen batch's mean acquisition score (None: round 0, set-based)
    scorer_rss_mib: float | None = None  # the largest scorer's peak resident memory (None: no scoring)


@dataclass(frozen=True)
class Answer:
    """What step [2/6] got back: labels for (some of) the selection, or nothing yet."""

    pool_ids: np.ndarray | None = None  # answered ids, in selection order (None: waiting)
    labels: np.ndarray | None = None
    waiting: dict | None = None  # {"round", "waiting": labels missing, "requested"} while people label
    record: dict = field(default_factory=dict)  # what the oracle adds to the round's record
    seconds_before: float = 0.0  # the round's time before it paused for people (their wait excluded)


class Scorers(Protocol):
    def start(self) -> None:
        """Start the scoring processes in the background, if they are not up yet."""

    def select(
        self,
        weights: bytes,
        labelled_ids: np.ndarray,
        k: int,
        seed: int,
        round_index: int,
        pool: list[str] | None,
        candidate_ids: np.ndarray | None,
    ) -> tuple[np.ndarray, dict]:
        """The top k pool ids under `weights` among `candidate_ids` (ascending; None: every unlabelled
        id), and {score, select, score_compute: seconds, candidates: unlabelled examples scored,
        redone: passes redone, score_mean: the chosen ids' mean score, None for set-based selection}."""

    def hints(self, weights: bytes, pool_ids: np.ndarray, images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        """For people: the model's predicted label, its probability and the acquisition score, per id."""

    def close(self) -> None: ...


class Learner(Protocol):
    def start(self) -> None:
        """Start the worker group in the background, if it is not up yet."""

    def update(
        self,
        plan: UpdatePlan,
        labels: np.ndarray,
        rows_from: list[str] | None,
        seed: int,
        resume_from: bytes | None,
        round_index: int,
    ) -> dict:
        """Train as `plan` says on its train_ids with `labels` (aligned), the rows read by id from the
        Parquet files `rows_from` (None: the prepared pool), evaluate on the test split: {checkpoint, steps,
        loss, test_acc, class_correct, class_total, test_predictions, read_s, train_s, eval_s, device}; the
        first update of a worker group this process started adds {learner_launch_s, resources}."""

    def close(self) -> None: ...


class Oracle(Protocol):
    may_pause: bool  # whether ask() may return before the labels exist (people label)

    def asked(self, round_index: int) -> Selection | None:
        """The selection an earlier call asked people to label (external oracle), else None."""

    def ask(self, round_index: int, chosen: Selection, hints: Callable | None, elapsed_s: float) -> Answer:
        """Labels for `chosen`; `hints(pool_ids, images)` are the model's guesses for people (None in
        round 0); `elapsed_s`: the round's time so far."""


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
        self.rng = np.random.default_rng(config.seed)
        self.round = 0
        self.labelled_ids = np.empty(0, dtype=np.int64)
        self.labels = np.empty(0, dtype=np.int64)  # ids and labels only: the pixels stay in the pool
        self.weights: bytes | None = None  # the selection model's latest checkpoint
        self.admitted: list[str] = []  # arrival shards in the pool, in the order committed rounds admitted them
        self._class_files: dict[int, list[str]] | None = None
        self.restart_unreported = restarted  # the next committed round's record says the coordinator restarted
        self.criteria = create_criteria(config.stopping)
        self.stop_set: np.ndarray | None = None  # the last committed model's predictions on the test images
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
        hints = None if r == 0 else (lambda ids, images: self.scorers.hints(self.weights, ids, images, self._seed(r)))
        answer = self.oracle.ask(r, chosen, hints, elapsed_s=time.perf_counter() - round_start)
        if answer.waiting is not None:
            return answer.waiting
        self.learner.start()
        self.rng.bit_generator.state = chosen.rng_state
        seconds = dict(chosen.seconds)

        # [3/6] label
        writer, labelled_ids, labels, seconds["label"] = self._label(r, answer)

        # [4/6] plan
        plan = self.strategy.plan(r, answer.pool_ids, answer.labels, labelled_ids, self.rng)

        # [5/6] update and evaluate. The next round's scorers start now: their start-up (a process, torch,
        # the model) overlaps the update instead of adding to the next round's scoring pass.
        if r + 1 < self.plan.num_rounds:
            self.scorers.start()
        self.on_stage(r, "update", plan.steps, "steps")
        result, seconds["update"] = self._update(
            plan, labelled_ids, labels, self._rows_from(chosen.admitted), seed=self._seed(r)
        )
        # learner_overhead keeps the workers' read of their rows: it replaced shipping them from here
        seconds.update(
            train=result["train_s"],
            eval=result["eval_s"],
            read_rows=result["read_s"],
            learner_overhead=seconds["update"] - result["train_s"] - result["eval_s"],
        )

        # [6/6] commit: until the rename inside, a crash leaves the previous round as the last one
        writer.state(self.strategy.state_dict(), self.rng.bit_generator.state, result["checkpoint"])
        writer.stop_set(result["test_predictions"])
        seconds["round"] = time.perf_counter() - round_start + answer.seconds_before
        record = self._record(r, chosen, answer, plan, result, seconds, labelled_ids)
        stop = first_stop(self.criteria, self.store.records() + [record]) if r < self.plan.last_round else None
        if stop is not None:  # the run is finished: the budget is no longer the only end
            record["stopped"] = stop
        writer.commit(record)
        self.labelled_ids, self.labels = labelled_ids, labels
        self.weights, self.stop_set, self.stopped = result["checkpoint"], result["test_predictions"], stop is not None
        self.admitted += chosen.admitted
        self.round += 1
        return record

    def _check_next(self, r: int) -> None:
        if self.stopped:
            raise IndexError(f"round {r} asked for, but the run stopped after round {self.round - 1}")
        if r != self.round or r >= self.plan.num_rounds:
            raise IndexError(
                f"round {r} asked for, but the next of this run's {self.plan.num_rounds} rounds is {self.round}"
            )

    def _label(self, r: int, answer):
        """Round r's answers into its (uncommitted) round directory: (writer, labelled_ids and labels
        with the answers appended, seconds)."""
        start = time.perf_counter()
        writer = self.store.begin_round(r)
        writer.labels(answer.pool_ids, answer.labels)
        labelled_ids = np.concatenate([self.labelled_ids, answer.pool_ids])
        labels = np.concatenate([self.labels, answer.labels])
        seconds = time.perf_counter() - start
        return writer, labelled_ids, labels, seconds

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
        result, update_s = self._update(plan, ids, labels, self._rows_from([]), seed=self._seed(10_000 + upto_round))
        fit = {
            "round": upto_round,
            "labelled": int(count),
            "target": self.config.target.name,
            "target_acc": result["test_acc"],
            "steps": result["steps"],
            **{k: v for k, v in self._class_figures(upto_round, result).items() if k != "forgetting"},
            "seconds": {"train": result["train_s"], "eval": result["eval_s"], "update": update_s},
        }
        self.store.write_json(name, fit)
        return fit

    def close(self) -> None:
        self.learner.close()
        self.scorers.close()

    # --- the steps' parts ---------------------------------------------------------------------

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
        to label from it: a random initial set in round 0, the top scores after."""
        admitted = self._admit(r)
        pool = self._pool(r, admitted)
        if r == 0:
            start = time.perf_counter()
            ids = parquet_dataset(pool or self.data.split_dir("pool")).to_table(columns=["id"])
            ids = ids.column("id").to_numpy()
            chosen = self.rng.choice(ids, size=self.plan.initial_size, replace=False)
            return Selection(
                chosen,
                pool,
                admitted,
                len(ids),
                dict(score=0.0, select=time.perf_counter() - start, score_compute=0.0),
                self.rng.bit_generator.state,
            )
        k = self.plan.round_sizes[r - 1]
        start = time.perf_counter()
        candidate_ids = self._candidates(r, pool, k)
        draw_s = time.perf_counter() - start
        total = (
            len(candidate_ids)
            if candidate_ids is not None
            else self.data.pool_size - len(self.labelled_ids)
            if pool is None
            else None
        )
        self.on_stage(r, "scoring", total, "examples")
        chosen, stats = self.scorers.select(
            self.weights,
            self.labelled_ids,
            k,
            seed=self._seed(r),
            round_index=r,
            pool=pool,
            candidate_ids=candidate_ids,
        )
        candidates, redone, score_mean = stats.pop("candidates"), stats.pop("redone"), stats.pop("score_mean")
        scorer_rss = stats.pop("peak_rss_mib", None)
        stats["select"] += draw_s
        return Selection(
            chosen, pool, admitted, candidates, stats, self.rng.bit_generator.state, redone, score_mean, scorer_rss
        )

    def _candidates(self, r: int, pool: list[str] | None, k: int) -> np.ndarray | None:
        """scoring.candidates: the seeded random subset of round r's unlabelled pool that the scorers
        score (at least the round's k), ascending; None: every unlabelled example."""
        size = self.config.scoring.candidates
        if size is None:
            return None
        unlabelled = np.setdiff1d(
            pool_ids(pool or split_files(self.data.split_dir("pool"))), self.labelled_ids, assume_unique=True
        )
        return draw_candidates(unlabelled, max(to_count(size, len(unlabelled)), k), seed=self._seed(r))

    def _update(
        self, plan: UpdatePlan, labelled_ids: np.ndarray, labels: np.ndarray, rows_from: list[str] | None, seed: int
    ) -> tuple[dict, float]:
        start = time.perf_counter()
        positions = positions_of(labelled_ids, plan.train_ids)  # into the labelled arrays (ids may repeat in the plan)
        # A warm start continues from the last committed weights whenever the worker group holds no
        # live model: the first update after a resume, or one redone after a worker failure.
        resume_from = self.weights if plan.warm_start else None
        result = self.learner.update(
            plan, labels[positions], rows_from, seed=seed, resume_from=resume_from, round_index=self.round
        )
        return result, time.perf_counter() - start

    def _rows_from(self, admitted: list[str]) -> list[str] | None:
        """The Parquet files that hold every labelled id once this round's `admitted` arrival shards
        joined the pool: the learner reads its training rows from them (None: the prepared pool)."""
        if self.config.pool.growth != "arrivals":
            return None  # a class-incremental pool is a part of the prepared one
        return split_files(self.data.split_dir("pool")) + self.admitted + admitted

    def _record(
        self,
        r: int,
        chosen: Selection,
        answer: Answer,
        plan: UpdatePlan,
        result: dict,
        seconds: dict,
        labelled_ids: np.ndarray,
    ) -> dict:
        record = {
            "round": r,
            "labelled": int(len(labelled_ids)),
            "acquired": int(len(answer.pool_ids)),
            "strategy": self.config.strategy,
            "acquisition": "random_initial" if r == 0 else self.config.acquisition,
            "selection_model": plan.role,
            "warm_start": plan.warm_start,
            "steps": result["steps"],
            "train_examples": int(len(plan.train_ids)),
            "candidates": int(chosen.candidates),
            "selection_acc": result["test_acc"],
            "loss": result["loss"],
            "seconds": seconds,
            **self._class_figures(r, result),
            **answer.record,
        }
        # peak resident memory per process: what must not grow with the labels (coordinator) or the pool (scorers)
        record["peak_rss_mib"] = {
            "coordinator": peak_rss_mib(),
            "learner": result.get("peak_rss_mib"),
            "scorers": chosen.scorer_rss_mib,
        }
        if "learner_launch_s" in result:  # the first update of this process's worker group
            seconds["learner_launch"] = result["learner_launch_s"]
            record["resources"] = result["resources"]
        if self.config.pool.growth == "arrivals":
            record["admitted"] = chosen.admitted
        # faults Ray recovered from inside this round, for the driver to report in clactive's words
        if self.stop_set is not None:  # agreement with the previous round's model, for stable_predictions
            record["stop_set_kappa"] = cohens_kappa(self.stop_set, result["test_predictions"], self.data.num_classes)
        if chosen.score_mean is not None:
            record["selection_score_mean"] = chosen.score_mean
        if chosen.redone_passes:
            record["redone_passes"] = chosen.redone_passes
        if self.restart_unreported:
            record["coordinator_restarted"], self.restart_unreported = True, False
        return record

    def _classes(self, r: int) -> tuple[int, ...] | None:
        """The classes in the pool at round r; None when the pool does not grow by class."""
        pool = self.config.pool
        if pool.growth != "class_incremental":
            return None
        order = pool.class_order or tuple(range(self.data.num_classes))
        return classes_at(order, pool.initial_classes, pool.classes_per_round, r)

    def _pool(self, r: int, admitted: list[str]) -> list[str] | None:
        """The pool's Parquet files at round r; None: the prepared pool, as it is."""
        growth = self.config.pool.growth
        if growth == "class_incremental":
            if self._class_files is None:
                self._class_files = class_shards(self.data)
            return [path for c in self._classes(r) for path in self._class_files[c]]
        if growth == "arrivals":
            return split_files(self.data.split_dir("pool")) + self.admitted + admitted
        return None

    def _admit(self, r: int) -> list[str]:
        """Arrival shards that join the pool at round r (DataError, before anything is written, if one is bad)."""
        if self.config.pool.growth != "arrivals":
            return []
        known = pool_ids(self._pool(r, []))
        return admit_arrivals(self.config.pool.arrivals_dir, self.admitted, known, self.data)

    def _class_figures(self, r: int, result: dict) -> dict:
        """Per-class test accuracy; with a class-incremental pool also accuracy on the classes
        seen so far and forgetting, from the records of earlier rounds."""
        correct, total = np.array(result["class_correct"]), np.array(result["class_total"])
        figures = {"per_class_acc": _json_floats(per_class_accuracy(correct, total))}
        seen = self._classes(r)
        if seen is not None:
            earlier = self.store.records()[:r]
            history = [np.array([np.nan if a is None else a for a in rec["per_class_acc"]]) for rec in earlier]
            history.append(per_class_accuracy(correct, total))
            figures.update(
                classes=list(seen),
                acc_seen=seen_accuracy(correct, total, seen),
                forgetting=forgetting(history, [self._classes(i) for i in range(r + 1)]),
            )
        return figures

    def _seed(self, round_index: int) -> int:
        return self.config.seed * 1_000_003 + round_index


def _json_floats(values: np.ndarray) -> list[float | None]:
    """NaN (a class with no test examples) as null: JSON has no NaN."""
    return [None if np.isnan(v) else float(v) for v in values]

"""The driver actor: owns a run's state and runs its rounds, one call per round.

One round, top-down:
  [1/5] select   score the unlabelled pool with the selection model, keep the top k
                 (round 0: a random initial set); a growing pool (pool.growth) first
                 takes in the classes or arrival shards of this round
  [2/5] label    the oracle reveals the labels: the simulated one reads the label column; an
                 external one (people, see pipeline.oracle) answers a written request, and
                 until it has, the round pauses and run_round returns what it waits for
  [3/5] plan     the strategy says what to train, from where, on which ids, how many steps
  [4/5] update   the Ray Train worker group trains and evaluates on the test split
  [5/5] commit   labels, strategy state, checkpoint, rng state and record, in one atomic step

A coordinator started on a run directory that holds committed rounds continues after the last
one with the same labels, memory, weights, optimizer state and random state; a round a crash
interrupted left nothing behind and is redone from its start. That is also how a coordinator
that died mid-run comes back: Ray restarts the actor, its constructor reloads the run
directory, and the driver's retried `run_round(r)` redoes round r (or returns it, if committed).
A round paused for an external oracle keeps its selection in its request (ids in selection order
and the random state selection left), so the round resumed days later labels exactly those ids
and the run makes the choices an unbroken run with the simulated oracle would.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pyarrow.dataset as pads
import ray
from ray.data import DataContext

from actors.learner import Learner, remove_orphaned_placement_groups
from actors.resources import gpus_available, process_requests
from actors.scorer import ScorerPool, label_hints
from pipeline.config import RunConfig, config_from_dict, resolve_schedule
from pipeline.data import PreparedData, read_rows
from pipeline.data.pool import admit_arrivals, class_shards, pool_ids, split_files
from pipeline.faults import Hook
from pipeline.growth import classes_at, forgetting, per_class_accuracy, seen_accuracy
from pipeline.oracle import LabelRequests, Request
from pipeline.run_store import RunStore
from pipeline.strategies import UpdatePlan, create_strategy


@dataclass(frozen=True)
class Selection:
    """What step [1/5] chose, and from which pool."""
    pool_ids: np.ndarray          # to label, in selection order
    pool: list[str] | None        # the pool's Parquet files this round (None: the prepared pool)
    admitted: list[str]           # arrival shards that joined the pool this round
    candidates: int               # unlabelled examples considered
    seconds: dict[str, float]     # score, select, score_compute
    redone_passes: int = 0        # scoring passes redone because a scorer died


@ray.remote(num_cpus=0)
class Coordinator:
    def __init__(self, config: dict, data: dict, run_dir: str, no_progress_timeout_s: float | None = None,
                 hook: str | None = None, accept_partial: bool = False):
        Hook(hook, run_dir).starting("label")
        self.config: RunConfig = config_from_dict(config)
        self.data = PreparedData(**data)
        self.store = RunStore(run_dir)
        self.initial_size, self.round_sizes = resolve_schedule(self.config.schedule, self.data.pool_size)
        self.strategy = create_strategy(self.config, max(self.round_sizes, default=self.initial_size))
        self.rng = np.random.default_rng(self.config.seed)
        self.round = 0
        self.labelled_ids = np.empty(0, dtype=np.int64)
        self.labels = np.empty(0, dtype=np.int64)
        self.images = np.empty((0, *self.data.image_shape), dtype=self.data.feature_dtype)
        self.weights: bytes | None = None  # the selection model's latest checkpoint
        self.admitted: list[str] = []      # arrival shards in the pool, in the order committed rounds admitted them
        self._class_files: dict[int, list[str]] | None = None
        self.hook = hook
        self.restarted = _restarted_by_ray()
        self.restart_unreported = self.restarted  # the next committed round's record says so
        # the external oracle's requests; accept_partial: continue a round with the answered ids only
        self.requests = LabelRequests(self.store) if self.config.oracle == "external" else None
        self.accept_partial = accept_partial
        self.resumed_records = self._resume()
        context = DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False  # travels with each pass's datasets to the scorers
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # one line per scoring pass is noise here
        if no_progress_timeout_s is not None:
            context.execution_no_progress_timeout_s = no_progress_timeout_s
        self._learner: Learner | None = None  # started on first use: a finished run needs none
        self._scorers: ScorerPool | None = None
        self.learner_launch_s = 0.0

    def num_rounds(self) -> int:
        return 1 + len(self.round_sizes)

    def completed_records(self) -> list[dict]:
        """Records of the rounds committed before this coordinator started."""
        return self.resumed_records

    def _resume(self) -> list[dict]:
        self.store.discard_uncommitted()
        rounds = self.store.committed_rounds()
        if not rounds:
            return []
        self.labelled_ids, self.labels, self.images = self.store.load_labels()
        saved = self.store.load_round_state(rounds[-1])
        self.strategy.load_state_dict(saved["strategy"])
        self.rng.bit_generator.state = saved["rng"]
        self.weights = saved["checkpoint"]
        self.round = rounds[-1] + 1
        records = self.store.records()
        self.admitted = [path for record in records for path in record.get("admitted", [])]
        return records

    def run_round(self, r: int) -> dict:
        """Round r; idempotent, so the driver may retry it after this actor was restarted.

        Returns the round's record, or {"round": r, "waiting": labels missing, "requested": ...}
        while an external oracle has not answered round r's request (written on the first call).
        """
        if r < self.round:
            return self.store.records()[r]
        if r != self.round or r >= self.num_rounds():
            raise IndexError(f"round {r} asked for, but the next of this run's {self.num_rounds()} rounds is {self.round}")
        seconds: dict[str, float] = {}
        round_start = time.perf_counter()

        # [1/5] select. An external oracle's round selects once, when it writes its request; resumed,
        # it takes the request's ids and the random state that selection left behind.
        # The learner's worker group, when the run has none yet, comes up while the round selects.
        if self.requests is None:
            self._start_learner()
            chosen = self._select(r)
        else:
            request = self.requests.get(r) or self._ask(r, self._select(r), round_start)
            if request.answered == 0 or (request.missing and not self.accept_partial):
                return {"round": r, "waiting": request.missing, "requested": request.requested}
            self._start_learner()
            self.rng.bit_generator.state = request.meta["rng"]
            chosen = Selection(request.pool_ids, None, request.meta["admitted"], request.meta["candidates"],
                               request.meta["seconds"])
        seconds.update(chosen.seconds)

        # [2/5] label: the simulated oracle reveals the label column; an external one's stored answers
        # are read (with accept_partial, the answered ids only, still in selection order)
        start = time.perf_counter()
        if self.requests is None:
            new_ids = chosen.pool_ids
            new_images, new_labels = read_rows(chosen.pool or self.data.split_dir("pool"), new_ids,
                                               self.data.image_shape)
        else:
            new_ids, new_labels = request.answered_ids()
            new_images = self.requests.images(r, new_ids)
        writer = self.store.begin_round(r)
        writer.labels(new_ids, new_labels, new_images)
        labelled_ids = np.concatenate([self.labelled_ids, new_ids])
        labels = np.concatenate([self.labels, new_labels])
        images = np.concatenate([self.images, new_images])
        seconds["label"] = time.perf_counter() - start
        Hook(self.hook, self.store.location, r).at("label")

        # [3/5] plan
        plan = self.strategy.plan(r, new_ids, new_labels, labelled_ids, self.rng)

        # [4/5] update and evaluate. A next round's scorers start now: their start-up (a process, torch,
        # the model) overlaps the update instead of adding to the next round's scoring pass.
        if r + 1 < self.num_rounds():
            self._start_scorers()
        result, seconds["update"] = self._train(plan, labelled_ids, labels, images, seed=self._seed(r))
        seconds.update(train=result["train_s"], eval=result["eval_s"],
                       learner_overhead=seconds["update"] - result["train_s"] - result["eval_s"])

        # [5/5] commit: until the rename inside, a crash leaves the previous round as the last one
        writer.state(self.strategy.state_dict(), self.rng.bit_generator.state, result["checkpoint"])
        seconds["round"] = time.perf_counter() - round_start
        if self.requests is not None:  # the part before the pause counts too; the wait for people does not
            seconds["round"] += request.meta["paused_after_s"]
        record = {
            "round": r, "labelled": int(len(labelled_ids)), "acquired": int(len(new_ids)),
            "strategy": self.config.strategy, "acquisition": "random_initial" if r == 0 else self.config.acquisition,
            "selection_model": plan.role, "warm_start": plan.warm_start, "steps": result["steps"],
            "train_examples": int(len(plan.train_ids)), "candidates": int(chosen.candidates),
            "selection_acc": result["test_acc"], "loss": result["loss"], "seconds": seconds,
            **self._class_figures(r, result),
        }
        if self.config.pool.growth == "arrivals":
            record["admitted"] = chosen.admitted
        # faults Ray recovered from inside this round, for the driver to report in clactive's words
        if chosen.redone_passes:
            record["redone_passes"] = chosen.redone_passes
        if self.restart_unreported:
            record["coordinator_restarted"], self.restart_unreported = True, False
        if self.requests is not None:
            record.update(requested=request.requested, answered=int(len(new_ids)),
                          answer_wait_s=time.time() - request.meta["created"])
        if self.learner_launch_s:
            record["seconds"]["learner_launch"], self.learner_launch_s = self.learner_launch_s, 0.0
            record["resources"] = {**process_requests(self.config, gpus_available()),
                                   "learner_device": result["device"]}
        writer.commit(record)
        self.labelled_ids, self.labels, self.images = labelled_ids, labels, images
        self.weights = result["checkpoint"]
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
        ids, labels, images = self.labelled_ids[:count], self.labels[:count], self.images[:count]
        plan = self.strategy.from_scratch("target", ids)
        result, update_s = self._train(plan, ids, labels, images, seed=self._seed(10_000 + upto_round))
        fit = {"round": upto_round, "labelled": int(count), "target": self.config.target.name,
               "target_acc": result["test_acc"], "steps": result["steps"],
               **{k: v for k, v in self._class_figures(upto_round, result).items() if k != "forgetting"},
               "seconds": {"train": result["train_s"], "eval": result["eval_s"], "update": update_s}}
        self.store.write_json(name, fit)
        return fit

    def close(self) -> None:
        if self._learner is not None:
            self._learner.close()
        if self._scorers is not None:
            self._scorers.close()

    @property
    def learner(self) -> Learner:
        return self._start_learner()

    def _start_learner(self) -> Learner:
        """The run's learner, started on first use; its worker group comes up in the background."""
        if self._learner is None:
            start = time.perf_counter()
            if self.restarted:
                removed = remove_orphaned_placement_groups()
                if removed:
                    logging.getLogger(__name__).warning("removed %d placement group(s) the dead coordinator's "
                                                        "worker group left behind", len(removed))
            test_ids = pads.dataset(self.data.split_dir("test"), format="parquet").to_table(columns=["id"])
            test = read_rows(self.data.split_dir("test"), test_ids.column("id").to_numpy(), self.data.image_shape)
            self._learner = Learner(self.config, self.data, self.store, ray.put(test), self.hook)
            self.learner_launch_s = time.perf_counter() - start
        return self._learner

    @property
    def scorers(self) -> ScorerPool:
        return self._start_scorers()

    def _start_scorers(self) -> ScorerPool:
        """The run's scorers, started on first use; their actors come up in the background."""
        if self._scorers is None:
            self._scorers = ScorerPool(self.config, self.data, self._selection_model(),
                                       Hook(self.hook, self.store.location))
        return self._scorers

    def _train(self, plan: UpdatePlan, labelled_ids: np.ndarray, labels: np.ndarray, images: np.ndarray,
               seed: int) -> tuple[dict, float]:
        start = time.perf_counter()
        order = np.argsort(labelled_ids, kind="stable")
        rows = order[np.searchsorted(labelled_ids[order], plan.train_ids)]
        train_ref = ray.put((images[rows], labels[rows]))
        # A warm start continues from the last committed weights whenever the worker group holds no
        # live model: the first update after a resume, or one redone after a worker failure.
        resume_from = self.weights if plan.warm_start else None
        result = self.learner.run(plan, train_ref, seed=seed, resume_from=resume_from, round_index=self.round)
        return result, time.perf_counter() - start

    def _select(self, r: int) -> Selection:
        """Step [1/5]: the pool at round r (arrival shards admitted here are committed with the round)
        and the ids to label from it: a random initial set in round 0, the top scores after."""
        admitted = self._admit(r)
        pool = self._pool(r, admitted)
        if r == 0:
            start = time.perf_counter()
            new_ids, candidates = self._initial_ids(pool)
            return Selection(new_ids, pool, admitted, candidates,
                             dict(score=0.0, select=time.perf_counter() - start, score_compute=0.0))
        new_ids, stats = self.scorers.select(self.weights, self.labelled_ids, self.round_sizes[r - 1],
                                             seed=self._seed(r), hook=Hook(self.hook, self.store.location, r),
                                             pool=pool)
        candidates, redone = stats.pop("candidates"), stats.pop("redone")
        return Selection(new_ids, pool, admitted, candidates, stats, redone)

    def _ask(self, r: int, chosen: Selection, round_start: float) -> Request:
        """Write round r's label request for an external oracle: the chosen ids in selection order,
        their images, the selection model's hints (none in round 0), and what resuming needs."""
        start = time.perf_counter()
        images, _ = read_rows(chosen.pool or self.data.split_dir("pool"), chosen.pool_ids, self.data.image_shape)
        hints = None if r == 0 else label_hints(self.config, self.data, self._selection_model(), self.weights,
                                                chosen.pool_ids, images, seed=self._seed(r))
        meta = {"num_classes": self.data.num_classes, "num_rounds": self.num_rounds(),
                "rng": self.rng.bit_generator.state, "admitted": chosen.admitted,
                "candidates": int(chosen.candidates),
                "seconds": {**chosen.seconds, "hints": time.perf_counter() - start},
                "paused_after_s": time.perf_counter() - round_start, "created": time.time()}
        return self.requests.create(r, chosen.pool_ids, images, hints, meta)

    def _initial_ids(self, pool: list[str] | None) -> tuple[np.ndarray, int]:
        ids = pads.dataset(pool or self.data.split_dir("pool"), format="parquet").to_table(columns=["id"])
        ids = ids.column("id").to_numpy()
        return self.rng.choice(ids, size=self.initial_size, replace=False), len(ids)

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
            figures.update(classes=list(seen), acc_seen=seen_accuracy(correct, total, seen),
                           forgetting=forgetting(history, [self._classes(i) for i in range(r + 1)]))
        return figures

    def _selection_model(self) -> str:
        return getattr(self.config, self.strategy.selection_role).name

    def _seed(self, round_index: int) -> int:
        return self.config.seed * 1_000_003 + round_index


def _restarted_by_ray() -> bool:
    """Whether this is an actor Ray restarted (False for the class run outside an actor, as unit tests do)."""
    context = ray.get_runtime_context() if ray.is_initialized() else None
    return bool(context and context.get_actor_id() and context.was_current_actor_reconstructed)


def _json_floats(values: np.ndarray) -> list[float | None]:
    """NaN (a class with no test examples) as null: JSON has no NaN."""
    return [None if np.isnan(v) else float(v) for v in values]

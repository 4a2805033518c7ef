"""The driver actor: owns a run's state and runs its rounds, one call per round.

One round, top-down:
  [1/5] select   score the unlabelled pool with the selection model, keep the top k
                 (round 0: a random initial set)
  [2/5] label    the oracle reveals the labels; they join the append-only label store
  [3/5] plan     the strategy says what to train, from where, on which ids, how many steps
  [4/5] update   the Ray Train worker group trains and evaluates on the test split
  [5/5] commit   strategy state, checkpoint, then the round record (which marks it complete)
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import ray
from ray.data import DataContext

from actors.learner import Learner
from actors.resources import gpus_available, process_requests
from actors.scorer import select
from pipeline.config import RunConfig, config_from_dict, resolve_schedule
from pipeline.data import PreparedData, read_rows
from pipeline.run_store import RunStore
from pipeline.strategies import UpdatePlan, create_strategy


@ray.remote(num_cpus=0)
class Coordinator:
    def __init__(self, config: dict, data: dict, run_dir: str, no_progress_timeout_s: float | None = None):
        self.config: RunConfig = config_from_dict(config)
        self.data = PreparedData(**data)
        self.store = RunStore(run_dir)
        self.initial_size, self.round_sizes = resolve_schedule(self.config.schedule, self.data.pool_size)
        self.strategy = create_strategy(self.config, max(self.round_sizes, default=self.initial_size))
        self.rng = np.random.default_rng(self.config.seed)
        self.round = 0
        self.labelled_ids = np.empty(0, dtype=np.int64)
        self.labels = np.empty(0, dtype=np.int64)
        self.images = np.empty((0, *self.data.image_shape), dtype=np.uint8)
        self.weights: bytes | None = None
        context = DataContext.get_current()
        context.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)  # one line per scoring pass is noise here
        if no_progress_timeout_s is not None:
            context.execution_no_progress_timeout_s = no_progress_timeout_s
        start = time.perf_counter()
        test_ids = pads.dataset(self.data.split_dir("test"), format="parquet").to_table(columns=["id"])
        test = read_rows(self.data.split_dir("test"), test_ids.column("id").to_numpy(), self.data.image_shape)
        self.learner = Learner(self.config, self.data, Path(run_dir), ray.put(test))
        self.learner_launch_s = time.perf_counter() - start

    def num_rounds(self) -> int:
        return 1 + len(self.round_sizes)

    def run_round(self) -> dict:
        r = self.round
        if r >= self.num_rounds():
            raise IndexError(f"the run has {self.num_rounds()} rounds and all are done")
        seconds: dict[str, float] = {}
        round_start = time.perf_counter()

        # [1/5] select
        if r == 0:
            start = time.perf_counter()
            new_ids = self._initial_ids()
            seconds.update(score=0.0, select=time.perf_counter() - start)
        else:
            new_ids, timing = select(self.config, self.data, self._selection_model(), self.weights,
                                     self.labelled_ids, self.round_sizes[r - 1], seed=self._seed(r))
            seconds.update(timing)

        # [2/5] label: the simulated oracle reveals the label column
        start = time.perf_counter()
        new_images, new_labels = read_rows(self.data.split_dir("pool"), new_ids, self.data.image_shape)
        self.store.append_labels(r, new_ids, new_labels, new_images)
        self.labelled_ids = np.concatenate([self.labelled_ids, new_ids])
        self.labels = np.concatenate([self.labels, new_labels])
        self.images = np.concatenate([self.images, new_images])
        seconds["label"] = time.perf_counter() - start

        # [3/5] plan
        plan = self.strategy.plan(r, new_ids, new_labels, self.labelled_ids, self.rng)

        # [4/5] update and evaluate
        result, seconds["update"] = self._train(plan, seed=self._seed(r))
        self.weights = result["weights"]
        seconds.update(train=result["train_s"], eval=result["eval_s"],
                       learner_overhead=seconds["update"] - result["train_s"] - result["eval_s"])

        # [5/5] commit
        self.store.save_strategy_state(r, self.strategy.state_dict())
        self.store.save_checkpoint(r, plan.role, self.weights)
        seconds["round"] = time.perf_counter() - round_start
        record = {
            "round": r, "labelled": int(len(self.labelled_ids)), "acquired": int(len(new_ids)),
            "strategy": self.config.strategy, "acquisition": "random_initial" if r == 0 else self.config.acquisition,
            "selection_model": plan.role, "warm_start": plan.warm_start, "steps": result["steps"],
            "train_examples": int(len(plan.train_ids)), "selection_acc": result["test_acc"],
            "loss": result["loss"], "seconds": seconds,
        }
        if r == 0:
            record["seconds"]["learner_launch"] = self.learner_launch_s
            record["resources"] = {**process_requests(self.config, gpus_available()),
                                   "learner_device": result["device"]}
        self.store.append_record(record)
        self.round += 1
        return record

    def train_target(self) -> dict:
        """The quality measure: the target, from scratch, on every label acquired."""
        plan = self.strategy.from_scratch("target", self.labelled_ids)
        result, update_s = self._train(plan, seed=self._seed(10_000))
        final = {"labelled": int(len(self.labelled_ids)), "target": self.config.target.name,
                 "target_acc": result["test_acc"], "steps": result["steps"],
                 "seconds": {"train": result["train_s"], "eval": result["eval_s"], "update": update_s}}
        self.store.write_json("final.json", final)
        return final

    def close(self) -> None:
        self.learner.close()

    def _train(self, plan: UpdatePlan, seed: int) -> tuple[dict, float]:
        start = time.perf_counter()
        order = np.argsort(self.labelled_ids, kind="stable")
        rows = order[np.searchsorted(self.labelled_ids[order], plan.train_ids)]
        train_ref = ray.put((self.images[rows], self.labels[rows]))
        result = self.learner.run(plan, train_ref, seed=seed)
        return result, time.perf_counter() - start

    def _initial_ids(self) -> np.ndarray:
        pool_ids = pads.dataset(self.data.split_dir("pool"), format="parquet").to_table(columns=["id"])
        return self.rng.choice(pool_ids.column("id").to_numpy(), size=self.initial_size, replace=False)

    def _selection_model(self) -> str:
        return getattr(self.config, self.strategy.selection_role).name

    def _seed(self, round_index: int) -> int:
        return self.config.seed * 1_000_003 + round_index

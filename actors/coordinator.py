"""The driver actor: a run's rounds (pipeline.loop.rounds) on Ray, one call per round.

It owns the run's state and hands the round loop its Ray parts: the scoring actors
(actors.scorer), the Ray Train worker group (actors.learner) and the oracle, each started on
first use, so a finished run starts none.

A coordinator that dies comes back as a new one: Ray restarts the actor, its constructor reloads
the run directory, and the driver's retried `run_round(r)` redoes round r (or returns it, if
committed). Its scorers and worker group died with it; the first thing the new one does before
starting a worker group is remove the placement groups the dead one's left behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.dataset as pads
import ray
from ray.data import DataContext

from actors.faults import Hook, LabelHookStore
from actors.progress import Sink, StageBoard
from actors.resources import gpus_available, no_progress_timeout, process_requests
from pipeline.config.run_config import RunConfig
from pipeline.data import PreparedData, read_rows
from pipeline.labels.labelling import make_oracle
from pipeline.loop.preflight import RunPlan
from pipeline.loop.rounds import Rounds
from pipeline.loop.run_store import RunStore
from pipeline.loop.seams import ScoredPass, UpdateResult
from pipeline.update.strategies import UpdatePlan, selection_model

if TYPE_CHECKING:  # torch and Ray Train: imported where they run
    from actors.learner import Learner
    from actors.scorer import ScorerPool


# Threaded: the driver's progress polls and the workers' reports are answered while run_round runs.
@ray.remote(num_cpus=0, max_concurrency=4)
class Coordinator:
    def __init__(
        self,
        plan: RunPlan,
        no_progress_timeout_s: float | None = None,
        hook: str | None = None,
        accept_partial: bool = False,
    ):
        config, data = plan.config, plan.data
        Hook(hook, config.run_dir).starting("label")
        store = LabelHookStore(config.run_dir, hook)
        _quiet_ray_data(no_progress_timeout_s)
        restarted = _restarted_by_ray()
        self.board = StageBoard()
        handle = ray.get_runtime_context().current_actor
        sink = lambda: Sink(handle, self.board.token)  # noqa: E731 - the running stage's, when a worker starts
        self.rounds = Rounds(
            plan,
            store,
            RayScorers(config, data, hook, sink),
            RayLearner(config, data, store, hook, restarted, sink),
            make_oracle(plan, store, accept_partial),
            restarted,
            on_stage=self.board.stage,
        )

    def progress(self) -> dict | None:
        """The running stage and its count so far (actors.progress), for the driver's progress line."""
        return self.board.snapshot()

    def report_progress(self, token: int, part: str, done: int) -> None:
        self.board.report(token, part, done)

    def completed_records(self) -> list[dict]:
        """Records of the rounds committed before this coordinator started."""
        return self.rounds.resumed_records

    def run_round(self, r: int) -> dict:
        return self.rounds.run_round(r)

    def train_target(self, upto_round: int) -> dict:
        return self.rounds.train_target(upto_round)

    def close(self) -> None:
        self.rounds.close()


class RayScorers:
    """pipeline.loop.rounds.Scorers on the run's scoring actors (actors.scorer.ScorerPool), started on first use."""

    def __init__(self, config: RunConfig, data: PreparedData, hook: str | None, sink: Callable[[], Sink] | None = None):
        self.config, self.data, self.hook, self.sink = config, data, hook, sink
        self.model_name = selection_model(config)
        self.pool: ScorerPool | None = None

    def start(self) -> None:
        self._started()

    def _started(self) -> ScorerPool:
        if self.pool is None:
            from actors.scorer import ScorerPool  # torch: imported where scoring happens

            self.pool = ScorerPool(self.config, self.data, self.model_name, Hook(self.hook, self.config.run_dir))
        return self.pool

    def select(self, weights, labelled_ids, k, seed, round_index, pool, candidate_ids) -> ScoredPass:
        hook = Hook(self.hook, self.config.run_dir, round_index)  # the fault tests' hook: Ray's side alone knows it
        progress = self.sink() if self.sink else None
        return self._started().select(
            weights, labelled_ids, k, seed=seed, hook=hook, pool=pool, candidate_ids=candidate_ids, progress=progress
        )

    def collect(self, weights, acquisition, candidate_ids):
        return self._started().collect(weights, acquisition, candidate_ids, Hook(self.hook, self.config.run_dir))

    def hints(self, weights, pool_ids, images, seed):
        from actors.hints import label_hints

        return label_hints(self.config, self.data, self.model_name, weights, pool_ids, images, seed=seed)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


class RayLearner:
    """pipeline.loop.rounds.Learner on the run's Ray Train worker group (actors.learner.Learner), started on
    first use; its first update reports how long the start took and what the run asked Ray for."""

    def __init__(
        self,
        config: RunConfig,
        data: PreparedData,
        store: RunStore,
        hook: str | None,
        restarted: bool,
        sink: Callable[[], Sink] | None = None,
    ):
        self.config, self.data, self.store, self.hook, self.restarted = config, data, store, hook, restarted
        self.sink = sink
        self.learner: Learner | None = None
        self.launch_s: float | None = None  # reported with the first update, then None

    def start(self) -> None:
        self._started()

    def _started(self) -> Learner:
        if self.learner is not None:
            return self.learner
        from actors.learner import Learner, remove_orphaned_placement_groups  # Ray Train

        start = time.perf_counter()
        if self.restarted:
            removed = remove_orphaned_placement_groups()
            if removed:
                logging.getLogger(__name__).warning(
                    "removed %d placement group(s) the dead coordinator's worker group left behind", len(removed)
                )
        splits = ("test", "validation") if self.data.validation_size else ("test",)
        evaluated = {split: ray.put(_split_rows(self.data, split)) for split in splits}
        self.learner = Learner(self.config, self.data, self.store, evaluated, self.hook)
        self.launch_s = time.perf_counter() - start
        return self.learner

    def update(
        self,
        plan: UpdatePlan,
        labels: np.ndarray,
        rows_from: list[str] | None,
        seed: int,
        resume_from: bytes | None,
        round_index: int,
    ) -> UpdateResult:
        result = self._started().run(
            plan,
            labels,
            rows_from or self.data.split_dir("pool"),
            seed=seed,
            resume_from=resume_from,
            round_index=round_index,
            progress=self.sink() if self.sink else None,
        )
        launch: dict[str, Any] = {}
        if self.launch_s is not None:  # the first update of this worker group
            resources = {**process_requests(self.config, gpus_available()), "learner_device": result["device"]}
            launch, self.launch_s = {"launch_s": self.launch_s, "resources": resources}, None
        return UpdateResult(**result, **launch)

    def close(self) -> None:
        if self.learner is not None:
            self.learner.close()


def _split_rows(data: PreparedData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A whole split's (images, labels), for the learner to evaluate on."""
    ids = pads.dataset(data.split_dir(split), format="parquet").to_table(columns=["id"]).column("id")
    return read_rows(data.split_dir(split), ids.to_numpy(), data.image_shape)


def _quiet_ray_data(no_progress_timeout_s: float | None) -> None:
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False  # travels with each pass's datasets to the scorers
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # one line per scoring pass is noise here
    context.execution_no_progress_timeout_s = no_progress_timeout_s or no_progress_timeout()


def _restarted_by_ray() -> bool:
    """Whether this is an actor Ray restarted (False for the class run outside an actor)."""
    context = ray.get_runtime_context() if ray.is_initialized() else None
    return bool(context and context.get_actor_id() and context.was_current_actor_reconstructed)

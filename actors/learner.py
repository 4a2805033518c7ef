"""The Ray Train side: one long-lived Ray Train worker group serves every round's update.

A job carries ids and labels only. Each worker reads its update's rows by id from the pool's
Parquet files itself, so the pixels go from storage to the workers and never through the
coordinator, which holds bytes per label, not per pixel, however many labels the run acquires.

A `fit()` per round would pay the worker group's start-up (about 10-20 s here)
every round. Instead the train loop (actors.train_loop) takes one job per round from a small mailbox
actor, trains, evaluates, hands the weights back and calls `ray.train.report` once per job.

When a worker dies, Ray Train (FailureConfig) starts a new worker group, whose loop picks up
the job that was in flight. Its live models are gone, so a warm-start job starts again from
the weights of the last committed round that every job carries: the redone update is the one
an unbroken run would have made.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import ray
import ray.train
from ray import PlacementGroupID
from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer  # Ray Train V2's
from ray.util.placement_group import PlacementGroup, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.mailbox import Mailbox
from actors.progress import Sink
from actors.resources import describe, gpu_has_cuda, gpus_available, learner_gpus
from pipeline.config.run_config import RunConfig
from pipeline.data import PreparedData, resolve_augment
from pipeline.errors import ResourceError
from pipeline.loop.run_store import RunStore
from pipeline.update.strategies import UpdatePlan


def worker_loop(loop_config: dict) -> None:
    """What each Ray Train worker runs. The trainer pickles this function by reference, so its module is
    imported by the controller and the coordinator too: the train loop, and torch with it, is imported
    only here, in the workers (actors.train_loop)."""
    from actors.train_loop import learner_loop

    learner_loop(loop_config)


# Ray Train's controller checks on its workers every 2 s by default, so a worker group that has
# finished took up to 2 s to be noticed and torn down: seconds at every run's end (and every trial's).
# The check is one small call per worker; 0.5 s costs nothing beside a round's work.
HEALTH_CHECK_INTERVAL_S = "0.5"
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"


def _fit(
    loop_config: dict,
    scaling: ray.train.ScalingConfig,
    storage_path: str,
    max_failures: int,
    placement_timeout_s: float,
) -> None:
    # Ray Train hands these variables of the calling process on to its controller (a user's own value wins).
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", HEALTH_CHECK_INTERVAL_S)
    # Ray Train waits this long for a worker group's placement group, then tries again, by default
    # forever: a run whose workers' node was lost, on a cluster that never adds one, would wait for good.
    # Its start attempts are counted as controller failures, so their limit bounds the whole wait.
    os.environ.setdefault(START_TIMEOUT_ENV, f"{min(placement_timeout_s, 60.0):g}")
    attempts = math.ceil(placement_timeout_s / max(float(os.environ[START_TIMEOUT_ENV]), 1.0))
    failures = ray.train.FailureConfig(max_failures=max_failures, controller_failure_limit=attempts - 1)
    run_config = ray.train.RunConfig(
        name="learner",
        storage_path=storage_path,
        failure_config=failures,
        logging_config=ray.train.LoggingConfig(log_level="WARNING"),
    )
    if loop_config["workers"] > 1:  # DistributedDataParallel: torch's process group over the workers
        from ray.train.torch import TorchConfig, TorchTrainer  # imports torch

        backend = TorchConfig(backend="nccl" if loop_config["nccl"] else "gloo")
        TorchTrainer(
            worker_loop,
            train_loop_config=loop_config,
            scaling_config=scaling,
            torch_config=backend,
            run_config=run_config,
        ).fit()
    else:
        # A lone worker runs no collectives. Without TorchConfig, Ray Train's controller does not import
        # torch to unpickle it, nor does the worker set up a process group: ~2 s off every run's start.
        DataParallelTrainer(
            worker_loop,
            train_loop_config=loop_config,
            scaling_config=scaling,
            backend_config=ray.train.BackendConfig(),
            run_config=run_config,
        ).fit()


FIT_POLL_S = 0.5  # how often a waiting update checks that the worker group is still running


class LearnerStopped(RuntimeError):
    pass


def remove_orphaned_placement_groups() -> list[str]:
    """Remove this job's placement groups in which no actor lives; returns their ids.

    Called by a coordinator Ray restarted, before it starts a new worker group: the dead one's
    group should be gone, but Ray Train's PlacementGroupCleaner misses a group made by a worker-group
    restart shortly before its controller died (ray-project/ray#62753). Left alone, that group
    holds its CPUs and GPUs until the job ends, and on a small cluster the new worker group or the
    scorers could then never be placed. Concurrent Tune trials share the job: a trial whose new
    group has no actors yet could lose it here, which its Ray Train restarts (FailureConfig).
    """
    from ray.util.state import list_actors, list_placement_groups

    job = ray.get_runtime_context().get_job_id()
    used = {
        actor.placement_group_id for actor in list_actors(filters=[("state", "!=", "DEAD")], detail=True, limit=10_000)
    }
    orphans = [
        group.placement_group_id
        for group in list_placement_groups(filters=[("state", "=", "CREATED")], detail=True, limit=10_000)
        if group.creator_job_id == job and group.placement_group_id not in used
    ]
    for group_id in orphans:
        remove_placement_group(PlacementGroup(PlacementGroupID.from_hex(group_id)))
    return orphans


class Learner:
    """Driver-side handle: submit one UpdatePlan, get back metrics and weights."""

    def __init__(
        self,
        config: RunConfig,
        data: PreparedData,
        store: RunStore,
        evaluated: dict[str, ray.ObjectRef],
        hook: str | None = None,
    ):
        """`evaluated`: split name ("test", and "validation" where there is one) -> its (images, labels)."""
        # Beside the coordinator, on the driver's node, which outlives the workers' nodes: the jobs in
        # flight must survive a worker node that is lost, for the restarted worker group to pick them up.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        # @ray.remote added options(); mypy sees the class as written
        self.mailbox = Mailbox.options(scheduling_strategy=here).remote()  # type: ignore[attr-defined]
        gpus = learner_gpus(config.learner, gpus_available())
        # Each worker finds its own device. Only a group of several workers needs to know beforehand,
        # for its collective backend: a lone worker runs no collectives, and skips the probe (a GPU
        # process that imports torch: seconds at every run's start).
        nccl = gpus > 0 and config.learner.workers > 1 and gpu_has_cuda(gpus)
        worker = {"CPU": config.learner.cpus_per_worker, **({"GPU": gpus} if gpus else {}), **config.learner.resources}
        scaling = ray.train.ScalingConfig(
            num_workers=config.learner.workers, use_gpu=gpus > 0, resources_per_worker=worker
        )
        loop_config = {
            "models": {"proxy": config.proxy, "target": config.target},
            "augment": resolve_augment(config.data),
            "data": data,
            "mailbox": self.mailbox,
            "evaluated": {split: [ref] for split, ref in evaluated.items()},  # in lists: Ray passes them on, unresolved
            "nccl": nccl,
            "workers": config.learner.workers,
            "hook": hook,
            "run_dir": store.location,
        }
        # fit() runs in a thread of this process, as Ray Tune runs it in a trial, not in a task of its
        # own: one process (and its torch import, seconds on two cores) fewer per run.
        self.fit = ThreadPoolExecutor(1, thread_name_prefix="ray-train-fit").submit(
            _fit,
            loop_config,
            scaling,
            store.location_of("ray_train"),
            config.learner.max_failures,
            config.learner.placement_timeout_s,
        )
        self.config, self.worker = config, worker
        self.seq = 0

    def run(
        self,
        plan: UpdatePlan,
        labels: np.ndarray,
        rows_from: str | list[str],
        seed: int,
        resume_from: bytes | None = None,
        round_index: int = -1,
        progress: Sink | None = None,
    ) -> dict:
        """Blocks until the worker group finished `plan`; raises if the worker group died instead.

        `labels`: one per id of `plan.train_ids`; `rows_from`: the pool's directory or the Parquet
        files the workers read those ids' rows from, as absolute paths or URIs. `resume_from`: the
        checkpoint a warm-start plan continues from when the worker group holds no live model (the
        first update after a resume, or after a worker failure).
        """
        train = ray.put((np.asarray(plan.train_ids, np.int64), np.asarray(labels, np.int64)))
        self.mailbox.put_job.remote(
            self.seq,
            {
                "plan": plan,
                "train": [train],
                "rows_from": rows_from,
                "seed": seed,
                "round": round_index,
                "resume_from": [ray.put(resume_from)] if resume_from else None,
                "progress": progress,
            },
        )
        return self._result()

    def close(self) -> None:
        """Returns once Ray Train has torn the worker group down (seconds). Killed before, Ray Train
        leaves the worker group's placement group behind, holding its CPUs and GPUs for the rest of
        the job: tried, and the next run on the same cluster then waited forever for them."""
        self.mailbox.put_job.remote(self.seq, None)
        self.fit.result()

    def _result(self) -> dict:
        """The result of job `self.seq`; raises if the worker group stopped instead."""
        result_ref = self.mailbox.get_result.remote(self.seq)
        while not ray.wait([result_ref], timeout=FIT_POLL_S)[0]:
            if self.fit.done():
                try:
                    self.fit.result()  # re-raises the worker group's error, if it has one
                except ray.train.ControllerError as error:
                    # by name: Ray Train keeps the class in an internal module
                    if type(error.controller_failure).__name__ != "WorkerGroupStartupTimeoutError":
                        raise
                    raise ResourceError(
                        f"the learner's worker group found no node with room for its workers "
                        f"({describe(self.worker)}) within "
                        f"{self.config.learner.placement_timeout_s:g} s (learner.placement_timeout_s): was a node "
                        "lost, or none added? The committed rounds are kept; once the cluster has such a node, "
                        f"continue with clactive run --resume {self.config.run_dir}"
                    ) from None
                raise LearnerStopped("the Ray Train worker group stopped before finishing its job")
        self.seq += 1
        return ray.get(result_ref)

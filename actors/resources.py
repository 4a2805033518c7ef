"""Where the pipeline asks Ray for resources: one place, since these APIs keep changing."""
from __future__ import annotations

import ray
from ray.data import ActorPoolStrategy

from pipeline.config import LearnerConfig, RunConfig, ScoringConfig
from pipeline.errors import ConfigError


def cluster_gpus() -> float:
    return float(ray.cluster_resources().get("GPU", 0.0))


def scoring_gpus(scoring: ScoringConfig) -> float:
    if scoring.gpus_per_actor == "auto":
        return 1.0 if cluster_gpus() >= 1 else 0.0
    return float(scoring.gpus_per_actor)


def learner_uses_gpu(learner: LearnerConfig) -> bool:
    if learner.use_gpu == "auto":
        return cluster_gpus() >= learner.workers
    return bool(learner.use_gpu)


def scoring_map_args(scoring: ScoringConfig) -> dict:
    """Keyword arguments of `map_batches` for the scoring actor pool."""
    return {
        "compute": ActorPoolStrategy(min_size=scoring.min_actors, max_size=scoring.max_actors),
        "num_cpus": scoring.cpus_per_actor,
        "num_gpus": scoring_gpus(scoring),
        "batch_size": scoring.batch_size,
    }


def read_args(scoring: ScoringConfig) -> dict:
    """Read tasks take a fraction of a CPU: at 1 CPU each they starve the actors on small machines."""
    return {"num_cpus": min(scoring.cpus_per_actor, 0.5)}


def check_fits(config: RunConfig) -> None:
    """Fail fast when the reservations of learner and scorers leave no CPU for Ray Data reads.

    The learner's workers live for the whole run and keep their CPUs while the pool is scored;
    Ray Data's file-listing task asks for a whole CPU, so without one free the scoring pass
    would wait forever.
    """
    total = float(ray.cluster_resources().get("CPU", 0.0))
    reserved = (config.learner.workers * config.learner.cpus_per_worker
                + config.scoring.max_actors * config.scoring.cpus_per_actor)
    if total - reserved < 1.0:
        raise ConfigError(
            f"the learner ({config.learner.workers} x {config.learner.cpus_per_worker} CPU) and the scorers "
            f"({config.scoring.max_actors} x {config.scoring.cpus_per_actor} CPU) reserve {reserved:g} of the "
            f"cluster's {total:g} CPUs, leaving less than the 1 CPU Ray Data needs to read the pool: lower "
            "learner.cpus_per_worker or scoring.cpus_per_actor")

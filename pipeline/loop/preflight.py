"""One preflight: a run's config checked against every registry and against its data, once,
before Ray starts; what it returns is all the driver, the coordinator and the workers take.

    pipeline.config.run_config   YAML and --set overrides, types and ranges: no registry, no data
    check_names       every name against the registry that owns it (sources, models, acquisitions,
                      memories, strategies, augmentations)
    plan_run          the schedule resolved against the pool, the config against the prepared data
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipeline.config.run_config import RunConfig
from pipeline.config.schedule import resolve_schedule, to_count
from pipeline.data import PreparedData, prepare_data
from pipeline.data.base import ParallelMap
from pipeline.errors import ConfigError
from pipeline.selection.acquisition import ACQUISITIONS, Acquisition, get_acquisition
from pipeline.selection.batch import SAMPLINGS, BatchRule


@dataclass(frozen=True)
class RunPlan:
    """A checked run: its config, its prepared data, and its schedule in labels."""

    config: RunConfig
    data: PreparedData
    initial_size: int  # the random initial set
    round_sizes: tuple[int, ...]  # labels acquired in each round after round 0

    @property
    def num_rounds(self) -> int:
        return 1 + len(self.round_sizes)

    @property
    def last_round(self) -> int:
        return len(self.round_sizes)


def preflight(config: RunConfig, parallel_map: ParallelMap | None = None) -> RunPlan:
    """Names first (a typo should not wait for data to be prepared), then the data, then the plan.
    `parallel_map`: see pipeline.data.prepare_data."""
    check_names(config)
    return _plan(config, prepare_data(config.data, parallel_map=parallel_map))


def plan_run(config: RunConfig, data: PreparedData) -> RunPlan:
    """The plan of `config` on data prepared already (compare and tune share one preparation)."""
    check_names(config)
    return _plan(config, data)


def _plan(config: RunConfig, data: PreparedData) -> RunPlan:
    from pipeline.data.growth import create_growth
    from pipeline.data.pool import check_augment
    from pipeline.update.models import check_models_read  # imports torch: only once the config is known good

    initial, sizes = resolve_schedule(config.schedule, data.pool_size)
    check_models_read(config.proxy.name, config.target.name, data.dataset, data.holds)
    check_augment(config, data)
    create_growth(config, data).check()
    _check_validation(config, data)
    if sizes:  # the first scored round's candidates; a growing pool is checked again as it grows
        unlabelled = data.pool_size - initial
        size = config.scoring.candidates
        acquisition_for(config).check_candidates(
            unlabelled if size is None else max(to_count(size, unlabelled), sizes[0])
        )
    return RunPlan(config, data, initial, tuple(sizes))


def _check_validation(config: RunConfig, data: PreparedData) -> None:
    """What decides on validation accuracy needs a validation split: test accuracy only reports."""
    from pipeline.loop.stopping import CRITERIA

    if data.validation_size:
        return
    for i, stop in enumerate(config.stopping):
        if CRITERIA.get(stop.criterion).reads_validation:
            raise ConfigError(
                f"stopping[{i}].criterion {stop.criterion} decides on validation accuracy, and the data has no "
                "validation split (test accuracy only reports): set data.validation, e.g. 0.1 or 5000"
            )


def check_names(config: RunConfig) -> None:
    """Every name in `config` against its registry: one line naming the key and the choices."""
    from pipeline.data import SOURCES
    from pipeline.data.growth import GROWTHS
    from pipeline.loop.stopping import CRITERIA
    from pipeline.update.augment import AUGMENTS
    from pipeline.update.memory import MEMORIES
    from pipeline.update.models import MODELS  # torch: the registries hold the classes they name
    from pipeline.update.strategies import STRATEGIES

    one_of("strategy", config.strategy, STRATEGIES.names())
    one_of("acquisition", config.acquisition, ACQUISITIONS.names())
    one_of("data.dataset", config.data.dataset, SOURCES.names())
    one_of("pool.growth", config.pool.growth, GROWTHS.names())
    one_of("memory.policy", config.memory.policy, MEMORIES.names())
    one_of("data.augment", config.data.augment, ["auto", *AUGMENTS.names()])
    for role in ("proxy", "target"):
        one_of(f"{role}.name", getattr(config, role).name, MODELS.names())
    for i, stop in enumerate(config.stopping):
        one_of(f"stopping[{i}].criterion", stop.criterion, CRITERIA.names())
    one_of("batch.sampling", config.batch.sampling, list(SAMPLINGS))
    acquisition_for(config)  # the batch rule against the acquisition: power needs scores >= 0, ...


def acquisition_for(config: RunConfig) -> Acquisition:
    """The run's acquisition, drawing its batches by `config.batch`."""
    return get_acquisition(config.acquisition, BatchRule(**dataclasses.asdict(config.batch)))


def one_of(key: str, value: str, valid: list[str]) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {key} '{value}': choose one of {', '.join(valid)}")

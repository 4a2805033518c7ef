"""A run's schedule against its pool: the config's sizes (fractions or counts) as label counts.
No Ray, no data: the pool's size is all it needs."""

from __future__ import annotations

from pipeline.config.run_config import ScheduleConfig, Size
from pipeline.errors import ConfigError


def to_count(value: Size, total: int) -> int:
    """A fraction of `total` (float) or an absolute count (int)."""
    return int(round(value * total)) if isinstance(value, float) else int(value)


def round_count(schedule: ScheduleConfig) -> int:
    """Rounds in a run, round 0 (the initial set) included; the pool size does not change it."""
    return 1 + (schedule.rounds if schedule.rounds is not None else len(schedule.round_ends))


def resolve_schedule(schedule: ScheduleConfig, pool_size: int) -> tuple[int, list[int]]:
    """(initial labelled count, [labels acquired in each round]) for a pool of `pool_size`."""
    initial = to_count(schedule.initial, pool_size)
    if schedule.rounds is not None:
        if schedule.round_size is None:
            raise ConfigError("schedule.rounds needs schedule.round_size: set both, or schedule.round_ends instead")
        ends = [initial + (r + 1) * to_count(schedule.round_size, pool_size) for r in range(schedule.rounds)]
    else:
        ends = [to_count(end, pool_size) for end in schedule.round_ends]
    if initial > pool_size:
        raise ConfigError(f"schedule.initial asks for {initial} labels but the pool holds {pool_size}: lower it")
    previous = initial
    sizes = []
    for i, end in enumerate(ends):
        if end <= previous:
            raise ConfigError(
                f"schedule round {i + 1} ends at {end} labels, not above {previous}: "
                "make schedule.round_ends strictly increasing and above schedule.initial"
            )
        sizes.append(end - previous)
        previous = end
    if previous > pool_size:
        raise ConfigError(
            f"schedule asks for {previous} labels in total but the pool holds {pool_size}: "
            "lower schedule.round_ends (or round_size x rounds)"
        )
    return initial, sizes

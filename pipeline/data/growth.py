"""How the pool grows between rounds, as a registered policy (`pool.growth`): the round loop asks
its policy which files the pool has at round r and never which policy it holds.

    static             the prepared pool, every round
    class_incremental  classes arrive in a configured order, `initial_classes` for round 0 and
                       `classes_per_round` more each round after it, so round r sees
                       order[:initial + r * per_round] (the pool rewritten once by class)
    arrivals           the prepared pool plus the Parquet shards that appeared in `arrivals_dir`,
                       each admitted before the first round that sees it
"""

from __future__ import annotations

import os

import pyarrow.parquet as pq

from pipeline.config.run_config import RunConfig
from pipeline.config.schedule import resolve_schedule
from pipeline.data.base import PreparedData
from pipeline.data.pool import admit_arrivals, class_shards, pool_ids, split_files
from pipeline.errors import ConfigError, DataError
from pipeline.registry import Registry


class PoolGrowth:
    """The static pool; the other policies override what changes. `admitted` is every arrival shard
    that committed rounds took in, in order; the policy itself keeps no state a resume would lose."""

    records_admitted = False  # whether a round's record lists the shards it admitted

    def __init__(self, config: RunConfig, data: PreparedData):
        self.config, self.data = config, data

    def check(self) -> None:
        """Before Ray starts: the policy's settings against the prepared data (one-line errors)."""

    def admit(self, round_index: int, admitted: list[str]) -> list[str]:
        """Shards that join the pool at `round_index` (DataError, before anything is written, if one is bad)."""
        return []

    def files(self, round_index: int, admitted: list[str]) -> list[str] | None:
        """The pool's Parquet files at `round_index` once `admitted` joined it; None: the prepared pool."""
        return None

    def rows_from(self, admitted: list[str]) -> list[str] | None:
        """The files that hold every labelled id once `admitted` joined (None: the prepared pool)."""
        return None

    def classes(self, round_index: int) -> tuple[int, ...] | None:
        """The classes in the pool at `round_index`; None when the pool does not grow by class."""
        return None


GROWTHS: Registry[type[PoolGrowth]] = Registry("pool.growth")
GROWTHS.register("static")(PoolGrowth)


def create_growth(config: RunConfig, data: PreparedData) -> PoolGrowth:
    return GROWTHS.get(config.pool.growth)(config, data)


@GROWTHS.register("class_incremental")
class ClassIncremental(PoolGrowth):
    def __init__(self, config: RunConfig, data: PreparedData):
        super().__init__(config, data)
        self.order = config.pool.class_order or tuple(range(data.num_classes))
        self._class_files: dict[int, list[str]] | None = None

    def classes(self, round_index: int) -> tuple[int, ...]:
        pool = self.config.pool
        return classes_at(self.order, pool.initial_classes, pool.classes_per_round, round_index)

    def files(self, round_index: int, admitted: list[str]) -> list[str]:
        if self._class_files is None:
            self._class_files = class_shards(self.data)
        return [path for c in self.classes(round_index) for path in self._class_files[c]]

    def check(self) -> None:
        """The class order names the dataset's classes; the schedule fits the classes at each round."""
        check_class_order(self.order, self.data.num_classes)
        rows = {c: sum(pq.read_metadata(f).num_rows for f in files) for c, files in class_shards(self.data).items()}
        initial, sizes = resolve_schedule(self.config.schedule, self.data.pool_size)
        labelled = initial
        for r, size in enumerate([0, *sizes]):
            labelled += size
            classes = self.classes(r)
            available = sum(rows[c] for c in classes)
            if labelled > available:
                raise ConfigError(
                    f"by round {r} the schedule asks for {labelled} labels, but only {available} examples "
                    f"(classes {', '.join(map(str, classes))}) have arrived by then: lower the schedule or "
                    "raise pool.initial_classes / pool.classes_per_round"
                )


@GROWTHS.register("arrivals")
class Arrivals(PoolGrowth):
    records_admitted = True

    def check(self) -> None:
        directory = self.config.pool.arrivals_dir
        if directory is None or not os.path.isdir(directory):
            raise DataError(f"pool.arrivals_dir {directory} is not a directory: create it or fix the path")

    def admit(self, round_index: int, admitted: list[str]) -> list[str]:
        return admit_arrivals(self._directory(), admitted, pool_ids(self._files(admitted)), self.data)

    def _directory(self) -> str:
        if self.config.pool.arrivals_dir is None:
            raise ConfigError(
                "pool.growth = arrivals needs pool.arrivals_dir: the directory new Parquet shards appear in"
            )
        return self.config.pool.arrivals_dir

    def files(self, round_index: int, admitted: list[str]) -> list[str]:
        return self._files(admitted)

    def rows_from(self, admitted: list[str]) -> list[str]:
        return self._files(admitted)

    def _files(self, admitted: list[str]) -> list[str]:
        return split_files(self.data.split_dir("pool")) + admitted


def check_class_order(order: tuple[int, ...], num_classes: int) -> None:
    unknown = [c for c in order if not 0 <= c < num_classes]
    if unknown:
        raise ConfigError(
            f"pool.class_order names class {unknown[0]}, but the dataset's classes are "
            f"0..{num_classes - 1}: list each of them once"
        )
    if len(set(order)) != len(order):
        repeated = next(c for c in order if order.count(c) > 1)
        raise ConfigError(f"pool.class_order lists class {repeated} twice: list each class once")
    if len(order) != num_classes:
        missing = sorted(set(range(num_classes)) - set(order))
        raise ConfigError(f"pool.class_order leaves out class {missing[0]}: list all {num_classes} classes")


def classes_at(order: tuple[int, ...], initial: int, per_round: int, round_index: int) -> tuple[int, ...]:
    """The classes whose examples are in the pool at `round_index`."""
    return tuple(order[: initial + per_round * round_index])

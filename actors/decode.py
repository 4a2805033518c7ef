"""Decoding spread over the cluster: the ParallelMap (pipeline.data.base) a source such as
imagefolder decodes its files with when a run prepares its data, on Ray Data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from pipeline.data.base import ParallelMap

TASK_BATCH_ROWS = 64  # rows per decode task batch: small, so a few thousand images spread over every CPU
OUT_BATCH_ROWS = 1024  # rows per batch handed back to the source (its Parquet writer)


def ray_data_map(connect_first: Callable[[], None] = lambda: None) -> ParallelMap:
    """A ParallelMap on Ray Data; `connect_first` (the CLI's: start or join the run's Ray) runs at its
    first call, so a run whose shards exist already never starts Ray for them (nor imports it: this
    module is imported before a run knows whether it decodes anything)."""

    def parallel_map(columns: dict[str, np.ndarray], fn: Callable, fn_kwargs: dict) -> Iterator[dict]:
        import ray

        connect_first()
        values = {name: column.tolist() for name, column in columns.items()}  # Python scalars for from_items
        rows = [dict(zip(values, row)) for row in zip(*values.values())]
        with _preserve_order():
            ds = ray.data.from_items(rows).map_batches(
                fn, fn_kwargs=fn_kwargs, batch_size=TASK_BATCH_ROWS, num_cpus=1, batch_format="numpy"
            )
            yield from ds.iter_batches(batch_size=OUT_BATCH_ROWS, batch_format="numpy")

    return parallel_map


@contextmanager
def _preserve_order():
    """Ray Data then yields rows in input order, so shards come out in id order."""
    from ray.data import DataContext

    options = DataContext.get_current().execution_options
    before, options.preserve_order = options.preserve_order, True
    try:
        yield
    finally:
        options.preserve_order = before

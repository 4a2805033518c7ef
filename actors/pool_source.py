"""The pool's Parquet shards as a Ray Data datasource: one read task per shard, nothing else.

`ray.data.read_parquet` plans a file-listing operator before its read tasks, and Ray Data gives
that operator a whole CPU, which cannot be configured. On a node whose CPUs the learner and the
scorers hold in part (two nodes of one CPU each: 0.5 + 0.5 on one, 0.5 free on the other) that
task fits nowhere and the pass waits forever. The shards are known already (the prepared
manifest and the growth code list them), so nothing needs listing: each read task takes
`read_args`' CPU share, reads its shard's `id` and `image` columns, and keeps only the wanted
rows when a candidate subset is given (pyarrow skips row groups whose id statistics exclude
every wanted id, and filters the rest before they become Ray blocks).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

COLUMNS = ["id", "image"]
BATCH_ROWS = 1024  # rows per Arrow batch a read task yields; Ray Data groups them into blocks


class PoolShards(Datasource):
    def __init__(self, files: list[str], wanted_ids: np.ndarray | None = None):
        """`files`: Parquet shards of the pool (paths or URIs); `wanted_ids`: keep only these ids (None: all)."""
        self.files = list(files)
        self.wanted_ids = wanted_ids

    def get_name(self) -> str:
        return "PoolShards"

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context=None
    ) -> list[ReadTask]:
        return [
            ReadTask(
                lambda path=path, wanted=self.wanted_ids: _read_shard(path, wanted),
                BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=(path,)),
                per_task_row_limit=per_task_row_limit,
            )
            for path in self.files
        ]


def _read_shard(path: str, wanted_ids: np.ndarray | None) -> Iterable[pa.Table]:
    shard = pads.dataset(path, format="parquet")
    where = None if wanted_ids is None else pads.field("id").isin(pa.array(wanted_ids, type=pa.int64()))
    for batch in shard.to_batches(columns=COLUMNS, filter=where, batch_size=BATCH_ROWS):
        if batch.num_rows:
            yield pa.Table.from_batches([batch])

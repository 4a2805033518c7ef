"""The pool's Parquet files and what growing it takes (pipeline.data.growth says when).

class shards  the prepared pool rewritten once as one directory of shards per class, for a pool
              whose classes arrive over the rounds.
arrivals      shards from a watched directory, admitted after checks that keep the pool sound:
              the pool schema (and image shape), at least one row, ids unique within it and new
              to the pool. A shard that fails stops the run with its name.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pipeline.config.run_config import RunConfig
from pipeline.data.base import PreparedData
from pipeline.data.rows import parquet_dataset, pool_schema
from pipeline.errors import ConfigError, DataError
from pipeline.storage import Storage, is_uri, join

BY_CLASS = "pool_by_class"


def class_shards(data: PreparedData) -> dict[int, list[str]]:
    """class -> its shard files; written beside the prepared pool on first use, atomically."""
    if is_uri(data.root):
        raise ConfigError(
            f"pool.growth = class_incremental rewrites the pool by class beside it, on a disk; "
            f"the pool is prepared at {data.root}: set data.cache_dir to a path every node shares"
        )
    root = Path(data.root) / BY_CLASS
    if not root.is_dir():
        tmp = root.with_name(f".{BY_CLASS}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.mkdir()
        try:
            pool = pads.dataset(data.split_dir("pool"), format="parquet")
            for c in range(data.num_classes):
                (tmp / f"class-{c:03d}").mkdir()
                table = pool.to_table(filter=pc.field("label") == c)
                if table.num_rows:
                    pq.write_table(table.combine_chunks(), tmp / f"class-{c:03d}" / "part-00000.parquet")
            try:
                os.replace(tmp, root)
            except OSError:
                if not root.is_dir():
                    raise  # otherwise another process wrote the same shards first
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return {c: sorted(str(p) for p in (root / f"class-{c:03d}").glob("*.parquet")) for c in range(data.num_classes)}


def split_files(split_dir: str) -> list[str]:
    """The split's Parquet shards, in order: paths, or URIs when the split is in an object store."""
    if is_uri(split_dir):
        return [join(split_dir, name) for name in Storage(split_dir).names() if name.endswith(".parquet")]
    return sorted(str(p) for p in Path(split_dir).glob("*.parquet"))


def pool_ids(files: list[str]) -> np.ndarray:
    """Every id in `files`, sorted (8 bytes a row: the images stay on disk)."""
    if not files:
        return np.empty(0, dtype=np.int64)
    return np.sort(parquet_dataset(files).to_table(columns=["id"]).column("id").to_numpy())


def admit_arrivals(directory: str, admitted: list[str], known_ids: np.ndarray, data: PreparedData) -> list[str]:
    """The shards in `directory` not yet in `admitted`, checked against the pool; in name order.

    `known_ids`: sorted ids already in the pool. Raises DataError naming the first bad shard.
    """
    if not os.path.isdir(directory):
        raise DataError(f"pool.arrivals_dir {directory} is not a directory: create it or fix the path")
    expected = pool_schema(data.image_shape, data.feature_dtype)
    new = [str(p) for p in sorted(Path(directory).glob("*.parquet")) if str(p) not in set(admitted)]
    seen = known_ids
    for path in new:
        try:
            schema = pq.read_schema(path)
            rows = pq.read_metadata(path).num_rows
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(
                f"arrival shard {path} is not a readable Parquet file ({exc}); remove or replace it"
            ) from None
        if (
            not schema.remove_metadata().equals(expected.remove_metadata())
            or (schema.metadata or {}).get(b"clactive.image_shape") != expected.metadata[b"clactive.image_shape"]
        ):
            raise DataError(
                f"arrival shard {path} has schema {_describe(schema)}, not the pool's "
                f"{_describe(expected)}; rewrite it with pipeline.data.rows.arrow_table"
            )
        if rows == 0:
            raise DataError(f"arrival shard {path} holds no rows; remove it")
        ids = pq.read_table(path, columns=["id"]).column("id").to_numpy()
        unique = np.unique(ids)
        if len(unique) != len(ids):
            raise DataError(f"arrival shard {path} repeats id {_first_repeat(ids)}; ids must be unique")
        clash = unique[np.isin(unique, seen)]
        if len(clash):
            raise DataError(f"arrival shard {path} reuses id {clash[0]}, already in the pool; give its rows new ids")
        seen = np.union1d(seen, unique)
    return new


def _describe(schema) -> str:
    shape = (schema.metadata or {}).get(b"clactive.image_shape", b"?").decode()
    return "(" + ", ".join(f"{f.name}: {f.type}" for f in schema) + f"; image shape {shape})"


def _first_repeat(ids: np.ndarray) -> int:
    values, counts = np.unique(ids, return_counts=True)
    return int(values[counts > 1][0])


def check_augment(config: RunConfig, data: PreparedData) -> None:
    """Before Ray starts, the config against the prepared data: augmentation is for images (the pool's
    growth policy checks its own settings, pipeline.data.growth)."""
    if data.holds != "pixels" and config.data.augment not in ("auto", "none"):
        raise ConfigError(
            f"data.augment = {config.data.augment} transforms images, but {data.dataset} holds text: "
            "set data.augment to none"
        )

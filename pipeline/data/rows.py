"""The pool format's rows: the Arrow schema every split is written in, the image column's codec,
and reading rows (images and labels, or labels alone) by id from a split's Parquet files.

Schema of every split (pool, test), of arrival shards and of the oracle's requests:
    id     int64                     stable across runs: the row's index in the source
    image  fixed_size_binary         C*H*W uint8 pixels, row-major; the shape is in the schema metadata
                                     or, for text, 1*1*L int32 hashed word ids (pipeline.data.amazon): the
                                     width over C*H*W says which (1 or 4 bytes a value)
    label  int64                     in [0, num_classes)
The column keeps the name `image` for text too: every stage (scoring, replay, the label store,
the oracle's requests) moves it as an opaque fixed-size row, and only the model reads it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from pipeline.errors import DataError
from pipeline.ids import positions_of

SHAPE_KEY = b"clactive.image_shape"
FEATURE_TYPES = {"uint8": pa.uint8(), "int32": pa.int32()}
# 2: the image column is fixed_size_binary. As fixed_size_list (1), Parquet stored a repetition level
# per pixel, and decoding a 60k-row pool took 0.5 s against 0.1 s now: every update reads its rows by
# id from the pool, every scoring pass decodes it. Part of the cache key, so caches are rewritten once.
POOL_FORMAT = 2


def pool_schema(image_shape: tuple[int, int, int], feature_dtype: str = "uint8") -> pa.Schema:
    width = int(np.prod(image_shape)) * FEATURE_TYPES[feature_dtype].byte_width
    return pa.schema(
        [("id", pa.int64()), ("image", pa.binary(width)), ("label", pa.int64())],
        metadata={SHAPE_KEY: ",".join(map(str, image_shape)).encode()},
    )


def image_array(images: np.ndarray) -> pa.FixedSizeBinaryArray:
    """(n, C, H, W) uint8 pixels or int32 token ids -> the image column of the pool format (no copy
    beyond making them contiguous)."""
    flat = np.ascontiguousarray(images, dtype=feature_dtype_of(images))
    width = int(np.prod(images.shape[1:])) * flat.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(flat), [None, pa.py_buffer(flat)])


def feature_dtype_of(images: np.ndarray) -> str:
    """The FEATURE_TYPES key an images array is written as: int32 token ids stay int32, anything
    else is pixels and written as uint8."""
    return "int32" if images.dtype == np.int32 else "uint8"


def shape_from_schema(schema: pa.Schema) -> tuple[int, int, int]:
    """The (C, H, W) image shape a pool-format schema carries in its metadata."""
    c, h, w = (int(v) for v in schema.metadata[SHAPE_KEY].decode().split(","))  # pool_schema wrote three
    return (c, h, w)


def arrow_table(pool_ids: np.ndarray, images: np.ndarray, labels: np.ndarray, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [pa.array(pool_ids, pa.int64()), image_array(images), pa.array(np.asarray(labels, dtype=np.int64))],
        schema=schema,
    )


def images_from_arrow(column: pa.ChunkedArray | pa.Array, image_shape) -> np.ndarray:
    """Image column -> (n, C, H, W) uint8 (or int32 for text), a view of the column's buffer, not a
    per-row copy. Also reads the fixed_size_list column of pool format 1 (arrival shards and label
    requests written before format 2)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_fixed_size_list(column.type):
        return column.flatten().to_numpy(zero_copy_only=False).reshape((len(column), *image_shape))
    size = int(np.prod(image_shape))
    dtype = {1: np.uint8, 4: np.int32}[column.type.byte_width // size]
    if len(column) == 0:
        return np.empty((0, *image_shape), dtype=dtype)
    values = np.frombuffer(
        column.buffers()[1], dtype=dtype, count=len(column) * size, offset=column.offset * column.type.byte_width
    )
    return values.reshape((len(column), *image_shape))


def read_rows(source: str | list[str], pool_ids: np.ndarray, image_shape) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, C, H, W), labels (n,)) of `pool_ids` (repeats allowed), in that order, from a split's
    directory or a list of its Parquet files. A filtered scan whose batches are copied straight into
    the result: memory is the result plus one batch, not twice the result (an update's rows can be
    gigabytes)."""
    pool_ids = np.asarray(pool_ids, dtype=np.int64)
    order = np.argsort(pool_ids, kind="stable")
    sorted_ids = pool_ids[order]
    unique = np.unique(sorted_ids)
    images, labels = None, np.empty(len(pool_ids), dtype=np.int64)
    found = []
    for batch in parquet_dataset(source).to_batches(
        columns=["id", "image", "label"], filter=pc.field("id").isin(pa.array(unique))
    ):
        ids = batch.column("id").to_numpy()
        found.append(ids)
        # every position that asked for each of the batch's ids (an id may be asked for more than once)
        lo, hi = np.searchsorted(sorted_ids, ids, "left"), np.searchsorted(sorted_ids, ids, "right")
        counts = hi - lo
        rows = np.repeat(np.arange(len(ids)), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        dest = order[np.repeat(lo, counts) + within]
        batch_images = images_from_arrow(batch.column("image"), image_shape)
        if images is None:
            images = np.empty((len(pool_ids), *image_shape), dtype=batch_images.dtype)
        images[dest] = batch_images[rows]
        labels[dest] = batch.column("label").to_numpy()[rows]
    _check_found(source, unique, np.concatenate(found) if found else np.empty(0, np.int64))
    if images is None:
        images = np.empty((0, *image_shape), dtype=np.uint8)
    return images, labels


def read_labels(source: str | list[str], pool_ids: np.ndarray) -> np.ndarray:
    """The label column of `pool_ids`, in that order: what the simulated oracle reveals, without the pixels."""
    pool_ids = np.asarray(pool_ids, dtype=np.int64)
    unique = np.unique(pool_ids)
    table = parquet_dataset(source).to_table(columns=["id", "label"], filter=pc.field("id").isin(pa.array(unique)))
    found = table.column("id").to_numpy()
    _check_found(source, unique, found)
    return table.column("label").to_numpy()[positions_of(found, pool_ids)]


def _check_found(source: str | list[str], unique: np.ndarray, found: np.ndarray) -> None:
    if len(found) != len(unique):
        missing = np.setdiff1d(unique, found)[:5]
        where = source if isinstance(source, str) else f"the pool's {len(source)} files"
        raise DataError(
            f"ids {missing.tolist()} are not in {where}; the data changed under the run: start a new run directory"
        )


def parquet_dataset(source: str | list[str]) -> pads.Dataset:
    """A split's directory (path or URI) or a list of its files. pyarrow reads a list with the local
    filesystem unless told otherwise, so a list of URIs (s3://...) gets theirs."""
    if isinstance(source, str) or not source or "://" not in source[0]:
        return pads.dataset(source, format="parquet")
    filesystem = pafs.FileSystem.from_uri(source[0])[0]
    return pads.dataset([pafs.FileSystem.from_uri(uri)[1] for uri in source], format="parquet", filesystem=filesystem)

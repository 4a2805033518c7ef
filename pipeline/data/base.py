"""Sources turn a dataset's own files into the common pool format (pipeline.data.rows), written once
as Parquet: the Source interface, the registry of sources, and `prepare_data`, which writes a
source's splits once and finds them again by a cache key.

A source's options (image size, column names, ...) come from the `data` section of the config;
those that change the written rows are part of the cache key (`Source.params`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.config.run_config import DataConfig
from pipeline.data.rows import POOL_FORMAT, arrow_table, pool_schema
from pipeline.errors import DataError
from pipeline.registry import Registry
from pipeline.storage import Storage, is_uri, join

SPLITS = ("pool", "validation", "test")
UNSPLIT = "pool-unsplit"  # the whole pool, before data.validation's rows are held out of it
MANIFEST = "manifest.json"
HOLDS = {"uint8": "pixels", "int32": "tokens"}  # what a pool of each feature dtype holds

SOURCES: Registry[type[Source]] = Registry("data.dataset")


def get_source(name: str, data_dir: str | Path, options: DataConfig | None = None) -> Source:
    return SOURCES.get(name)(Path(data_dir), options)


def source_for(data: DataConfig) -> Source:
    """The source the `data` section of a config names, with its options."""
    return get_source(data.dataset, data.data_dir, data)


def resolve_augment(data: DataConfig) -> str:
    """`data.augment`, with `auto` replaced by the source's default (see pipeline.update.augment)."""
    return SOURCES.get(data.dataset).default_augment if data.augment == "auto" else data.augment


Stat = float | tuple[float, ...]


# A map a source may spread its decoding over: (columns, fn, fn_kwargs) -> fn's output batches, in
# input order. The Ray side's runs on Ray Data (actors.decode.ray_data_map).
ParallelMap = Callable[[dict, Callable, dict], Iterator[dict]]


class Source(ABC):
    """A dataset on disk in its own format.

    What it holds (num_classes, image_shape, feature_dtype, class_names) is read-only: a source states
    each as a class attribute, or computes it as a property (from its options, or its files).
    """

    name: str
    mean: Stat  # pixel statistics in [0, 1], for normalisation: one value,
    std: Stat  # or one per channel
    default_augment: str = "none"  # what data.augment: auto means for this source
    decodes_in_parallel: bool = False  # read_split spreads its decoding over a ParallelMap when given one
    parallel_map: ParallelMap | None = None

    def __init__(self, data_dir: Path, options: DataConfig | None = None):
        self.data_dir = data_dir
        self.options = options or DataConfig()

    @property
    @abstractmethod
    def num_classes(self) -> int: ...

    @property
    @abstractmethod
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)"""

    @property
    def feature_dtype(self) -> str:
        """A key of FEATURE_TYPES (pipeline.data.rows): what read_split yields as images."""
        return "uint8"

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The label each class index stands for, for a source that maps its own labels to 0..K-1
        (text_csv); None: the files' labels are the classes."""
        return None

    def params(self) -> dict[str, Any]:
        """The options that change the written rows; they are part of the cache key."""
        return {}

    @abstractmethod
    def files(self) -> list[Path]:
        """Every file the source reads; `check` and the cache key use them."""

    @abstractmethod
    def read_split(self, split: str) -> Iterator[tuple[np.ndarray, ...]]:
        """Yields (images feature_dtype (n, C, H, W), labels int64 (n,)) chunks of `split`, in id order,
        or (images, labels, pool_ids int64 (n,)) chunks for a source whose ids are its own."""

    def has_validation(self) -> bool:
        """Whether the source's own files hold a validation split (read_split("validation"))."""
        return False

    def check(self) -> None:
        """Fail fast, before any Ray work, when a file is missing."""
        for path in self.files():
            if not path.is_file():
                raise DataError(
                    f"{self.name}: missing data file {path}; pass the directory that holds "
                    f"{', '.join(p.name for p in self.files())} with --data-dir"
                )

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.name}:format{POOL_FORMAT}".encode())
        digest.update(json.dumps(self.params(), sort_keys=True).encode())
        if self.options.validation != 0:  # only then: a cache written before validation splits keeps its key
            digest.update(f"validation:{self.options.validation!r}:{self.options.validation_seed}".encode())
        for path in self.files():
            stat = path.stat()
            digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class PreparedData:
    """Where a prepared dataset lives and what it holds."""

    root: str
    dataset: str
    num_classes: int
    image_shape: tuple[int, int, int]
    mean: Stat
    std: Stat
    sizes: dict[str, int]
    feature_dtype: str = "uint8"  # manifests written before text sources existed hold pixels
    class_names: tuple[str, ...] | None = None  # class i was labelled class_names[i] in the source's
    # files; None: the files' labels are the classes

    @property
    def holds(self) -> str:
        """ "pixels" or "tokens": which models can read this data (pipeline.update.models)."""
        return HOLDS[self.feature_dtype]

    def split_dir(self, split: str) -> str:
        """The split's directory: a path, or a URI when the pool was prepared in an object store."""
        return join(self.root, split)

    @property
    def pool_size(self) -> int:
        return self.sizes["pool"]

    @property
    def validation_size(self) -> int:
        """Examples in the validation split; 0: none (a manifest from before validation splits lacks it)."""
        return self.sizes.get("validation", 0)


def prepare_dataset(source: Source, cache_dir: str | Path, shard_rows: int) -> PreparedData:
    """Write the source's splits as Parquet shards once; later calls reuse them.

    The shards count only once complete. On a disk they are written to a temporary sibling
    directory that is renamed into place, `cache_dir/<dataset>-<fingerprint>`. In an object store
    (a URI: s3://..., where nothing renames a directory) they are written in place and the
    manifest last: its presence publishes them, and a preparation that died before it is
    written again by the next one.
    """
    source.check()
    root = prepared_root(source, cache_dir)
    storage = Storage(root)
    if storage.is_file(MANIFEST):
        return _load_manifest(root)
    if not storage.local:
        _write_splits(
            source,
            shard_rows,
            lambda name, table: storage.write_table(name, table),
            lambda text: storage.write(MANIFEST, text.encode()),
            storage.read_table,
            storage.delete_dir,
        )
        return _load_manifest(root)
    tmp = Path(root).with_name(f".{Path(root).name}.{uuid.uuid4().hex[:8]}.tmp")
    for split in (*SPLITS, UNSPLIT) if source.options.validation else SPLITS:  # an empty split: an empty directory
        (tmp / split).mkdir(parents=True)
    try:
        _write_splits(
            source,
            shard_rows,
            lambda name, table: pq.write_table(table, tmp / name),
            (tmp / MANIFEST).write_text,
            lambda name, columns=None: pq.read_table(tmp / name, columns=columns),
            lambda name: shutil.rmtree(tmp / name),
        )
        try:
            os.replace(tmp, root)
        except OSError:
            if not storage.is_file(MANIFEST):
                raise
            # another process prepared the same data first; its copy is identical
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _load_manifest(root)


def _write_splits(
    source: Source,
    shard_rows: int,
    write_shard: Callable[[str, pa.Table], None],
    write_manifest: Callable[[str], object],
    read_shard: Callable[..., pa.Table],  # (name, columns=None)
    delete_dir: Callable[[str], None],
) -> None:
    held_out = source.options.validation
    if held_out != 0 and source.has_validation():
        raise DataError(
            f"{source.name}: {source.data_dir} holds a validation split of its own and data.validation = "
            f"{held_out!r} asks to hold another out of the pool: drop data.validation, or the source's file"
        )
    sizes = {"pool": _write_split(source, "pool", write_shard, shard_rows, UNSPLIT if held_out else "pool")}
    if held_out:
        sizes["pool"], sizes["validation"] = _hold_out(
            source, sizes["pool"], shard_rows, write_shard, read_shard, delete_dir
        )
    else:
        sizes["validation"] = (
            _write_split(source, "validation", write_shard, shard_rows) if source.has_validation() else 0
        )
    sizes["test"] = _write_split(source, "test", write_shard, shard_rows)
    if sizes["pool"] == 0:
        raise DataError(
            f"{source.name}: the pool split in {source.data_dir} holds no examples; "
            "point --data-dir at a non-empty dataset"
        )
    # read after the splits: a source may learn its classes or statistics while reading them
    c, h, w = source.image_shape  # a tuple, whatever sequence the source keeps it in
    prepared = PreparedData(
        root="",
        dataset=source.name,
        num_classes=source.num_classes,
        image_shape=(c, h, w),
        mean=_stat(source.mean),
        std=_stat(source.std),
        # in split order; no validation entry without one, as in manifests written before validation splits
        sizes={split: sizes[split] for split in SPLITS if split != "validation" or sizes[split]},
        feature_dtype=source.feature_dtype,
        class_names=source.class_names,
    )
    write_manifest(json.dumps(asdict(prepared), indent=1))


def _hold_out(
    source: Source,
    written: int,
    shard_rows: int,
    write_shard: Callable[[str, pa.Table], None],
    read_shard: Callable[..., pa.Table],
    delete_dir: Callable[[str], None],
) -> tuple[int, int]:
    """Split the whole pool written to UNSPLIT into pool/ and validation/: data.validation's seeded
    random ids go to validation, the rest stay the pool, shard by shard in their order. The count
    of a fraction needs the pool's size, hence the second pass (the first reads only the ids).
    Returns (pool size, validation size)."""
    spec, seed = source.options.validation, source.options.validation_seed
    names = [f"{UNSPLIT}/part-{i:05d}.parquet" for i in range(_shard_count(written, shard_rows))]
    ids = np.concatenate(
        [read_shard(name, columns=["id"]).column("id").to_numpy() for name in names] or [np.empty(0, np.int64)]
    )
    count = int(round(spec * len(ids))) if isinstance(spec, float) else int(spec)
    if not 0 < count < len(ids):
        raise DataError(
            f"{source.name}: data.validation = {spec!r} holds out {count} of the pool's {len(ids)} examples; "
            "hold out at least one and leave at least one"
        )
    held = np.random.default_rng(seed).choice(ids, size=count, replace=False)
    shards = {"pool": 0, "validation": 0}
    buffered: list[pa.Table] = []  # validation rows, written a shard at a time: never the whole split in memory

    def flush(split: str, table: pa.Table) -> None:
        write_shard(f"{split}/part-{shards[split]:05d}.parquet", table)
        shards[split] += 1

    for name in names:
        table = read_shard(name)
        into_validation = pa.array(np.isin(table.column("id").to_numpy(), held))
        kept = table.filter(pc.invert(into_validation))
        if kept.num_rows:
            flush("pool", kept)
        buffered.append(table.filter(into_validation))
        while sum(t.num_rows for t in buffered) >= shard_rows:
            whole = pa.concat_tables(buffered)
            flush("validation", whole.slice(0, shard_rows))
            buffered = [whole.slice(shard_rows)]
    if sum(t.num_rows for t in buffered):
        flush("validation", pa.concat_tables(buffered))
    delete_dir(UNSPLIT)
    return len(ids) - count, count


def _shard_count(rows: int, shard_rows: int) -> int:
    return -(-rows // shard_rows)


def prepare_data(data: DataConfig, parallel_map: ParallelMap | None = None) -> PreparedData:
    """The `data` section's source, checked, then written as Parquet shards once.

    A source that decodes in parallel (imagefolder) is given `parallel_map` (the Ray side's starts
    or joins the run's Ray at its first call) only after its layout passed the checks and only when
    shards must be written; without one, it decodes in this process.
    """
    source = source_for(data)
    source.check()
    if source.decodes_in_parallel and parallel_map is not None and not is_prepared(source, data.cache_dir):
        source.parallel_map = parallel_map
    return prepare_dataset(source, data.cache_dir, data.shard_rows)


def prepared_root(source: Source, cache_dir: str | Path) -> str:
    """Where `prepare_dataset` writes (or finds) the source's shards: an absolute path, as every process
    of a run reads them from its own working directory (Ray Train runs its workers in one of its own),
    or a URI."""
    name = f"{source.name}-{source.fingerprint()}"
    return join(str(cache_dir), name) if is_uri(str(cache_dir)) else os.path.join(os.path.abspath(cache_dir), name)


def is_prepared(source: Source, cache_dir: str | Path) -> bool:
    return Storage(prepared_root(source, cache_dir)).is_file(MANIFEST)


def _stat(value: Stat) -> Stat:
    return float(value) if isinstance(value, (int, float)) else tuple(float(v) for v in value)


def _load_manifest(root: str) -> PreparedData:
    meta = json.loads(Storage(root).read(MANIFEST))
    meta["root"] = root  # where it is now, not where it was written from
    meta["image_shape"] = tuple(meta["image_shape"])
    for key in ("mean", "std", "class_names"):
        if isinstance(meta.get(key), list):
            meta[key] = tuple(meta[key])
    return PreparedData(**meta)


def _write_split(
    source: Source, split: str, write_shard: Callable[[str, pa.Table], None], shard_rows: int, into: str = ""
) -> int:
    """The source's `split` as shards of `shard_rows` in directory `into` (default: the split's name)."""
    into = into or split
    schema = pool_schema(source.image_shape, source.feature_dtype)
    next_id, shard, buffered, own_ids = 0, 0, [], []

    def flush(tables):
        nonlocal shard
        write_shard(f"{into}/part-{shard:05d}.parquet", pa.concat_tables(tables))
        shard += 1

    for images, labels, *given in source.read_split(split):
        ids = (
            np.arange(next_id, next_id + len(labels), dtype=np.int64)
            if not given
            else np.asarray(given[0], dtype=np.int64)
        )
        if given:
            own_ids.append(ids)
        table = arrow_table(ids, images, labels, schema)
        next_id += len(labels)
        buffered.append(table)
        while sum(t.num_rows for t in buffered) >= shard_rows:
            whole = pa.concat_tables(buffered)
            flush([whole.slice(0, shard_rows)])
            buffered = [whole.slice(shard_rows)] if whole.num_rows > shard_rows else []
    if buffered:
        flush(buffered)
    if own_ids:
        _check_unique(np.concatenate(own_ids), f"{source.name}: the {split} split")
    return next_id


def _check_unique(pool_ids: np.ndarray, what: str) -> None:
    if len(pool_ids) and pool_ids.min() < 0:
        raise DataError(f"{what} has negative id {pool_ids.min()}; ids must be non-negative integers")
    values, counts = np.unique(pool_ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{what} repeats id {values[counts > 1][0]}; ids must be unique")

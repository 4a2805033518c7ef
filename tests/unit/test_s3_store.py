"""The run directory and the pool on a real S3 server (SeaweedFS, started by this module): what the file://
tests of test_run_store cannot show, object listings, directory markers, deletes and signed requests."""

import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline.config.run_config import RunConfig
from pipeline.data.rows import arrow_table, pool_schema, read_labels, read_rows
from pipeline.loop.run_store import RunStore
from tests.s3_server import S3Server, s3_server
from tests.unit.test_run_store import commit_round

SHAPE = (1, 2, 2)


@pytest.fixture(scope="module")
def s3():
    with s3_server() as server:
        yield server


@dataclass(frozen=True)
class Prefix:
    s3: S3Server
    name: str
    form: str

    def uri(self, relative: str = "") -> str:
        path = f"{self.name}/{relative}".rstrip("/")
        return self.s3.uri(path) if self.form == "uri" else self.s3.plain_uri(path)

    def key(self, relative: str = "") -> str:
        """The same place as an S3FileSystem path (bucket/key)."""
        return f"{self.s3.bucket}/{self.name}/{relative}".rstrip("/")


@pytest.fixture(params=["uri", "env"])
def prefix(request, s3, monkeypatch):
    """A fresh prefix of the bucket in both forms a user may give: a self-contained URI (endpoint and keys
    in its query), and a plain s3://bucket/prefix with them in the standard AWS variables."""
    if request.param == "env":
        for name, value in s3.env().items():
            monkeypatch.setenv(name, value)
    return Prefix(s3, f"t-{uuid.uuid4().hex[:12]}", request.param)


def objects(s3: S3Server, key: str) -> list[str]:
    """Every object (and directory marker) under `key`, as the server lists them."""
    return sorted(
        info.path
        for info in s3.filesystem().get_file_info(pafs.FileSelector(key, recursive=True, allow_not_found=True))
    )


def test_committed_rounds_are_read_back_by_another_store(prefix):
    store = RunStore.create(prefix.uri("run"), RunConfig())
    commit_round(store, 0, [5, 1], [2, 3])
    commit_round(store, 1, [9], [7], record={"round": 1, "accuracy": 0.5})

    again = RunStore.open(prefix.uri("run"), RunConfig())
    assert again.committed_rounds() == [0, 1]
    ids, labels = again.load_labels()
    np.testing.assert_array_equal(ids, [5, 1, 9])
    np.testing.assert_array_equal(labels, [2, 3, 7])
    assert again.records() == [{"round": 0}, {"round": 1, "accuracy": 0.5}]
    assert again.storage.read("rounds.jsonl").decode().splitlines() == ['{"round": 0}', '{"round": 1, "accuracy": 0.5}']
    saved = again.load_round_state(1)
    assert saved["checkpoint"] == b"weights-1" and saved["rng"] == {"round": 1}
    np.testing.assert_array_equal(saved["strategy"]["pool_ids"], [9])
    assert f"{prefix.key('run')}/rounds/0001/record.json" in objects(prefix.s3, prefix.key("run"))


def test_a_crash_before_the_record_is_invisible_and_discarded(prefix):
    store = RunStore.create(prefix.uri("run"), RunConfig())
    commit_round(store, 0, [5, 1], [2, 3])
    writer = store.begin_round(1)
    writer.labels(np.array([9]), np.array([7]))
    writer.state({"pool_ids": np.array([9])}, {"round": 1}, b"weights-1")  # ... and the process dies here
    round_1 = prefix.key("run/rounds/0001")
    assert {path.rsplit("/", 1)[1] for path in objects(prefix.s3, round_1)} == {
        "labels.parquet",
        "state.npz",
        "rng.json",
        "checkpoint.pt",
    }

    assert store.committed_rounds() == [0]
    np.testing.assert_array_equal(store.load_labels()[0], [5, 1])
    assert RunStore(prefix.uri("run")).discard_uncommitted() == ["0001"]
    assert objects(prefix.s3, round_1) == []
    assert store.storage.names("rounds") == ["0000"]

    commit_round(store, 1, [9], [7])
    assert store.committed_rounds() == [0, 1]
    np.testing.assert_array_equal(store.load_labels()[0], [5, 1, 9])


def test_location_of_names_a_place_inside_the_run(prefix):
    """Ray Train writes checkpoints at location_of(...): it must name that place, not the run's root
    (with a query in the URI, the name goes before it)."""
    store = RunStore.create(prefix.uri("run"), RunConfig())
    _, path = pafs.FileSystem.from_uri(store.location_of("checkpoints"))
    assert path == prefix.key("run/checkpoints")


@pytest.fixture
def pool(prefix):
    """A two-shard pool in the bucket (label = id % 7; every pixel of a row = its id)."""
    fs = prefix.s3.filesystem()
    for shard, ids in enumerate([np.array([10, 11, 12]), np.array([20, 21])]):
        images = np.broadcast_to(ids.astype(np.uint8)[:, None, None, None], (len(ids), *SHAPE))
        pq.write_table(
            arrow_table(ids, images, ids % 7, pool_schema(SHAPE)),
            prefix.key(f"pool/part-{shard}.parquet"),
            filesystem=fs,
        )
    return prefix


def test_rows_and_labels_are_read_by_id_from_a_pool_directory_uri(pool):
    images, labels = read_rows(pool.uri("pool"), np.array([21, 10, 21]), SHAPE)
    assert images.shape == (3, *SHAPE)
    np.testing.assert_array_equal(images[:, 0, 0, 0], [21, 10, 21])
    np.testing.assert_array_equal(labels, [0, 3, 0])
    np.testing.assert_array_equal(read_labels(pool.uri("pool"), np.array([12, 20])), [5, 6])


def test_rows_and_labels_are_read_by_id_from_a_list_of_pool_file_uris(pool):
    files = [pool.uri(f"pool/part-{shard}.parquet") for shard in range(2)]
    np.testing.assert_array_equal(read_labels(files, np.array([12, 20])), [5, 6])
    np.testing.assert_array_equal(read_rows(files, np.array([21, 10]), SHAPE)[1], [0, 3])


def test_a_pool_prepared_in_the_bucket_is_published_by_its_manifest_and_read_back_by_every_reader(prefix, tmp_path):
    """data.cache_dir = s3://...: the shards are written in place and the manifest last. What the run's
    processes read from it (the shard list, a read task's rows, rows and labels by id, the image shape)
    matches the same pool prepared on a disk."""
    from actors.pool_source import _read_shard
    from pipeline.data.base import get_source, is_prepared, prepare_dataset, prepared_root
    from pipeline.data.pool import split_files
    from pipeline.data.rows import parquet_dataset, shape_from_schema
    from pipeline.storage import Storage
    from tests.helpers import write_fashion_like

    source = get_source("fashion_mnist", write_fashion_like(tmp_path / "idx", pool=300, test=50))
    cache = prefix.uri("cache")
    died = Storage(prepared_root(source, cache))  # a preparation that died before its manifest left a shard
    died.write_table(
        "pool/part-00000.parquet",
        arrow_table(np.array([0]), np.zeros((1, 1, 28, 28), np.uint8), np.array([0]), pool_schema((1, 28, 28))),
    )
    assert not is_prepared(source, cache)

    data = prepare_dataset(source, cache, shard_rows=128)
    local = prepare_dataset(source, tmp_path / "cache", shard_rows=128)
    assert is_prepared(source, cache) and data.sizes == local.sizes == {"pool": 300, "test": 50}
    assert (data.mean, data.std, data.image_shape) == (local.mean, local.std, local.image_shape)
    files = split_files(data.split_dir("pool"))
    assert [f.split("?")[0].rsplit("/", 1)[1] for f in files] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    read_back = pa.concat_tables([t for f in files for t in _read_shard(f, np.array([5, 130, 299]))])
    assert read_back.column("id").to_pylist() == [5, 130, 299]
    ids = np.array([299, 5, 5])
    for got, want in zip(
        read_rows(files, ids, data.image_shape), read_rows(local.split_dir("pool"), ids, local.image_shape)
    ):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(read_labels(data.split_dir("pool"), ids), read_labels(files, ids))
    assert shape_from_schema(parquet_dataset(data.split_dir("test")).schema) == (1, 28, 28)
    assert prepare_dataset(source, cache, shard_rows=128) == data  # the second run reuses it


def test_a_validation_split_is_held_out_in_the_bucket_as_on_a_disk(prefix, tmp_path):
    """The second pass (ids, then rows) and the removal of the whole pool's shards, through the object store."""
    from pipeline.config.run_config import DataConfig
    from pipeline.data.base import UNSPLIT, get_source, prepare_dataset
    from pipeline.storage import Storage
    from tests.helpers import write_fashion_like

    raw = write_fashion_like(tmp_path / "idx", pool=300, test=50)
    source = get_source("fashion_mnist", raw, DataConfig(data_dir=str(raw), validation=0.1))
    data = prepare_dataset(source, prefix.uri("cache"), shard_rows=128)
    local = prepare_dataset(source, tmp_path / "cache", shard_rows=128)
    assert data.sizes == local.sizes == {"pool": 270, "validation": 30, "test": 50}
    for split in ("pool", "validation"):
        remote = pa.concat_tables(
            [Storage(data.root).read_table(f"{split}/{n}") for n in Storage(data.root).names(split)]
        )
        assert sorted(remote.column("id").to_pylist()) == sorted(
            pq.read_table(local.split_dir(split)).column("id").to_pylist()
        )
    assert not Storage(data.root).is_dir(UNSPLIT)

"""Pool files of a growing pool: per-class shards, admitted arrival shards, schedule checks. No Ray."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.data import get_source, prepare_dataset
from pipeline.data.growth import create_growth
from pipeline.data.pool import admit_arrivals, class_shards, pool_ids, split_files
from pipeline.data.rows import arrow_table, pool_schema
from pipeline.errors import ConfigError, DataError
from tests.helpers import tiny_config


@pytest.fixture
def data(tiny_data_dir, work_dir):
    config = tiny_config(tiny_data_dir, work_dir)
    return prepare_dataset(get_source("fashion_mnist", tiny_data_dir), config.data.cache_dir, config.data.shard_rows)


def shard(path, ids, labels=None, shape=(1, 28, 28)):
    labels = np.zeros(len(ids), dtype=np.int64) if labels is None else labels
    images = np.zeros((len(ids), *shape), dtype=np.uint8)
    pq.write_table(arrow_table(np.asarray(ids, dtype=np.int64), images, labels, pool_schema(shape)), path)
    return str(path)


def test_class_shards_split_the_pool_by_label_once(data):
    shards = class_shards(data)
    assert sorted(shards) == list(range(10))
    for c, files in shards.items():
        labels = pq.read_table(files, columns=["label"]).column("label").to_numpy()
        assert len(labels) == 40 and (labels == c).all()  # the tiny pool: 400 rows, 40 per class
    assert np.array_equal(pool_ids([f for files in shards.values() for f in files]), np.arange(data.pool_size))
    assert class_shards(data) == shards  # the second call reads what the first wrote


def test_new_arrival_shards_are_admitted_in_name_order_and_only_once(data, tmp_path):
    known = pool_ids(split_files(data.split_dir("pool")))
    second = shard(tmp_path / "b.parquet", [1001, 1002])
    first = shard(tmp_path / "a.parquet", [1000])
    assert admit_arrivals(str(tmp_path), [], known, data) == [first, second]
    assert admit_arrivals(str(tmp_path), [first, second], known, data) == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: shard(d / "x.parquet", [5]), "reuses id 5, already in the pool"),
        (lambda d: shard(d / "x.parquet", [900, 900]), "repeats id 900"),
        (lambda d: shard(d / "x.parquet", []), "holds no rows"),
        (lambda d: shard(d / "x.parquet", [900], shape=(1, 14, 14)), "image shape 1,14,14"),
        (
            lambda d: pq.write_table(pa.table({"id": [900], "label": [1]}), d / "x.parquet"),
            "has schema \\(id: int64, label",
        ),
        (lambda d: (d / "x.parquet").write_bytes(b"not parquet"), "is not a readable Parquet file"),
        (lambda d: [shard(d / "x.parquet", [900]), shard(d / "y.parquet", [900])], "y.parquet reuses id 900"),
    ],
)
def test_bad_arrival_shards_are_refused_by_name(data, tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataError, match=message):
        admit_arrivals(str(tmp_path), [], pool_ids(split_files(data.split_dir("pool"))), data)


def test_class_incremental_schedules_must_fit_the_classes_available(tiny_data_dir, work_dir, data):
    ok = tiny_config(tiny_data_dir, work_dir, "pool.growth=class_incremental")  # 40, 70, 100 labels of 80, 160, 240
    create_growth(ok, data).check()
    tight = tiny_config(
        tiny_data_dir,
        work_dir,
        "pool.growth=class_incremental",
        "pool.class_order=[9,8,7,6,5,4,3,2,1,0]",
        "pool.initial_classes=1",
        "schedule.initial=50",
    )
    with pytest.raises(
        ConfigError, match=r"by round 0 the schedule asks for 50 labels, but only 40 examples \(classes 9\)"
    ):
        create_growth(tight, data).check()
    unknown = tiny_config(tiny_data_dir, work_dir, "pool.growth=class_incremental", "pool.class_order=[0,1,2]")
    with pytest.raises(ConfigError, match="pool.class_order leaves out class 3"):
        create_growth(unknown, data).check()

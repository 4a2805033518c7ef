"""Pools that grow between rounds, through the coordinator actor, Ray Data and Ray Train."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray

from actors.coordinator import Coordinator
from actors.driver import run_rounds
from pipeline.data import get_source, prepare_dataset
from pipeline.data.growth import classes_at
from pipeline.data.rows import arrow_table, pool_schema
from pipeline.errors import DataError
from pipeline.loop.preflight import plan_run
from pipeline.loop.run_store import RunStore
from tests.helpers import tiny_config

pytestmark = pytest.mark.ray
ORDER = (9, 8, 7, 6, 5, 4, 3, 2, 1, 0)


def prepared(config):
    return prepare_dataset(
        get_source("fashion_mnist", config.data.data_dir), config.data.cache_dir, config.data.shard_rows
    )


def test_class_incremental_rounds_score_and_label_only_the_classes_that_arrived(ray_cluster, tiny_data_dir, work_dir):
    """With finetune and random acquisition: the warm update trains on the new labels alone."""
    config = tiny_config(
        tiny_data_dir,
        work_dir,
        "pool.growth=class_incremental",
        "strategy=finetune",
        "acquisition=random",
        f"pool.class_order={list(ORDER)}",
        "train_target_at_end=false",
    )
    records = run_rounds(plan_run(config, prepared(config)), no_progress_timeout_s=120)["records"]
    assert [r["warm_start"] for r in records] == [False, True, True]
    assert [r["train_examples"] for r in records[1:]] == [30, 30]  # the round's 30 new labels, no replay

    store = RunStore(config.run_dir)
    labelled_before = 0
    for record in records:
        r = record["round"]
        arrived = classes_at(ORDER, 2, 2, r)
        labels = pq.read_table(f"{store.location}/rounds/{r:04d}/labels.parquet").column("label").to_numpy()
        assert set(labels) <= set(arrived)
        # the tiny pool holds 40 examples a class; a scoring pass sees the arrived, unlabelled ones
        assert record["candidates"] == 40 * len(arrived) - labelled_before
        assert record["classes"] == list(arrived) and 0 <= record["acc_seen"] <= 1 and record["forgetting"] >= 0
        labelled_before = record["labelled"]
    assert records[0]["forgetting"] == 0.0 and len(records[-1]["per_class_acc"]) == 10


def arrival_shard(path, ids, data):
    images = np.zeros((len(ids), *data.image_shape), dtype=np.uint8)
    table = arrow_table(
        np.asarray(ids, dtype=np.int64), images, np.arange(len(ids)) % 10, pool_schema(data.image_shape)
    )
    pq.write_table(table, path)
    return str(path)


def test_an_arrival_shard_joins_the_pool_before_the_next_round_and_a_bad_one_stops_it(
    ray_cluster, tiny_data_dir, work_dir
):
    """With svp and margin acquisition, on a data-parallel worker group of two (on CPUs: 2 x 0.5 GPU
    and a scorer would exceed the session's one logical GPU)."""
    arrivals = work_dir / "arrivals"
    arrivals.mkdir()
    config = tiny_config(
        tiny_data_dir,
        work_dir,
        "pool.growth=arrivals",
        f"pool.arrivals_dir={arrivals}",
        "train_target_at_end=false",
        "schedule.round_ends=[70]",
        "strategy=svp",
        "acquisition=margin",
        "learner.workers=2",
        "learner.cpus_per_worker=0.25",
        "learner.use_gpu=false",
    )
    data = prepared(config)
    store = RunStore.create(config.run_dir, config)
    coordinator = Coordinator.remote(plan_run(config, data), 120)
    try:
        first = ray.get(coordinator.run_round.remote(0))
        assert first["candidates"] == 400 and first["resources"]["learner_device"] == "cpu"

        arrival_shard(arrivals / "bad.parquet", [5], data)  # id 5 is already in the pool
        with pytest.raises(ray.exceptions.RayTaskError) as failure:
            ray.get(coordinator.run_round.remote(1))
        assert isinstance(failure.value.cause, DataError) and "bad.parquet reuses id 5" in str(failure.value.cause)
        assert store.committed_rounds() == [0]

        (arrivals / "bad.parquet").unlink()
        good = arrival_shard(arrivals / "day-2.parquet", np.arange(10_000, 10_050), data)
        record = ray.get(coordinator.run_round.remote(1))
        assert record["admitted"] == [good] and record["candidates"] == 400 + 50 - 40
        assert record["selection_model"] == "proxy" and record["warm_start"] is False  # svp: from scratch
        ids, _ = store.load_labels()
        assert len(ids) == 70 and len(set(ids.tolist())) == 70
        ray.get(coordinator.close.remote())
    finally:
        ray.kill(coordinator)

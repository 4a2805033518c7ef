"""The image sources end to end: rounds on generated CIFAR-layout data, ImageFolder decoding on Ray Data."""
from dataclasses import asdict

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.cli import run_rounds
from pipeline.config import DataConfig
from pipeline.data import get_source, prepare_data, prepare_dataset
from pipeline.data.image_folder import decode_batch
from pipeline.run_store import RunStore
from tests.helpers import tiny_config, tiny_overrides, write_cifar10_like, write_image_folder
from tests.integration.test_cli import clactive, with_sets

pytestmark = pytest.mark.ray


def test_clactive_runs_two_rounds_on_cifar10_layout_data(ray_cluster, tmp_path):
    raw = write_cifar10_like(tmp_path / "raw", per_batch=40, test=60)
    config = tiny_config(raw, tmp_path, "data.dataset=cifar10", "proxy.name=preact_resnet20")
    data = prepare_data(config.data)
    assert data.sizes == {"pool": 200, "test": 60} and data.image_shape == (3, 32, 32)
    result = run_rounds(config, asdict(data), no_progress_timeout_s=180)
    records = RunStore(config.run_dir).records()
    assert records == result["records"]
    assert [r["labelled"] for r in records] == [40, 70, 100]          # the initial set, then two rounds
    assert [r["warm_start"] for r in records] == [False, True, True]
    assert [r["steps"] for r in records[1:]] == [config.update.steps] * 2
    assert all(0.0 <= r["selection_acc"] <= 1.0 for r in records)
    ids = np.concatenate([pq.read_table(f"{config.run_dir}/rounds/{r:04d}/labels.parquet").column("id").to_numpy()
                          for r in range(3)])
    assert len(set(ids.tolist())) == 100 and set(ids.tolist()) <= set(range(200))
    assert 0.0 <= result["final"]["target_acc"] <= 1.0


def test_run_dataset_flag_reads_the_cifar_layout(ray_cluster, tmp_path):
    raw = write_cifar10_like(tmp_path / "raw", per_batch=40, test=60)
    sets = [s for s in tiny_overrides(raw, tmp_path) if not s.startswith("data.data_dir=")]
    done = clactive("--dataset", "cifar10", "--data-dir", str(raw), *with_sets(sets), env={"RAY_ADDRESS": ray_cluster})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on cifar10 (200 pool, 60 test)" in done.stdout


def test_image_folder_decodes_on_ray_data_as_it_does_in_process(ray_cluster, tmp_path):
    raw = write_image_folder(tmp_path / "raw", per_class=5, val_per_class=2, size=(30, 20))
    (raw / "train" / "dog" / "dog_002.JPEG").write_bytes(b"\xff\xd8\xff not a jpeg")
    options = DataConfig(dataset="imagefolder", data_dir=str(raw), image_size=16, skip_corrupt=True)
    source = get_source("imagefolder", raw, options)
    prepared = prepare_dataset(source, tmp_path / "cache", shard_rows=4)  # Ray is running: Ray Data decodes
    paths, labels = source.listing("pool")
    direct = decode_batch({"path": np.array([str(raw / p) for p in paths], dtype=object)}, size=16)
    table = pq.read_table(prepared.split_dir("pool"))
    ids = table.column("id").to_numpy()
    assert ids.tolist() == sorted(ids.tolist()) == [i for i in range(15) if i != 7]  # dog_002 skipped
    images = table.column("image").combine_chunks().flatten().to_numpy().reshape(len(ids), 3, 16, 16)
    np.testing.assert_array_equal(images, direct["image"][ids])
    np.testing.assert_array_equal(table.column("label").to_numpy(), labels[ids])

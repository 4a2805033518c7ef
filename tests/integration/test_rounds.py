"""Whole runs through the coordinator actor, the scorers and the Ray Train learner, in-process (the
command-line run and what it leaves in its run directory: tests/integration/test_cli.py)."""
from dataclasses import asdict

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.cli import run_rounds
from pipeline.data import get_source, prepare_dataset
from pipeline.errors import ConfigError
from pipeline.run_store import RunStore
from tests.helpers import tiny_config

pytestmark = pytest.mark.ray


def run_tiny(data_dir, work_dir, *extra):
    config = tiny_config(data_dir, work_dir, *extra)
    data = prepare_dataset(get_source("fashion_mnist", data_dir), config.data.cache_dir, config.data.shard_rows)
    result = run_rounds(config, asdict(data), no_progress_timeout_s=120)
    return config, data, result, RunStore(config.run_dir)


def test_reservations_that_starve_ray_data_are_refused_before_any_round(ray_cluster, tiny_data_dir, work_dir):
    with pytest.raises(ConfigError, match="reserve 1.5 of the cluster's 2 CPUs.*lower learner.cpus_per_worker"):
        run_tiny(tiny_data_dir, work_dir, "learner.workers=2")
    assert not (work_dir / "run").exists()  # refused before the run directory was created


def label_rounds(store):
    return [pq.read_table(f"{store.location}/rounds/{r:04d}/labels.parquet") for r in store.committed_rounds()]


# Every strategy and acquisition kind completes a run somewhere in this suite, each where it costs no
# run of its own: clactive / least_confidence in most tests, full / k_center on CIFAR-layout data
# (test_datasets.py), finetune / random on a class-incremental pool (test_growth.py), svp / margin here.
def test_svp_with_margin_on_a_data_parallel_worker_group_of_two_completes(ray_cluster, tiny_data_dir, work_dir):
    # on CPUs: 2 x 0.5 GPU + a scorer would exceed the one logical GPU
    _, _, result, store = run_tiny(tiny_data_dir, work_dir, "strategy=svp", "acquisition=margin",
                                   "learner.workers=2", "learner.cpus_per_worker=0.25", "learner.use_gpu=false",
                                   "schedule.round_ends=[70]", "train_target_at_end=false")
    records = store.records()
    ids = np.concatenate([t.column("id").to_numpy() for t in label_rounds(store)])
    assert [r["labelled"] for r in records] == [40, 70] and len(set(ids.tolist())) == 70
    assert records[1]["selection_model"] == "proxy" and records[1]["warm_start"] is False
    assert result["final"] is None and not (work_dir / "run" / "targets").exists()

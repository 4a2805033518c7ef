"""What `run_rounds` refuses before any round.

Every strategy and acquisition kind completes a run somewhere in this suite, each where it costs no
run of its own: clactive / least_confidence in most tests, full / k_center on CIFAR-layout data
(test_datasets.py), finetune / random on a class-incremental pool and svp / margin on a data-parallel
worker group of two with arriving shards (test_growth.py)."""

import pytest

from actors.driver import run_rounds
from pipeline.data import get_source, prepare_dataset
from pipeline.errors import ConfigError
from pipeline.loop.preflight import plan_run
from pipeline.loop.run_store import RunStore
from tests.helpers import tiny_config

pytestmark = pytest.mark.ray


def run_tiny(data_dir, work_dir, *extra):
    config = tiny_config(data_dir, work_dir, *extra)
    data = prepare_dataset(get_source("fashion_mnist", data_dir), config.data.cache_dir, config.data.shard_rows)
    result = run_rounds(plan_run(config, data), no_progress_timeout_s=120)
    return config, data, result, RunStore(config.run_dir)


def test_reservations_that_starve_ray_data_are_refused_before_any_round(ray_cluster, tiny_data_dir, work_dir):
    """Per node, not summed: 0.5 of the cluster's 2 CPUs stays free, but as 0.25 on each of its two
    nodes, so a read task (0.5 CPU) would fit nowhere."""
    match = (
        r"reserve 1.5 of the cluster's 2 CPUs, leaving no node with the 0.5 CPU a read task of the pool needs "
        r"\(nodes: 1 CPU/1 GPU, 1 CPU/0 GPU\): lower learner.cpus_per_worker or scoring.cpus_per_actor"
    )
    with pytest.raises(ConfigError, match=match):
        run_tiny(
            tiny_data_dir,
            work_dir,
            "learner.cpus_per_worker=0.75",
            "scoring.cpus_per_actor=0.75",
            "learner.use_gpu=false",
            "scoring.gpus_per_actor=0",
        )
    assert not (work_dir / "run").exists()  # refused before the run directory was created

"""What `run_rounds` refuses before any round.

Every strategy and acquisition kind completes a run somewhere in this suite, each where it costs no
run of its own: clactive / least_confidence in most tests, full / k_center on CIFAR-layout data
(test_datasets.py), finetune / random on a class-incremental pool and svp / margin on a data-parallel
worker group of two with arriving shards (test_growth.py)."""
import pytest

from actors.driver import run_rounds
from pipeline.data import get_source, prepare_dataset
from pipeline.errors import ConfigError
from pipeline.preflight import plan_run
from pipeline.run_store import RunStore
from tests.helpers import tiny_config

pytestmark = pytest.mark.ray


def run_tiny(data_dir, work_dir, *extra):
    config = tiny_config(data_dir, work_dir, *extra)
    data = prepare_dataset(get_source("fashion_mnist", data_dir), config.data.cache_dir, config.data.shard_rows)
    result = run_rounds(plan_run(config, data), no_progress_timeout_s=120)
    return config, data, result, RunStore(config.run_dir)


def test_reservations_that_starve_ray_data_are_refused_before_any_round(ray_cluster, tiny_data_dir, work_dir):
    with pytest.raises(ConfigError, match="reserve 1.5 of the cluster's 2 CPUs.*lower learner.cpus_per_worker"):
        run_tiny(tiny_data_dir, work_dir, "learner.workers=2")
    assert not (work_dir / "run").exists()  # refused before the run directory was created

"""Data-parallel training averages gradients: two Ray Train workers, each on its half of every global
batch, end where one worker on the whole batch ends (the round loop's own train loop, in this
process). fastText has no batch norm and no dropout, so nothing but the averaging could make them
differ; two workers that trained on their halves alone (no DDP) end elsewhere (tried: parameters
then differ by more than 1e-2)."""

import numpy as np
import pytest
import ray
import torch

from actors.coordinator import Coordinator
from benchmarks.plain_loop import PlainLearner, PlainScorers
from pipeline.config.run_config import load_config
from pipeline.data import prepare_data
from pipeline.labels.labelling import make_oracle
from pipeline.loop.preflight import plan_run
from pipeline.loop.rounds import Rounds
from pipeline.loop.run_store import RunStore
from pipeline.update.models import create_model
from pipeline.update.training import load_weights
from tests.helpers import tiny_overrides
from tests.unit.test_text_sources import GENRES, write_text_csv

pytestmark = pytest.mark.ray


def round_zero_weights(raw, work_dir, workers: int) -> dict[str, torch.Tensor]:
    """Round 0's trained weights: through the coordinator and a Ray Train group of `workers`, or (0)
    through the same round loop and train loop in this process (benchmarks/plain_loop.py), one worker."""
    sets = [s for s in tiny_overrides(raw, work_dir) if not s.startswith("target.name=")] + [
        "data.dataset=text_csv",
        "data.max_tokens=16",
        "proxy.name=fasttext",
        "proxy.epochs=15",
        "proxy.batch_size=16",  # 40 labels: three full batches an epoch (full_batches), 8 rows a worker
        "target.name=text_cnn",
        "schedule.round_ends=[70]",
        "train_target_at_end=false",
        f"learner.workers={max(workers, 1)}",
        "learner.cpus_per_worker=0.25",
        "learner.use_gpu=false",
    ]
    config = load_config(None, sets)
    plan = plan_run(config, prepare_data(config.data))
    store = RunStore.create(config.run_dir, config)
    if workers == 0:
        learner = PlainLearner(config, plan.data)
        rounds = Rounds(plan, store, PlainScorers(config, plan.data), learner, make_oracle(plan, store))
        record = rounds.run_round(0)
    else:
        coordinator = Coordinator.remote(plan, 120)
        try:
            record = ray.get(coordinator.run_round.remote(0))
            ray.get(coordinator.close.remote())
        finally:
            ray.kill(coordinator)
    assert record["steps"] == 15 * 3  # ceil(40 / 16) = 3 batches an epoch, whatever the worker count
    model = create_model("fasttext", 1, plan.data.num_classes)
    return load_weights(model, store.load_round_state(0)["checkpoint"]).state_dict()


def test_two_workers_on_halves_of_each_batch_end_where_one_worker_on_the_whole_batch_ends(ray_cluster, tmp_path):
    raw = write_text_csv(tmp_path / "raw", pool=240, test=80)
    one = round_zero_weights(raw, tmp_path / "one", workers=0)
    two = round_zero_weights(raw, tmp_path / "two", workers=2)
    assert one.keys() == two.keys()
    torch.manual_seed(0)  # round 0's job seed: the initial weights both started from
    start = create_model("fasttext", 1, len(GENRES)).state_dict()
    moved = max(float((one[k] - start[k]).abs().max()) for k in one)
    assert moved > 0.1  # training moved the weights far beyond the tolerance below
    for key in one:
        np.testing.assert_allclose(two[key].numpy(), one[key].numpy(), atol=1e-5, err_msg=key)

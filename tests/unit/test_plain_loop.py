"""The plain-loop benchmark's rounds (benchmarks/plain_loop.py): the round loop with no Ray, on tiny data."""

from dataclasses import replace

from benchmarks.plain_loop import costs, plain_config, plain_run
from pipeline.data import get_source, prepare_dataset
from tests.helpers import tiny_config, write_fashion_like


def test_the_compare_configs_clactive_entry_is_what_the_plain_loop_runs():
    config = plain_config("configs/fashion_mnist_compare.yaml", "runs/x")
    assert (config.strategy, config.acquisition, config.train_target_at_end) == ("clactive", "least_confidence", False)
    assert (config.update.steps, config.proxy.epochs, config.run_dir) == (200, 20, "runs/x")


def test_the_plain_loop_runs_the_round_loops_own_schedule_memory_and_constant_steps(tmp_path):
    config = replace(
        tiny_config(write_fashion_like(tmp_path / "raw"), tmp_path), strategy="clactive", train_target_at_end=False
    )
    data = prepare_dataset(
        get_source("fashion_mnist", config.data.data_dir), config.data.cache_dir, config.data.shard_rows
    )
    records = plain_run(config, data)
    assert [r["labelled"] for r in records] == [40, 70, 100]
    assert [r["candidates"] for r in records[1:]] == [400 - 40, 400 - 70]  # every unlabelled example scored
    assert [(r["warm_start"], r["steps"]) for r in records[1:]] == [(True, 7), (True, 7)]  # the constant-step update
    assert not records[0]["warm_start"] and records[0]["steps"] == 3 * 2  # round 0: proxy.epochs of 40 labels, batch 32
    summed = costs(records)
    assert summed["selection_s"] == summed["score_s"] + summed["select_s"] + summed["update_s"] > 0
    assert summed["score_compute_s"] == summed["score_s"] and summed["round_0_update_s"] < summed["update_s"]
    assert 0.0 <= summed["proxy_acc"] <= 1.0

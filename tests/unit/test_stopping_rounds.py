"""Stopping criteria inside the round loop (pipeline.loop.rounds with stand-ins, no Ray): the record that
says why, a finished run that refuses more rounds, and a resumed run that knows it stopped.
The criteria themselves on hand-made records: tests/unit/test_stopping.py."""

from dataclasses import replace

import numpy as np
import pytest

from pipeline.data import get_source, prepare_dataset
from pipeline.data.pool import pool_ids, split_files
from pipeline.labels.labelling import make_oracle
from pipeline.loop.preflight import plan_run
from pipeline.loop.rounds import Rounds
from pipeline.loop.run_store import RunStore
from tests.helpers import tiny_config, write_fashion_like
from tests.unit.test_oracle_rounds import Learner, Scorers

FOUR_ROUNDS = "schedule.round_ends=[70,100,130]"


class ScriptedLearner(Learner):
    """The stand-in learner with a validation accuracy and stop-set predictions given per update."""

    def __init__(self, accuracies: list[float], predictions: list[np.ndarray]):
        super().__init__([])
        self.accuracies, self.predictions = list(accuracies), list(predictions)

    def update(self, plan, labels, rows_from, seed, resume_from, round_index):
        result = super().update(plan, labels, rows_from, seed, resume_from, round_index)
        return replace(result, val_acc=self.accuracies.pop(0), stop_predictions=self.predictions.pop(0))


@pytest.fixture
def tiny(tmp_path):
    data_dir = write_fashion_like(tmp_path / "raw")
    config = tiny_config(data_dir, tmp_path, "data.validation=20")
    return data_dir, prepare_dataset(
        get_source("fashion_mnist", data_dir, config.data), config.data.cache_dir, config.data.shard_rows
    )


def start(config, data, learner) -> Rounds:
    store = (
        RunStore(config.run_dir) if RunStore(config.run_dir).holds_run() else RunStore.create(config.run_dir, config)
    )
    plan = plan_run(config, data)
    pool = pool_ids(split_files(data.split_dir("pool")))  # not 0..n-1: the validation split was held out of it
    return Rounds(plan, store, Scorers(pool), learner, make_oracle(plan, store))


def test_a_plateau_stops_the_run_its_record_says_why_and_a_resumed_run_is_finished(tiny, tmp_path):
    data_dir, data = tiny
    config = tiny_config(
        data_dir,
        tmp_path,
        FOUR_ROUNDS,
        "data.validation=20",
        "stopping=[{criterion: accuracy_plateau, rounds: 1, epsilon: 0.01}]",
    )
    same = np.arange(20) % 10
    flipped = same.copy()
    flipped[:10] = (flipped[:10] + 1) % 10  # half the stop set changes its prediction
    learner = ScriptedLearner([0.5, 0.7, 0.705, 0.9], [same, same, flipped, same])
    rounds = start(config, data, learner)
    records = [rounds.run_round(r) for r in range(3)]
    assert [("stopped" in r) for r in records] == [False, False, True]
    assert records[2]["stopped"]["criterion"] == "accuracy_plateau" and "0.7050" in records[2]["stopped"]["reason"]
    # kappa of successive models on the stop set: identical, then half of it changed (po 0.5, pe 0.1)
    assert "stop_set_kappa" not in records[0] and records[1]["stop_set_kappa"] == 1.0
    assert records[2]["stop_set_kappa"] == pytest.approx((0.5 - 0.1) / (1 - 0.1))
    with pytest.raises(IndexError, match="stopped after round 2"):
        rounds.run_round(3)
    resumed = start(config, data, ScriptedLearner([], []))
    assert resumed.stopped and resumed.round == 3
    with pytest.raises(IndexError, match="stopped after round 2"):
        resumed.run_round(3)


def test_a_run_whose_criteria_never_hold_runs_to_its_budget_and_the_last_round_is_not_marked(tiny, tmp_path):
    data_dir, data = tiny
    config = tiny_config(data_dir, tmp_path, "stopping=[{criterion: uncertainty, threshold: 0.0}]")
    rounds = start(config, data, ScriptedLearner([0.5, 0.6, 0.6], [np.zeros(20, dtype=np.int64)] * 3))
    records = [rounds.run_round(r) for r in range(3)]
    assert not any("stopped" in r for r in records)
    assert all(0 < r["selection_score_mean"] < 1 for r in records[1:])  # the scored rounds carry their batch's mean


def test_the_uncertainty_criterion_stops_on_the_chosen_batchs_mean_score(tiny, tmp_path):
    data_dir, data = tiny
    config = tiny_config(data_dir, tmp_path, "stopping=[{criterion: uncertainty, threshold: 1.0}]")
    rounds = start(config, data, ScriptedLearner([0.5, 0.6, 0.6], [np.zeros(20, dtype=np.int64)] * 3))
    records = [rounds.run_round(r) for r in range(2)]
    assert "stopped" not in records[0]  # round 0 is random: no score to judge
    assert records[1]["stopped"]["criterion"] == "uncertainty"

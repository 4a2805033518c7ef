"""Warm start, CLActive's core, held through a crash: a three-round run whose round 1 dies inside its
update and is resumed from its run directory ends with the unbroken run's round-2 selection and
final weights, bit for bit on CPU. And the comparison has teeth: each way of losing the warm state
(an update that starts from fresh weights, from a fresh optimizer, or with an empty replay memory)
makes the resumed run end elsewhere.

The round loop runs in this process with real torch training and scoring (benchmarks/plain_loop.py's
learner and scorers, which checkpoint and restore through pipeline.update.training as the Ray
learner does); the crash drops every live model, as a killed process would."""

import io
from dataclasses import replace

import numpy as np
import pytest
import torch

import benchmarks.plain_loop as plain_loop
from benchmarks.plain_loop import PlainLearner, PlainScorers
from pipeline.data import get_source, prepare_dataset
from pipeline.labels.labelling import make_oracle
from pipeline.loop.preflight import plan_run
from pipeline.loop.rounds import Rounds
from pipeline.loop.run_store import RunStore
from pipeline.update.memory import ReplayMemory
from tests.helpers import tiny_config, write_fashion_like


class Crash(Exception):
    """The process dies inside an update."""


class CrashingLearner(PlainLearner):
    def __init__(self, config, data, crash_round: int | None):
        super().__init__(config, data)
        self.crash_round = crash_round

    def update(self, plan, labels, rows_from, seed, resume_from, round_index):
        if round_index == self.crash_round:
            raise Crash
        return super().update(plan, labels, rows_from, seed, resume_from, round_index)


def start(config, data, crash_round: int | None = None) -> Rounds:
    store = (
        RunStore(config.run_dir) if RunStore(config.run_dir).holds_run() else RunStore.create(config.run_dir, config)
    )
    plan = plan_run(config, data)
    learner = CrashingLearner(config, data, crash_round)
    return Rounds(plan, store, PlainScorers(config, data), learner, make_oracle(plan, store))


def run(config, data, crash_round: int | None = None) -> tuple[list[int], dict[str, torch.Tensor]]:
    """(round 2's selected ids, the final weights) of a run that crashes inside `crash_round`'s update
    (None: never) and is then resumed by a new Rounds on its run directory, with no live model."""
    rounds = start(config, data, crash_round)
    try:
        for r in range(rounds.plan.num_rounds):
            rounds.run_round(r)
        assert crash_round is None, f"round {crash_round} never crashed"
    except Crash:
        rounds = start(config, data)
        assert rounds.round == crash_round  # the crashed round left nothing committed
        for r in range(rounds.round, rounds.plan.num_rounds):
            rounds.run_round(r)
    store = RunStore(config.run_dir)
    ids, _ = store.load_labels()
    round_2 = ids[store.records()[1]["labelled"] :].tolist()
    checkpoint = torch.load(io.BytesIO(store.load_round_state(2)["checkpoint"]), weights_only=True)
    return round_2, checkpoint["model"]


@pytest.fixture(scope="module")
def three_rounds(tmp_path_factory):
    work = tmp_path_factory.mktemp("warm")
    data_dir = write_fashion_like(work / "raw")
    config = tiny_config(data_dir, work, "strategy=clactive", "memory.ratio=1.0")
    data = prepare_dataset(get_source("fashion_mnist", data_dir), config.data.cache_dir, config.data.shard_rows)
    unbroken = run(replace(config, run_dir=str(work / "unbroken")), data)
    return config, data, work, unbroken


def resumed(three_rounds, name: str) -> tuple[list[int], dict[str, torch.Tensor]]:
    config, data, work, _ = three_rounds
    return run(replace(config, run_dir=str(work / name)), data, crash_round=1)


def same(a: tuple[list[int], dict], b: tuple[list[int], dict]) -> bool:
    return a[0] == b[0] and a[1].keys() == b[1].keys() and all(torch.equal(a[1][k], b[1][k]) for k in a[1])


def test_a_run_killed_inside_round_1s_update_ends_with_the_unbroken_runs_selection_and_weights(three_rounds):
    assert same(resumed(three_rounds, "resumed"), three_rounds[3])


def _fresh_weights(monkeypatch):
    monkeypatch.setattr(plain_loop, "load_weights", lambda model, checkpoint: model)


def _fresh_optimizer(monkeypatch):
    monkeypatch.setattr(plain_loop, "load_optimizer", lambda optimizer, checkpoint: optimizer)


def _empty_memory(monkeypatch):
    monkeypatch.setattr(ReplayMemory, "load_state_dict", lambda memory, state: None)


@pytest.mark.parametrize("lose", [_fresh_weights, _fresh_optimizer, _empty_memory], ids=lambda f: f.__name__[1:])
def test_losing_any_part_of_the_warm_state_makes_the_resumed_run_end_elsewhere(three_rounds, monkeypatch, lose):
    lose(monkeypatch)
    assert not same(resumed(three_rounds, f"lost{lose.__name__}"), three_rounds[3])


def test_the_memory_holds_round_0s_labels_when_round_1_updates(three_rounds):
    """What `empty_memory` takes away is there to take: round 1 trains on more than its new labels."""
    config, _, work, _ = three_rounds
    records = RunStore(work / "unbroken").records()
    assert records[1]["train_examples"] > records[1]["acquired"]
    assert np.isfinite(records[2]["selection_acc"])

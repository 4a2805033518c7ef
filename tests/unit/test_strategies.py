import numpy as np
import pytest

from pipeline.config.run_config import load_config
from pipeline.errors import ConfigError
from pipeline.loop.preflight import check_names
from pipeline.update.strategies import STRATEGIES, create_strategy, steps_for_epochs

ROUND = 50


def run_schedule(strategy_name: str, rounds: int = 4, **sets):
    """Drive a strategy through an initial set of 100 and `rounds` rounds of ROUND labels each."""
    overrides = [
        f"strategy={strategy_name}",
        "proxy.epochs=3",
        "proxy.batch_size=10",
        "target.epochs=2",
        "target.batch_size=20",
        "update.steps=17",
    ] + [f"{k}={v}" for k, v in sets.items()]
    config = load_config(None, overrides)
    strategy = create_strategy(config, max_round_size=ROUND)
    rng = np.random.default_rng(0)
    labelled = np.empty(0, dtype=np.int64)
    plans = []
    for r in range(rounds + 1):
        new = np.arange(len(labelled), len(labelled) + (100 if r == 0 else ROUND))
        labelled = np.concatenate([labelled, new])
        plans.append((new, labelled.copy(), strategy.plan(r, new, new % 10, labelled, rng)))
    return plans


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_round_zero_trains_the_selection_model_from_scratch_on_the_initial_set(name):
    _, labelled, plan = run_schedule(name, rounds=0)[0]
    role = create_strategy(load_config(None, [f"strategy={name}"]), max_round_size=ROUND).selection_role
    assert plan.role == role and not plan.warm_start
    np.testing.assert_array_equal(plan.train_ids, labelled)
    assert plan.steps == steps_for_epochs(100, 2 if role == "target" else 3, 20 if role == "target" else 10)


def test_clactive_update_runs_same_steps_every_round():
    plans = run_schedule("clactive", rounds=6)[1:]
    assert {plan.steps for _, _, plan in plans} == {17}
    assert all(plan.warm_start and plan.role == "proxy" for _, _, plan in plans)


def test_clactive_trains_on_new_labels_plus_replay_of_earlier_ones():
    for new, labelled, plan in run_schedule("clactive", rounds=4)[1:]:
        assert len(plan.train_ids) == 2 * ROUND  # memory.ratio 1: replay as large as the round
        np.testing.assert_array_equal(plan.train_ids[:ROUND], new)
        replay = plan.train_ids[ROUND:]
        assert len(set(replay.tolist())) == ROUND
        assert set(replay.tolist()) <= set(labelled[: len(labelled) - ROUND].tolist())  # earlier labels only


def test_clactive_fixed_memory_count_overrides_the_ratio():
    for _, _, plan in run_schedule("clactive", **{"memory.count": 30})[1:]:
        assert len(plan.train_ids) == ROUND + 30


def test_clactive_with_zero_memory_is_finetune():
    clactive = run_schedule("clactive", **{"memory.ratio": 0.0})
    finetune = run_schedule("finetune")
    for (_, _, a), (_, _, b) in zip(clactive[1:], finetune[1:]):
        np.testing.assert_array_equal(a.train_ids, b.train_ids)


def test_finetune_trains_on_new_labels_only():
    for new, _, plan in run_schedule("finetune")[1:]:
        np.testing.assert_array_equal(plan.train_ids, new)
        assert plan.warm_start and plan.steps == 17


@pytest.mark.parametrize("name, role, epochs, batch", [("full", "target", 2, 20), ("svp", "proxy", 3, 10)])
def test_baselines_retrain_from_scratch_on_all_labels_so_their_cost_grows(name, role, epochs, batch):
    plans = run_schedule(name)
    for _, labelled, plan in plans:
        assert plan.role == role and not plan.warm_start
        np.testing.assert_array_equal(plan.train_ids, labelled)
        assert plan.steps == epochs * -(-len(labelled) // batch)
    assert plans[-1][2].steps > plans[1][2].steps


def test_unknown_strategy_lists_the_valid_ones():
    assert {"clactive", "finetune", "full", "svp"} <= set(STRATEGIES.names())
    with pytest.raises(
        ConfigError, match=f"unknown strategy 'coreset': choose one of {', '.join(STRATEGIES.names())}$"
    ):
        check_names(load_config(None, ["strategy=coreset"]))

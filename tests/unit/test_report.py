"""The compare report's definitions, on hand-made records."""

import pytest

from pipeline.compare import CompareConfig, budget_rounds, entry_config, load
from pipeline.config.run_config import RunConfig
from pipeline.data import PreparedData
from pipeline.errors import ConfigError
from pipeline.loop.preflight import RunPlan
from pipeline.report.summary import round_costs, summarize, table


def record(r, labelled, score, update, eval_s=1.0, launch=None, model="proxy", warm=True, acc=0.5):
    seconds = {"score": score, "select": 0.5, "update": update, "eval": eval_s}
    if launch is not None:
        seconds["learner_launch"] = launch
    return {
        "round": r,
        "labelled": labelled,
        "seconds": seconds,
        "selection_model": model,
        "warm_start": warm,
        "selection_acc": acc,
    }


def test_update_time_leaves_out_evaluation_and_learner_start_up():
    costs = round_costs(record(0, 10, score=0.0, update=20.0, eval_s=2.0, launch=8.0))
    assert costs == {"score_s": 0.0, "select_s": 0.5, "update_s": 10.0, "selection_s": 10.5}


def test_cumulative_figures_speedups_and_full_reusing_its_own_round_model():
    entries = {
        "full": {
            "records": [
                record(0, 10, 0, 11, model="target", warm=False, acc=0.70),
                record(1, 20, 4, 21, model="target", warm=False, acc=0.80),
            ],
            "targets": {},
        },
        "svp": {
            "records": [record(0, 10, 0, 5, warm=False), record(1, 20, 2, 9, warm=False)],
            "targets": {1: {"target_acc": 0.78}},
        },
        "clactive": {
            "records": [record(0, 10, 0, 5, warm=False), record(1, 20, 2, 3)],
            "targets": {1: {"target_acc": 0.79}},
        },
    }
    summary = summarize(entries, {"20%": 1}, pool_size=100)
    full, svp, ours = (summary["strategies"][n]["at"]["20%"] for n in ("full", "svp", "clactive"))
    assert full["selection_s"] == 0.5 + 10 + 4 + 0.5 + 20 and full["target_acc"] == 0.80
    assert full["fit"] == "the strategy's own round-k model" and ours["fit"] == "separate"
    assert ours["selection_s"] == 0.5 + 4 + 2 + 0.5 + 2 and ours["update_s"] == 4 + 2
    assert svp["update_s"] == 4 + 8 and ours["fraction"] == 0.2
    figures = summary["speedups"]["20%"]
    assert figures["selection_vs_full"] == full["selection_s"] / ours["selection_s"]
    assert figures["update_vs_svp"] == svp["update_s"] / ours["update_s"] == 2.0
    assert figures["clactive_scoring_share"] == 2 / ours["selection_s"]
    assert figures["target_acc_minus_full"] == pytest.approx(-0.01)
    assert "| clactive | 20% | 20 | 0.7900 |" in table(summary)


def test_budgets_must_end_a_round():
    data = PreparedData(
        root="unused",
        dataset="fashion_mnist",
        num_classes=10,
        image_shape=(1, 28, 28),
        mean=0.5,
        std=0.5,
        sizes={"pool": 100, "test": 10},
    )
    plan = RunPlan(RunConfig(), data, initial_size=10, round_sizes=(10, 20))  # rounds end at 10, 20, 40
    assert budget_rounds(CompareConfig(budgets=(20, 0.4)), plan) == {"20 labels": 1, "40%": 2}
    with pytest.raises(ConfigError, match="compare.budgets 30 is 30 labels, which no round ends at"):
        budget_rounds(CompareConfig(budgets=(30,)), plan)


@pytest.mark.parametrize(
    "sets, message",
    [
        (["compare.strategies=[svp, coreset]"], "unknown compare.strategies entry 'coreset'"),
        (["compare.strategies=[svp, svp]"], "names a strategy twice"),
        (["compare.budgets=[1.5]"], "compare.budgets[0] = 1.5: a fraction must lie in"),
        (["compare.folder=x"], "unknown config key 'compare.folder'"),
        (["compare.variants={svp: {update.steps: 3}}"], "compare.variants.svp would hide the entry of that name"),
    ],
)
def test_bad_compare_sections_are_refused(sets, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(None, sets, quick=False, data_dir=None)


def test_a_proxy_only_compare_tables_each_strategys_last_round():
    entries = {
        "svp": {"records": [record(0, 10, 0, 5, warm=False), record(1, 20, 2, 9, warm=False, acc=0.9)], "targets": {}},
        "clactive": {"records": [record(0, 10, 0, 5, warm=False), record(1, 20, 2, 3, acc=0.85)], "targets": {}},
    }
    text = table(summarize(entries, {}, pool_size=100))  # selection s: score + select 0.5 + update - eval 1
    assert "target acc" not in text  # no budgets: no strategy x budget table
    assert "| svp | 1 | 20 | 0.9000 | 15.0 | 12.0 |" in text
    assert "| clactive | 1 | 20 | 0.8500 | 9.0 | 6.0 |" in text


def test_an_entry_named_after_an_acquisition_is_clactive_selecting_with_it():
    base, section = load(
        None, ["compare.strategies=[svp, random, cluster_margin]", "acquisition=entropy"], quick=False, data_dir=None
    )
    configs = {name: entry_config(base, section, name) for name in section.strategies}
    assert (configs["svp"].strategy, configs["svp"].acquisition) == ("svp", "entropy")
    assert (configs["random"].strategy, configs["random"].acquisition) == ("clactive", "random")
    assert (configs["cluster_margin"].strategy, configs["cluster_margin"].acquisition) == ("clactive", "cluster_margin")
    assert configs["cluster_margin"].run_dir.endswith("cluster_margin")
    assert load(None, [], quick=False, data_dir=None)[1].strategies[-1] == "random"  # the default control


def test_a_variant_is_the_clactive_engine_with_its_own_keys_and_a_bad_key_is_named_before_any_work():
    variants = (
        "compare.variants={power: {batch.sampling: power, batch.coldness: 2}, "
        "near: {scoring.candidates_from: neighbours}}"
    )
    base, section = load(None, ["compare.strategies=[full, near]", variants], quick=False, data_dir=None)
    assert section.strategies == ("full", "near", "power")  # listed where written, else added
    power, near = entry_config(base, section, "power"), entry_config(base, section, "near")
    assert (power.strategy, power.batch.sampling, power.batch.coldness) == ("clactive", "power", 2.0)
    assert (near.scoring.candidates_from, near.batch.sampling, near.run_dir.endswith("near")) == (
        "neighbours",
        "top_k",
        True,
    )
    base, section = load(None, ["compare.variants={bad: {batch.sampling: gumbel}}"], quick=False, data_dir=None)
    with pytest.raises(ConfigError, match="compare.variants.bad: unknown batch.sampling 'gumbel'"):
        entry_config(base, section, "bad")


def test_a_tune_result_runs_as_the_tuned_entry_with_the_chosen_settings_and_its_own_speedups(tmp_path):
    from tune.report import write as write_search

    trial = {"trial": "t1", "status": "finished", "rounds": 3, "accuracy": 0.9, "selection_s": 5.0}
    trial["params"] = {"update.steps": 60, "memory.ratio": 0.5}
    write_search([trial], {}, tmp_path / "tune", "proxy_val_acc", 0.5, {})
    base, section = load(
        None, ["compare.strategies=[full, clactive]", f"compare.tuned={tmp_path / 'tune'}"], quick=False, data_dir=None
    )
    assert section.strategies == ("full", "clactive", "tuned")  # added, as compare.tuned names a search
    tuned = entry_config(base, section, "tuned")
    assert (tuned.strategy, tuned.update.steps, tuned.memory.ratio) == ("clactive", 60, 0.5)
    assert entry_config(base, section, "clactive").update.steps == base.update.steps
    entries = {
        "full": {"records": [record(0, 10, 0, 11, model="target", warm=False, acc=0.7)], "targets": {}},
        "tuned": {"records": [record(0, 10, 0, 5, warm=False)], "targets": {0: {"target_acc": 0.7}}},
    }
    text = table(summarize(entries, {"10%": 0}, pool_size=100))
    assert "at 10% (tuned): selection vs full 2.33x; update vs full 2.50x" in text
    with pytest.raises(ConfigError, match="compare.tuned names no search"):
        load(None, ["compare.strategies=[tuned]"], quick=False, data_dir=None)


def test_budgets_are_labelled_as_written_and_a_budget_without_figures_gets_no_line():
    data = PreparedData(
        root="unused",
        dataset="fashion_mnist",
        num_classes=10,
        image_shape=(1, 28, 28),
        mean=0.5,
        std=0.5,
        sizes={"pool": 9999, "test": 10},
    )
    plan = RunPlan(RunConfig(), data, initial_size=600, round_sizes=(1400,))  # 0.06 and 0.2 round to 600, 2000
    assert budget_rounds(CompareConfig(budgets=(0.06, 0.2)), plan) == {"6%": 0, "20%": 1}  # not "6.0006%"
    entries = {"clactive": {"records": [record(0, 600, 0, 5, warm=False), record(1, 2000, 2, 3)], "targets": {}}}
    text = table(summarize(entries, {"6%": 0, "20%": 1}, pool_size=9999))  # no full or svp: no speed-ups
    assert "at 6%" not in text and "at 20%" not in text

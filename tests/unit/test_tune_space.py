"""The tune section and its report: checked before any trial, judged from what trials reported. No Ray."""

import json

import pytest
import yaml

from pipeline.config.run_config import load_config
from pipeline.errors import ConfigError
from tune.report import choose, chosen_params, pareto_front, table, write
from tune.space import parse_section, parse_space

BASE = {"schedule": {"initial": 40, "round_ends": [70, 100]}}
GOOD = {
    "memory.ratio": {"uniform": [0.25, 2.0]},
    "memory.policy": {"choice": ["random", "reservoir"]},
    "update.steps": {"randint": [5, 50]},
    "update.lr": {"loguniform": [0.01, 0.2]},
}


def test_a_good_space_parses_into_parameters():
    params = parse_space(GOOD, BASE)
    assert [(p.key, p.kind, p.values) for p in params] == [
        ("memory.ratio", "uniform", (0.25, 2.0)),
        ("memory.policy", "choice", ("random", "reservoir")),
        ("update.steps", "randint", (5, 50)),
        ("update.lr", "loguniform", (0.01, 0.2)),
    ]


@pytest.mark.parametrize(
    "space, message",
    [
        ({}, "tune.space is empty"),
        ({"update.steps": {"randint": [50, 50]}}, r"randint \[50, 50\] is empty or inverted"),
        ({"update.lr": {"uniform": [0.2, 0.01]}}, r"uniform \[0.2, 0.01\] is empty or inverted"),
        ({"update.lr": {"loguniform": [0, 0.1]}}, "loguniform needs low > 0"),
        ({"memory.policy": {"choice": []}}, "choice needs a non-empty list"),
        ({"update.stepz": {"randint": [5, 50]}}, "'update.stepz' is not a run config key"),
        ({"update.steps": {"normal": [5, 50]}}, "write exactly one of uniform"),
        ({"memory.ratio": {"uniform": [-1.0, 1.0]}}, "memory.ratio = -1.0 is negative"),
        ({"memory.policy": {"choice": ["random", "fifo"]}}, "unknown memory.policy 'fifo'"),
        ({"update.steps": {"randint": [1.5, 50]}}, "randint needs integer ends"),
    ],
)
def test_bad_spaces_are_refused_with_the_key_named(space, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(space, BASE)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"objective": "f1"}, "tune.objective 'f1' is not a metric the trials report"),
        ({"objective": "proxy_acc"}, "proxy_acc chose on test accuracy.*write proxy_val_acc"),
        ({"reference": "svp"}, "tune.reference 'svp': choose none or full"),
        ({"reference": "full"}, "tune.reference full .* needs tune.objective target_val_acc"),
        ({"scheduler": "pbt"}, "tune.scheduler 'pbt'"),
        ({"num_samples": 0}, "tune.num_samples = 0 must be at least 1"),
        ({"space": [1, 2]}, "tune.space must map config keys"),
        ({"folder": "x"}, "unknown config key 'tune.folder'"),
    ],
)
def test_bad_tune_sections_are_refused(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_section(raw)


def trial(name, acc, seconds, status="finished", **params):
    return {"trial": name, "params": params, "status": status, "rounds": 3, "accuracy": acc, "selection_s": seconds}


TRIALS = [
    trial("a", 0.80, 10.0, steps=50),
    trial("b", 0.85, 20.0, steps=100),
    trial("c", 0.84, 30.0, steps=200),
    trial("d", 0.86, 40.0, steps=400),
    trial("e", 0.99, 1.0, status="stopped", steps=10),
]


def test_pareto_front_and_choice_ignore_stopped_trials():
    assert [t["trial"] for t in pareto_front(TRIALS)] == ["a", "b", "d"]  # c is beaten by b on both
    assert choose(TRIALS, within_pt=0.5)["trial"] == "d"
    assert choose(TRIALS, within_pt=1.0)["trial"] == "b"
    assert choose([TRIALS[-1]], within_pt=1.0) is None
    assert "| b | 100 | finished | 3 | 0.8500 | n/a | 20.0 | yes |" in table(TRIALS, "proxy_val_acc")


def test_with_full_as_reference_the_choice_is_the_fastest_within_reach_of_full_or_none():
    assert choose(TRIALS, within_pt=0.5, reference=0.853)["trial"] == "b"  # 0.85 >= 0.848
    assert choose(TRIALS, within_pt=0.5, reference=0.80)["trial"] == "a"
    assert choose(TRIALS, within_pt=0.5, reference=0.90) is None  # no trial came near full: nothing chosen


def test_compare_takes_the_chosen_trials_settings_and_refuses_a_search_that_chose_none(tmp_path):
    trials = [{**t, "params": {"update.steps": t["params"]["steps"]}} for t in TRIALS]
    write(trials, BASE, tmp_path / "s", "target_val_acc", 0.5, {"reference": {"val_acc": 0.853}})
    assert chosen_params(tmp_path / "s") == {"update.steps": 100}
    assert "chosen: trial b, the fastest within 0.5 pt of full's 0.8530" in (tmp_path / "s" / "trials.md").read_text()
    write(trials, BASE, tmp_path / "t", "target_val_acc", 0.5, {"reference": {"val_acc": 0.95}})
    assert not (tmp_path / "t" / "best.yaml").exists()
    with pytest.raises(ConfigError, match="chose no trial"):
        chosen_params(tmp_path / "t")
    with pytest.raises(ConfigError, match="run clactive tune with tune.dir"):
        chosen_params(tmp_path / "none")


def test_written_best_config_loads_with_the_project_loader(tmp_path):
    trials = [trial("a", 0.80, 10.0, **{"update.steps": 30, "memory.policy": "reservoir"})]
    paths = write(trials, BASE, tmp_path, "proxy_val_acc", 0.5, {"command": "clactive tune"})
    assert {p.name for p in paths} == {"trials.md", "trials.json", "pareto.png", "best.yaml"}
    config = load_config(tmp_path / "best.yaml")
    assert config.update.steps == 30 and config.memory.policy == "reservoir" and config.schedule.initial == 40
    assert json.loads((tmp_path / "trials.json").read_text())["chosen"] == "a"
    assert "run_dir" not in yaml.safe_load((tmp_path / "best.yaml").read_text())


@pytest.mark.parametrize(
    "sets, message",
    [
        (["tune.space={update.steps: {randint: [9, 3]}}"], "randint [9, 3] is empty or inverted"),
        (["tune.space={update.stepz: {randint: [3, 9]}}"], "'update.stepz' is not a run config key"),
        (["tune.objective=f1"], "tune.objective 'f1' is not a metric the trials report"),
    ],
)
def test_clactive_tune_refuses_bad_searches_in_one_line_before_any_work(monkeypatch, capsys, sets, message):
    import pipeline.cli
    import pipeline.loop.preflight

    monkeypatch.setattr(
        pipeline.loop.preflight, "prepare_data", lambda *a, **k: pytest.fail("a bad search reached the data")
    )
    assert pipeline.cli.main(["tune", *[arg for item in sets for arg in ("--set", item)]]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("clactive: error: ") and message in err

"""The tune section and its report: checked before any trial, judged from what trials reported. No Ray."""

import json

import pytest
import yaml

from pipeline.config.run_config import load_config
from pipeline.errors import ConfigError
from tune.report import choose, pareto_front, table, write
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
    assert "| b | 100 | finished | 3 | 0.8500 | 20.0 | yes |" in table(TRIALS, "proxy_acc")


def test_written_best_config_loads_with_the_project_loader(tmp_path):
    trials = [trial("a", 0.80, 10.0, **{"update.steps": 30, "memory.policy": "reservoir"})]
    paths = write(trials, BASE, tmp_path, "proxy_acc", 0.5, {"command": "clactive tune"})
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

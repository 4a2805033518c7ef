"""A tiny Ray Tune search on the session's cluster: trial table, Pareto plot, a loadable best config."""

import json

import pytest

from pipeline.cli import main
from pipeline.config.run_config import load_config
from pipeline.loop.run_store import RunStore
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.ray


def tune_args(data_dir, work_dir, *extra):
    sets = tiny_overrides(data_dir, work_dir) + [
        "schedule.round_ends=[70]",
        "data.validation=40",
        f"tune.dir={work_dir / 'tune'}",
        "tune.num_samples=2",
        "tune.scheduler=none",
        "tune.space={update.steps: {randint: [3, 9]}, memory.ratio: {uniform: [0.5, 1.0]}}",
        *extra,
    ]
    return ["tune", *[arg for item in sets for arg in ("--set", item)]]


def test_a_tiny_search_writes_its_table_plot_and_a_best_config_that_loads(ray_cluster, tiny_data_dir, work_dir):
    """Tracked with MLflow through Tune's own logger callback: a run per trial, read back through MLflow.
    Chosen on validation accuracy against `full` run first on the same schedule (the bar is wide here:
    a tiny search must choose something)."""
    against_full = ["tune.objective=target_val_acc", "tune.reference=full", "tune.choose_within_pt=100"]
    assert main(tune_args(tiny_data_dir, work_dir, "tracking=mlflow", *against_full)) == 0

    out = work_dir / "tune"
    results = json.loads((out / "trials.json").read_text())
    assert len(results["trials"]) == 2 and all(t["status"] == "finished" for t in results["trials"])
    assert results["objective"] == "target_val_acc" and 0 <= results["reference"]["val_acc"] <= 1
    assert all(0 <= t["accuracy"] <= 1 and 0 <= t["test_accuracy"] <= 1 for t in results["trials"])
    assert len(RunStore(out / "reference" / "full").records()) == 2  # full, the bar, ran both rounds
    assert all(3 <= t["params"]["update.steps"] < 9 and t["rounds"] == 2 for t in results["trials"])
    assert (out / "pareto.png").stat().st_size > 0 and "| trial |" in (out / "trials.md").read_text()
    best = load_config(out / "best.yaml")
    chosen = next(t for t in results["trials"] if t["trial"] == results["chosen"])
    assert best.update.steps == chosen["params"]["update.steps"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tune").experiment_id])
    assert len(runs) == 2
    for run in runs:  # each trial's rounds, as it reported them
        # and, after the last round, that round's figures again with the target's accuracy
        assert [m.value for m in client.get_metric_history(run.info.run_id, "labelled")] == [40, 70, 70]

    # the same command again: Tune restores the finished search and runs nothing new
    assert main(tune_args(tiny_data_dir, work_dir, "tracking=mlflow", *against_full)) == 0
    assert json.loads((out / "trials.json").read_text())["trials"] == results["trials"]


def test_concurrent_trials_that_would_starve_ray_data_are_refused_before_any_trial(
    ray_cluster, tiny_data_dir, work_dir, capsys
):
    assert main(tune_args(tiny_data_dir, work_dir, "tune.max_concurrent=2")) == 2
    error = capsys.readouterr().err
    assert "in each of 2 concurrent trials do not all fit on the cluster's nodes (1 CPU/1 GPU, 1 CPU/0 GPU)" in error
    assert error.rstrip().endswith("or tune.max_concurrent") and not (work_dir / "tune").exists()

"""Tracking, read back through each library's own API: MlflowClient and TensorBoard's EventAccumulator."""

import logging
import struct
import subprocess
import sys
import zlib

import pytest

from pipeline.config.run_config import load_config
from pipeline.errors import ConfigError
from pipeline.report.tracking import open_tracker

pytestmark = pytest.mark.timeout(120)

ROUND_NAMES = {
    "labelled",
    "acquired",
    "candidates",
    "steps",
    "loss",
    "selection_acc",
    "selection_score_mean",
    "stop_set_kappa",
    "seconds_score",
    "seconds_select",
    "seconds_update",
}


def record(r: int) -> dict:
    """A round record as pipeline.loop.rounds writes it, with fields tracking must skip."""
    return {
        "round": r,
        "labelled": 10 * (r + 1),
        "acquired": 10,
        "strategy": "clactive",
        "warm_start": r > 0,
        "steps": 50,
        "candidates": 100 - 10 * r,
        "selection_acc": 0.5 + 0.1 * r,
        "loss": 1.0 / (r + 1),
        "selection_score_mean": 0.25,
        "stop_set_kappa": 0.9,
        "acc_seen": None,
        "seconds": {"score": 1.5 + r, "select": 0.25, "update": 3.0},
    }


FIT = {
    "round": 1,
    "labelled": 20,
    "target": "small_cnn",
    "target_acc": 0.7,
    "steps": 80,
    "seconds": {"train": 2.0, "eval": 0.1, "update": 2.5},
}


def png(path, width=3, height=2) -> str:
    """A tiny grey PNG, written by hand: no imaging library needed to make a plot to send."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(range(0, 255, 255 // width))[:width] for _ in range(height))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return str(path)


def run_rounds(tracker, rounds, fit=None, plots=()):
    for r in rounds:
        tracker.log_round(record(r))
    if fit:
        tracker.log_target(fit)
    tracker.log_artifacts(list(plots))
    tracker.close()


def mlflow_client(run_dir):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{run_dir}/mlflow.db")


def history(client, run_id, name):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)]


def test_mlflow_logs_the_config_every_round_the_target_and_the_plots_to_a_store_in_the_run_directory(tmp_path):
    config = load_config(None, ["tracking=mlflow", "seed=7"])
    tracker = open_tracker(config, str(tmp_path))
    run_rounds(tracker, [0, 1, 2], FIT, [png(tmp_path / "selection.png")])

    client = mlflow_client(tmp_path)
    run = client.get_run(tracker.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "clactive"
    assert run.info.status == "FINISHED" and run.info.run_name == tmp_path.name
    assert run.data.params["proxy.lr"] == "0.1" and run.data.params["seed"] == "7"
    assert run.data.params["tracking"] == "mlflow" and run.data.params["tracking_uri"] == "None"
    assert set(run.data.metrics) == ROUND_NAMES | {
        "target_acc",
        "target_seconds_train",
        "target_seconds_eval",
        "target_seconds_update",
    }
    assert history(client, tracker.run_id, "labelled") == [(0, 10.0), (1, 20.0), (2, 30.0)]
    assert history(client, tracker.run_id, "seconds_score") == [(0, 1.5), (1, 2.5), (2, 3.5)]
    assert history(client, tracker.run_id, "target_acc") == [(1, 0.7)]
    assert [f.path for f in client.list_artifacts(tracker.run_id, "plots")] == ["plots/selection.png"]
    assert (tmp_path / "mlartifacts").is_dir()  # artifacts beside the store, not in the working directory


def test_a_new_mlflow_store_prints_nothing_on_the_console(tmp_path):
    """The console carries clactive's lines only: MLflow's INFO lines about creating its tables stay off."""
    code = (
        "import sys; from pipeline.config.run_config import load_config; "
        "from pipeline.report.tracking import open_tracker; "
        "open_tracker(load_config(None, ['tracking=mlflow']), sys.argv[1]).close()"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mlflow.db").is_file()
    assert done.stdout == "" and done.stderr == ""


def test_a_resumed_mlflow_run_continues_the_same_run_and_logs_each_round_once(tmp_path):
    config = load_config(None, ["tracking=mlflow"])
    first = open_tracker(config, str(tmp_path))
    run_rounds(first, [0, 1, 2], FIT)
    again = open_tracker(config, str(tmp_path))  # the resumed run sends its committed records again
    run_rounds(again, [0, 1, 2, 3], FIT)

    assert again.run_id == first.run_id
    client = mlflow_client(tmp_path)
    assert len(client.search_runs([client.get_run(first.run_id).info.experiment_id])) == 1
    for name in ROUND_NAMES:
        assert [step for step, _ in history(client, first.run_id, name)] == [0, 1, 2, 3], name
    assert history(client, first.run_id, "target_acc") == [(1, 0.7)]


def test_compare_logs_each_strategy_as_a_run_of_one_experiment(tmp_path):
    config = load_config(None, ["tracking=mlflow"])
    ids = {}
    for name in ("full", "clactive"):
        (tmp_path / name).mkdir()
        tracker = open_tracker(config, str(tmp_path / name), experiment="cmp", run_name=name, store_dir=str(tmp_path))
        run_rounds(tracker, [0, 1])
        ids[name] = tracker.run_id
    client = mlflow_client(tmp_path)
    experiment = client.get_experiment_by_name("cmp")
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_name: r.info.run_id for r in runs} == ids
    assert not (tmp_path / "full" / "mlflow.db").exists()


def test_tensorboard_writes_the_same_scalars_and_a_resumed_run_logs_each_round_once(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = load_config(None, ["tracking=tensorboard"])
    run_rounds(open_tracker(config, str(tmp_path)), [0, 1, 2], FIT, [png(tmp_path / "selection.png")])
    run_rounds(open_tracker(config, str(tmp_path)), [0, 1, 2, 3], FIT)

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == ROUND_NAMES | {
        "target_acc",
        "target_seconds_train",
        "target_seconds_eval",
        "target_seconds_update",
    }
    for name in ROUND_NAMES:
        assert [e.step for e in events.Scalars(name)] == [0, 1, 2, 3], name
    assert [(e.step, e.value) for e in events.Scalars("labelled")] == [(0, 10.0), (1, 20.0), (2, 30.0), (3, 40.0)]
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("target_acc")] == [(1, 0.7)]
    assert [(e.step, e.width, e.height) for e in events.Images("plots/selection")] == [(2, 3, 2)]
    config_text = [e.tensor_proto.string_val[0].decode() for e in events.Tensors("config/text_summary")]
    assert len(config_text) == 1 and "| proxy.lr | 0.1 |" in config_text[0]


def test_no_tracking_returns_none_and_imports_neither_library(tmp_path):
    code = (
        "import sys; from pipeline.config.run_config import load_config; "
        "from pipeline.report.tracking import open_tracker; "
        f"assert open_tracker(load_config(), {str(tmp_path)!r}) is None; "
        "print(sorted(m for m in ('mlflow', 'tensorboard', 'torch', 'ray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert not list(tmp_path.iterdir())


def test_resuming_with_another_backend_is_a_config_error(tmp_path):
    run_rounds(open_tracker(load_config(None, ["tracking=tensorboard"]), str(tmp_path)), [0])
    with pytest.raises(
        ConfigError, match="continues a tensorboard tracking run, not mlflow: resume with tracking: tensorboard"
    ):
        open_tracker(load_config(None, ["tracking=mlflow"]), str(tmp_path))


def test_a_tracking_uri_mlflow_cannot_use_is_a_config_error(tmp_path):
    config = load_config(None, ["tracking=mlflow", "tracking_uri=nosuch://here"])
    with pytest.raises(ConfigError, match=r"^tracking_uri nosuch://here cannot be used \(.*\): pass a sqlite") as error:
        open_tracker(config, str(tmp_path))
    assert "\n" not in str(error.value)


def test_a_failure_after_the_start_is_one_warning_and_tracking_stays_off(tmp_path, caplog, monkeypatch):
    tracker = open_tracker(load_config(None, ["tracking=mlflow"]), str(tmp_path))
    tracker.log_round(record(0))

    def broken(*args, **kwargs):
        raise OSError("disk full\nsecond line")

    monkeypatch.setattr(tracker.client, "log_batch", broken)
    with caplog.at_level(logging.WARNING, logger="pipeline.report.tracking"):
        tracker.log_round(record(1))
        tracker.log_round(record(2))
        tracker.log_target(FIT)
        tracker.close()
    assert [r.getMessage() for r in caplog.records if r.name == "pipeline.report.tracking"] == [
        "mlflow tracking failed and is off for the rest of this run (the run directory has everything): "
        "OSError: disk full"
    ]
    monkeypatch.undo()
    assert history(mlflow_client(tmp_path), tracker.run_id, "labelled") == [(0, 10.0)]

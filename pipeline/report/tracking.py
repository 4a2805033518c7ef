"""Experiment tracking, off by default: the config, every round's record and the plots, sent to
MLflow or TensorBoard as well as to the run directory (which stays the source of truth).

    tracking: mlflow        params = the flattened config ("proxy.lr" = "0.1"), logged once when
                            the tracking run is created; metrics per round; the plots as artifacts.
                            Store: `tracking_uri`, or by default sqlite:///<store_dir>/mlflow.db with
                            artifacts in <store_dir>/mlartifacts (store_dir: the run directory, or
                            the compare directory so that every strategy is a run of one experiment).
                            MLflow 3 refuses its plain file store (./mlruns) unless told otherwise
                            by an environment variable, and recommends SQLite for a local store
                            that needs no server: `mlflow ui --backend-store-uri sqlite:///...` reads it.
    tracking: tensorboard   event files in <run_dir>/tensorboard: the same metrics as scalars, the
                            config as a text table at step 0, the PNG plots as images.

Metrics, at step = the round index:
    labelled, acquired, candidates, steps, loss, selection_acc, selection_val_acc (with a validation
    split; the plateau criterion reads it) (and acc_seen, forgetting when
    the pool grows by class), selection_score_mean, stop_set_kappa (from round 1), seconds_<stage>
    for every entry of the record's "seconds"
    target_acc, target_val_acc (and target_acc_seen), target_seconds_<stage>: a target fit from scratch on the
    labels of rounds 0..N, also at step N, so it lines up with that round's `labelled`

<run_dir>/tracking.json names the tracking run (backend, MLflow run and experiment ids) and what
was logged so far. Opening a run directory that has it continues the same tracking run, and
records or fits already logged are skipped: a resumed run may send its committed records again.
A failure after the start never stops the run: it becomes one warning and tracking is switched
off for the rest of the run. mlflow and tensorboard are imported only when a run asks for them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from numbers import Real
from pathlib import Path

from pipeline.errors import ConfigError, first_line

logger = logging.getLogger(__name__)

STATE_FILE = "tracking.json"
DEFAULT_EXPERIMENT = "clactive"
# selection_score_mean and stop_set_kappa: what the uncertainty and stable_predictions criteria read
ROUND_METRICS = (
    "labelled",
    "acquired",
    "candidates",
    "steps",
    "loss",
    "selection_acc",
    "selection_val_acc",
    "acc_seen",
    "forgetting",
    "selection_score_mean",
    "stop_set_kappa",
)
TARGET_METRICS = {"target_acc": "target_acc", "target_val_acc": "target_val_acc", "acc_seen": "target_acc_seen"}


def open_tracker(
    config, run_dir: str, experiment: str | None = None, run_name: str | None = None, store_dir: str | None = None
) -> Tracker | None:
    """The run's tracker, or None when `config.tracking` is None.

    run_dir: the run's local directory (it exists); a tracking.json in it is continued.
    experiment: the MLflow experiment (default "clactive"; compare passes its name).
    run_name: the tracking run's name (default: the run directory's name; compare passes the strategy).
    store_dir: where the default MLflow store lives (default: run_dir; compare passes its directory).
    """
    if config.tracking is None:
        return None
    saved = _read_state(run_dir)
    if saved is not None and saved.get("backend") != config.tracking:
        raise ConfigError(
            f"{os.path.join(run_dir, STATE_FILE)} continues a {saved.get('backend')} tracking run, "
            f"not {config.tracking}: resume with tracking: {saved.get('backend')}, or remove that file "
            "to start a new tracking run"
        )
    if config.tracking == "mlflow":
        return MlflowTracker(
            config,
            run_dir,
            saved,
            experiment or DEFAULT_EXPERIMENT,
            run_name or os.path.basename(os.path.abspath(run_dir)),
            store_dir or run_dir,
        )
    if config.tracking == "tensorboard":
        return TensorBoardTracker(config, run_dir, saved)
    raise ConfigError(f"unknown tracking '{config.tracking}': choose mlflow or tensorboard")


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    """{"proxy": {"lr": 0.1}} -> {"proxy.lr": "0.1"}: the config as MLflow params (strings)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


def round_metrics(record: dict) -> dict[str, float]:
    metrics = {key: record[key] for key in ROUND_METRICS if key in record}
    metrics.update({f"seconds_{stage}": s for stage, s in record.get("seconds", {}).items()})
    return _numbers(metrics)


def target_metrics(fit: dict) -> dict[str, float]:
    metrics = {name: fit[key] for key, name in TARGET_METRICS.items() if key in fit}
    metrics.update({f"target_seconds_{stage}": s for stage, s in fit.get("seconds", {}).items()})
    return _numbers(metrics)


def _numbers(metrics: dict) -> dict[str, float]:
    # bool is an int, but True is not a measurement; None (no figure this round) is skipped too
    return {k: float(v) for k, v in metrics.items() if isinstance(v, Real) and not isinstance(v, bool)}


class Tracker:
    """What every backend shares: skipping what was logged, the progress file, and turning a
    failure into one warning. A backend implements _metrics, _artifacts and _close."""

    backend = ""

    def __init__(self, run_dir: str, state: dict):
        self.run_dir = run_dir
        self.state = state  # written to tracking.json: the tracking run's identity and progress
        self.state.setdefault("last_round", -1)
        self.state.setdefault("target_rounds", [])
        self.on = True

    def log_round(self, record: dict) -> None:
        """One committed round's record, at step = record["round"]; a round already logged is skipped."""
        step = record["round"]
        if self.on and step > self.state["last_round"]:
            self._guarded(self._log_progress, "last_round", step, round_metrics(record))

    def log_target(self, fit: dict) -> None:
        """A target fit on the labels of rounds 0..fit["round"], at that step; logged once per round."""
        step = fit["round"]
        if self.on and step not in self.state["target_rounds"]:
            self._guarded(self._log_progress, "target_rounds", step, target_metrics(fit))

    def log_artifacts(self, paths: list[str]) -> None:
        """Plots (PNG files). Sending the same file again replaces it (MLflow) or adds an image
        at the last round logged (TensorBoard)."""
        if self.on and paths:
            self._guarded(self._artifacts, [str(p) for p in paths])

    def close(self) -> None:
        if self.on:
            self._guarded(self._close)
            self.on = False

    def _log_progress(self, key: str, step: int, metrics: dict[str, float]) -> None:
        self._metrics(metrics, step)
        # after the metrics: a crash in between logs that step twice, never loses it
        if key == "last_round":
            self.state["last_round"] = step
        else:
            self.state["target_rounds"] = sorted(self.state["target_rounds"] + [step])
        _write_state(self.run_dir, self.state)

    def _guarded(self, call, *args) -> None:
        try:
            call(*args)
        except Exception as error:  # tracking is a copy of what the run directory holds: never fatal
            self.on = False
            logger.warning(
                "%s tracking failed and is off for the rest of this run (the run directory has everything): %s: %s",
                self.backend,
                type(error).__name__,
                first_line(error),
            )

    def _metrics(self, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def _artifacts(self, paths: list[str]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class MlflowTracker(Tracker):
    """MLflow through MlflowClient and explicit run ids, so several trackers can share a process
    (compare) without the fluent API's global active run."""

    backend = "mlflow"

    def __init__(self, config, run_dir: str, saved: dict | None, experiment: str, run_name: str, store_dir: str):
        client_class, Metric, Param = _import_mlflow(default_store=config.tracking_uri is None)
        self._Metric = Metric
        if config.tracking_uri is not None:
            uri, artifact_location = config.tracking_uri, None  # the server or store decides
        else:
            store_dir = os.path.abspath(store_dir)
            uri = f"sqlite:///{os.path.join(store_dir, 'mlflow.db')}"
            artifact_location = Path(store_dir, "mlartifacts").as_uri()
        try:
            self.client = client_class(tracking_uri=uri)
            state = (
                self._continue(saved)
                if saved
                else self._create(config, run_dir, experiment, run_name, artifact_location, Param)
            )
        except ConfigError:
            raise
        except Exception as error:
            raise ConfigError(_uri_problem(uri, saved, error)) from None
        state["tracking_uri"] = uri
        super().__init__(run_dir, state)
        _write_state(run_dir, self.state)

    def _create(
        self, config, run_dir: str, experiment: str, run_name: str, artifact_location: str | None, Param
    ) -> dict:
        experiment_id = _experiment_id(self.client, experiment, artifact_location)
        run = self.client.create_run(
            experiment_id, run_name=run_name, tags={"clactive.run_dir": os.path.abspath(run_dir)}
        )
        self.run_id = run.info.run_id
        params = [Param(k, v) for k, v in flatten(config.to_dict()).items()]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])
        return {"backend": self.backend, "experiment_id": experiment_id, "run_id": self.run_id}

    def _continue(self, saved: dict) -> dict:
        # params are immutable in MLflow and were logged when the run was created
        self.run_id = self.client.get_run(saved["run_id"]).info.run_id
        self.client.update_run(self.run_id, status="RUNNING")
        # the store knows what reached it, even where tracking.json was not updated after it
        rounds = self.client.get_metric_history(self.run_id, "labelled")
        targets = self.client.get_metric_history(self.run_id, "target_acc")
        return dict(
            saved, last_round=max((m.step for m in rounds), default=-1), target_rounds=sorted({m.step for m in targets})
        )

    def _metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self._Metric(k, v, now, step) for k, v in metrics.items()])

    def _artifacts(self, paths: list[str]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, path, artifact_path="plots")

    def _close(self) -> None:
        self.client.set_terminated(self.run_id, "FINISHED")


class TensorBoardTracker(Tracker):
    """Event files in <run_dir>/tensorboard; a resumed run adds a new event file beside the old ones."""

    backend = "tensorboard"

    def __init__(self, config, run_dir: str, saved: dict | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "tracking: tensorboard needs the tensorboard package: pip install tensorboard, or set tracking: null"
            ) from None
        self.writer = SummaryWriter(log_dir=os.path.join(run_dir, "tensorboard"))
        if saved is None:
            # TensorBoard has no params: the config is a text table, written once like MLflow's
            rows = "".join(f"| {k} | {v} |\n" for k, v in flatten(config.to_dict()).items())
            self.writer.add_text("config", "| key | value |\n| --- | --- |\n" + rows, 0)
            self.writer.flush()
        super().__init__(run_dir, saved or {"backend": self.backend})
        _write_state(run_dir, self.state)

    def _metrics(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()  # on disk before tracking.json says it was logged

    def _artifacts(self, paths: list[str]) -> None:
        from matplotlib.image import imread  # matplotlib draws the plots; it also reads them back

        step = max(self.state["last_round"], 0)
        for path in paths:
            if path.lower().endswith(".png"):  # anything else has no image to show
                tag = "plots/" + os.path.splitext(os.path.basename(path))[0]
                pixels = imread(path)  # (H, W) grey, or (H, W, 3|4) RGB(A), floats in [0, 1]
                if pixels.ndim == 2:
                    self.writer.add_image(tag, pixels, step, dataformats="HW")
                else:
                    self.writer.add_image(tag, pixels[..., :3], step, dataformats="HWC")
        self.writer.flush()

    def _close(self) -> None:
        self.writer.close()


def _import_mlflow(default_store: bool):
    # MLflow's usage telemetry would contact its servers from a background thread; it reads this
    # variable when mlflow is first imported. A user who sets it to false keeps their choice.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        if default_store:  # the SQLite store; mlflow-skinny does not bring these
            import alembic  # noqa: F401
            import sqlalchemy  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"tracking: mlflow needs {error.name}: pip install mlflow-skinny sqlalchemy alembic, or set tracking: null"
        ) from None
    # MLflow's logger prints its store's set-up ("Creating initial MLflow database tables...") at INFO
    # on the console, between the round table's lines; its warnings still show.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return MlflowClient, Metric, Param


def _experiment_id(client, name: str, artifact_location: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except Exception:  # another tracker of this compare created it in between
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        raise ConfigError(
            f"MLflow experiment '{name}' is deleted in this tracking store: restore it "
            "(mlflow experiments restore) or track under another name"
        )
    return found.experiment_id


def _uri_problem(uri: str, saved: dict | None, error: Exception) -> str:
    cause = f"{type(error).__name__}: {first_line(error)}"
    if saved is not None:
        return (
            f"MLflow run {saved.get('run_id')} named in tracking.json cannot be read from {uri} ({cause}): "
            "restore that store, or remove tracking.json to start a new tracking run"
        )
    return (
        f"tracking_uri {uri} cannot be used ({cause}): pass a sqlite:///path/mlflow.db or http(s) URI, "
        "or leave tracking_uri unset for a store in the run directory"
    )


def _read_state(run_dir: str) -> dict | None:
    path = os.path.join(run_dir, STATE_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _write_state(run_dir: str, state: dict) -> None:
    # written whole and renamed, so a crash leaves the old file or the new one
    path = os.path.join(run_dir, STATE_FILE)
    with open(path + ".tmp", "w") as f:
        f.write(json.dumps(state, indent=1) + "\n")
    os.replace(path + ".tmp", path)

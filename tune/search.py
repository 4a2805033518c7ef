"""`clactive tune`: a Ray Tune search whose trials are whole (short) active-learning runs.

Each trial applies its sampled parameters to the base config and runs every round through the
same coordinator, scorers and learner as `clactive run`, in its own run directory
(`<tune.dir>/trials/<trial id>`). After every round it reports the proxy's validation accuracy
(its test accuracy beside it, for the report only) and the cumulative selection seconds (scoring +
selecting + model updates, as `clactive compare` counts them); with `objective: target_val_acc` it
fits the target on its final labels and reports that last. ASHA stops trials whose per-round proxy
validation accuracy trails. Nothing is chosen on test accuracy: the data must have a validation
split. With `reference: full` the search first runs `full` on the same schedule
(`<tune.dir>/reference/full`), and the chosen trial is the fastest within `choose_within_pt` of
full's validation accuracy. A search that stopped part-way is restored by running the same command:
Tune restores its experiment and an unfinished trial's (or the reference's) run directory resumes
after its last committed round.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from pathlib import Path

from actors.decode import ray_data_map
from pipeline.config.run_config import RunConfig, read_with_section
from pipeline.data import PreparedData
from pipeline.errors import ConfigError
from pipeline.loop.preflight import plan_run, preflight
from pipeline.report.summary import round_costs
from tune.report import write
from tune.space import REPORTED, TIME_METRIC, Param, TuneSection, apply, parse_section, parse_space

# A trial only drives its coordinator; its work runs in actors that hold their own CPUs, and Ray Data's
# file listing needs one whole free CPU beside them. Tune refuses an empty request, so a trial asks
# for a little memory and no CPU.
TRIAL_RESOURCES = {"cpu": 0, "memory": 64 * 2**20}


def load(path: str | None, overrides: list[str], data_dir: str | None) -> tuple[dict, TuneSection, list[Param]]:
    raw, section = read_with_section(
        path, list(overrides) + ([f"data.data_dir={data_dir}"] if data_dir else []), "tune"
    )
    section = parse_section(section)
    return raw, section, parse_space(section.space, raw)


def trial(params: dict, base_raw: dict, data: PreparedData, objective: str, trials_dir: str) -> None:
    """One Tune trial: an active-learning run reporting after every round."""
    import ray.tune

    from actors.driver import run_rounds

    run_dir = os.path.join(trials_dir, ray.tune.get_context().get_trial_id())
    # tracking is Tune's own (its logger callbacks, in tune_tracking below), not a tracker per trial
    plan = plan_run(
        apply(base_raw, {**params, "run_dir": run_dir, "train_target_at_end": False, "tracking": None}), data
    )
    selection_s = 0.0
    metrics: dict = {}

    def report(record: dict) -> None:
        nonlocal selection_s, metrics
        selection_s += round_costs(record)["selection_s"]
        metrics = {
            "round": record["round"],
            "labelled": record["labelled"],
            "proxy_val_acc": record["selection_val_acc"],
            "proxy_test_acc": record["selection_acc"],
            TIME_METRIC: selection_s,
        }
        ray.tune.report(metrics)

    fits = [plan.last_round] if objective == "target_val_acc" else []
    result = run_rounds(plan, on_record=report, target_rounds=fits)
    if result["final"] is not None:
        final = result["final"]
        ray.tune.report({**metrics, "target_val_acc": final["target_val_acc"], "target_test_acc": final["target_acc"]})


def main(args: argparse.Namespace) -> int:
    base_raw, section, params = load(args.config, args.overrides, args.data_dir)
    base = apply(base_raw, {})
    check_unattended(base)
    from actors.cluster import connect  # Ray is imported only when a search starts

    base_plan = preflight(base, parallel_map=ray_data_map(lambda: connect(args.address, args.verbose)))
    data, num_rounds = base_plan.data, base_plan.num_rounds
    if not data.validation_size:
        raise ConfigError(
            "tune chooses on validation accuracy, and the data has no validation split (test accuracy only "
            "reports): set data.validation, e.g. 0.1 or 5000"
        )

    from actors.resources import check_fits

    connect(args.address, args.verbose)
    check_fits(base, runs=section.max_concurrent)
    out_dir = Path(section.dir).absolute()
    reference = run_reference(base_raw, data, out_dir) if section.reference == "full" else None
    tuner = make_tuner(base, base_raw, data, section, params, num_rounds, out_dir)
    print(
        f"clactive tune: {section.num_samples} trials of {num_rounds} rounds over "
        f"{', '.join(p.key for p in params)}; objective {section.objective}, scheduler {section.scheduler}",
        flush=True,
    )
    grid = tuner.fit()

    trials = sorted(
        (_trial_row(result, params, section.objective, num_rounds) for result in grid), key=lambda t: t["trial"]
    )
    meta = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": args.command_line,
        "rounds": num_rounds,
        "dataset": data.dataset,
        "space": {p.key: {p.kind: list(p.values)} for p in params},
        "reference": reference,
    }
    paths = write(trials, base_raw, out_dir, section.objective, section.choose_within_pt, meta)
    print((out_dir / "trials.md").read_text(), end="")
    print("wrote " + ", ".join(str(p) for p in paths), flush=True)
    return 0


def run_reference(base_raw: dict, data: PreparedData, out_dir: Path) -> dict:
    """`full` on the search's schedule, once (a re-run reads it back or resumes it): its target's
    validation accuracy at the final budget is what a trial must come within."""
    from actors.driver import run_rounds

    run_dir = out_dir / "reference" / "full"
    plan = plan_run(
        apply(base_raw, {"strategy": "full", "run_dir": str(run_dir), "train_target_at_end": False, "tracking": None}),
        data,
    )
    print(f"clactive tune: the reference, full on the same schedule, in {run_dir}", flush=True)
    records = run_rounds(plan)["records"]
    last = records[-1]
    return {
        "strategy": "full",
        "run_dir": str(run_dir),
        "val_acc": last["selection_val_acc"],
        "test_acc": last["selection_acc"],
        TIME_METRIC: sum(round_costs(record)["selection_s"] for record in records),
    }


def check_unattended(base: RunConfig) -> None:
    """Refuse what a search cannot run: trials run unattended and are compared at the same rounds."""
    if base.oracle != "simulated":
        raise ConfigError(
            f"oracle = {base.oracle}: tune trials run unattended, with the simulated oracle; drop the oracle key"
        )
    if base.stopping:
        raise ConfigError(
            "stopping: would end trials at budgets of their own, but tune compares them at the same "
            "rounds (its scheduler stops the poor ones early): drop the stopping key"
        )


def make_tuner(
    base: RunConfig,
    base_raw: dict,
    data: PreparedData,
    section: TuneSection,
    params: list[Param],
    num_rounds: int,
    out_dir: Path,
):
    """The search's Tuner: restored from `out_dir/search` when a search stopped part-way, else a new one."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    experiment = out_dir / "search"
    trainable = tune.with_resources(
        tune.with_parameters(
            trial, base_raw=base_raw, data=data, objective=section.objective, trials_dir=str(out_dir / "trials")
        ),
        TRIAL_RESOURCES,
    )
    if tune.Tuner.can_restore(str(experiment)):
        print(f"clactive tune: restoring the search in {experiment}", flush=True)
        return tune.Tuner.restore(str(experiment), trainable=trainable, resume_errored=True)
    scheduler = None
    if section.scheduler == "asha":
        scheduler = ASHAScheduler(
            metric="proxy_val_acc",
            mode="max",
            time_attr="training_iteration",
            max_t=num_rounds + 1,
            grace_period=section.grace_rounds,
        )
    return tune.Tuner(
        trainable,
        param_space={p.key: _distribution(p) for p in params},
        tune_config=tune.TuneConfig(
            num_samples=section.num_samples, scheduler=scheduler, max_concurrent_trials=section.max_concurrent
        ),
        run_config=tune.RunConfig(
            name="search", storage_path=str(out_dir), verbose=0, callbacks=tune_tracking(base, out_dir)
        ),
    )


def tune_tracking(config: RunConfig, out_dir: Path) -> list:
    """Ray Tune's own logger callbacks for `tracking:`: MLflow (a run per trial, in an experiment named
    after the search's directory; by default a SQLite store there, as a run's tracker keeps it) or
    TensorBoard event files in each trial's directory."""
    if config.tracking == "mlflow":
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no calls home from a search
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        uri = config.tracking_uri or f"sqlite:///{out_dir / 'mlflow.db'}"
        return [MLflowLoggerCallback(tracking_uri=uri, experiment_name=out_dir.name, save_artifact=False)]
    if config.tracking == "tensorboard":
        from ray.tune.logger import TBXLoggerCallback

        return [TBXLoggerCallback()]
    return []


def _distribution(param: Param):
    from ray import tune

    if param.kind == "choice":
        return tune.choice(list(param.values))
    return getattr(tune, param.kind)(*param.values)


def _trial_row(result, params: list[Param], objective: str, num_rounds: int) -> dict:
    metrics = result.metrics or {}
    finished = metrics.get("round") == num_rounds - 1 and metrics.get(objective) is not None
    status = "error" if result.error else "finished" if finished else "stopped"
    return {
        "trial": metrics.get("trial_id", Path(result.path).name),
        "params": {p.key: result.config.get(p.key) for p in params},
        "status": status,
        "rounds": metrics.get("round", -1) + 1,
        "accuracy": metrics.get(objective),
        "test_accuracy": metrics.get(REPORTED[objective]),  # reported, never chosen on
        "selection_s": metrics.get(TIME_METRIC, 0.0),
    }

"""The driver: join (or start) Ray, run every round through the coordinator actor, fit the target.

`clactive run`, `clactive compare`, Tune trials and the benchmarks all run rounds through here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.cluster import connect
from actors.coordinator import Coordinator
from actors.faults import HOOK_ENV
from actors.resources import check_fits
from pipeline.loop.preflight import RunPlan
from pipeline.loop.run_store import RunStore
from pipeline.report.progress import RunProgress
from pipeline.report.tracking import open_tracker

COORDINATOR_RESTARTS = 3  # a coordinator that dies is restarted and reloads the run directory
CLOSE_TIMEOUT_S = 60  # a graceful stop of the learner's worker group, when a run is interrupted
PROGRESS_POLL_S = 1.0  # how often the driver asks the coordinator for the running stage's counts


def run_rounds(
    plan: RunPlan,
    on_record: Callable[[dict], None] | None = None,
    on_target: Callable[[dict], None] | None = None,
    no_progress_timeout_s: float | None = None,
    target_rounds: list[int] | None = None,
    accept_partial: bool = False,
    progress: RunProgress | None = None,
    tracking: dict | None = None,
) -> dict:
    """Every round of the run through the coordinator actor (`on_record` gets each record, the
    committed ones first), then the target from scratch on the labels of each of `target_rounds`
    (default: the last round, when `config.train_target_at_end`; `on_target` gets each fit).

    `progress` gets the running stage's counts about once a second and each round's seconds;
    with `config.tracking`, every record and fit goes to the tracker too, and the run's plots
    at the end (`tracking`: pipeline.report.tracking.open_tracker's experiment, run_name, store_dir).

    Creates the run directory if `config.run_dir` holds no run yet, after the resource check,
    so a request the cluster can never satisfy leaves nothing behind.
    With `oracle: external` the rounds stop at the first one whose label request is not answered
    (accept_partial: not answered at all); no target is fitted then.
    Returns {"records": [round records], "targets": {round: target fit}, "final": the last fit or None,
    "waiting": None, or {"round", "waiting": labels missing, "requested"} of the paused round}.
    """
    config = plan.config
    connect()  # the CLI connected already, to the address it was given; others get RAY_ADDRESS or a local Ray
    check_fits(config)
    store = RunStore(config.run_dir)
    if not store.holds_run():
        store = RunStore.create(config.run_dir, config, plan.data.class_names)
    tracker = open_tracker(config, store.storage.path(), **(tracking or {})) if config.tracking else None
    coordinator = _start_coordinator(plan, no_progress_timeout_s, accept_partial)
    report = functools.partial(_report_record, on_record=on_record, progress=progress, tracker=tracker)
    try:
        return _rounds_and_targets(plan, store, coordinator, target_rounds, on_target, progress, tracker, report)
    except KeyboardInterrupt:
        # Ctrl-C lands mid-round, and the coordinator would take a close call only once the round is
        # over: it is killed below at once, and with the driver's end Ray ends the job's other actors.
        raise
    except BaseException:
        # A Tune scheduler stops a trial by raising SystemExit in its report, between rounds. Killed
        # under a live worker group, Ray Train would restart the group as the trial dies and leave
        # the new group's placement group holding CPUs: the next trial's reads then wait forever.
        try:
            ray.get(coordinator.close.remote(), timeout=CLOSE_TIMEOUT_S)
        except Exception:  # the coordinator itself failed; the kill below is all that is left
            pass
        raise
    finally:
        ray.kill(coordinator)
        if tracker:
            tracker.close()


def _rounds_and_targets(
    plan: RunPlan,
    store: RunStore,
    coordinator,
    target_rounds: list[int] | None,
    on_target: Callable[[dict], None] | None,
    progress: RunProgress | None,
    tracker,
    report: Callable[[dict], None],
) -> dict:
    """run_rounds' work once the coordinator runs: the rounds, the target fits, the coordinator's
    graceful close and the tracker's plots; run_rounds' result."""
    records, waiting = _rounds(plan, coordinator, progress, report)
    if waiting is not None:
        target_rounds = []
    elif target_rounds is None:
        target_rounds = [records[-1]["round"]] if plan.config.train_target_at_end else []
    targets = {r: _fit_target(r, coordinator, progress, on_target, tracker) for r in target_rounds}
    ray.get(coordinator.close.remote())
    if tracker:
        tracker.log_artifacts(_plots(plan, store, records, targets))
    return {
        "records": records,
        "targets": targets,
        "final": targets[target_rounds[-1]] if target_rounds else None,
        "waiting": waiting,
    }


def _start_coordinator(plan: RunPlan, no_progress_timeout_s: float | None, accept_partial: bool):
    # On the driver's node, as Ray Train does with its controller: the run directory is written from there.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    # @ray.remote added options(); mypy sees the class as written
    return Coordinator.options(  # type: ignore[attr-defined]
        scheduling_strategy=here, max_restarts=COORDINATOR_RESTARTS, max_task_retries=COORDINATOR_RESTARTS
    ).remote(plan, no_progress_timeout_s, os.environ.get(HOOK_ENV), accept_partial)


def _rounds(
    plan: RunPlan, coordinator, progress: RunProgress | None, report: Callable[[dict], None]
) -> tuple[list[dict], dict | None]:
    """The committed rounds (reported again), then the rest of the budget, until a stopping criterion
    holds or a round waits for people: (every record, the waiting round's outcome or None)."""
    records = ray.get(coordinator.completed_records.remote())
    for record in records:
        report(record)
    for r in range(len(records), plan.num_rounds):
        if records and "stopped" in records[-1]:  # a stopping criterion ended the run before its budget
            break
        outcome = _await(coordinator.run_round.remote(r), coordinator, progress)
        if "waiting" in outcome:  # round r asked people for labels and waits for their answers
            return records, outcome
        records.append(outcome)
        report(outcome)
    return records, None


def _fit_target(r: int, coordinator, progress: RunProgress | None, on_target, tracker) -> dict:
    """The target from scratch on the labels of round r."""
    fit = _await(coordinator.train_target.remote(r), coordinator, progress)
    if on_target:
        on_target(fit)
    if tracker:
        tracker.log_target(fit)
    return fit


def _await(ref: ray.ObjectRef, coordinator, progress: RunProgress | None):
    """ray.get(ref), feeding `progress` the coordinator's running stage about once a second."""
    if progress is None:
        return ray.get(ref)
    while not ray.wait([ref], timeout=PROGRESS_POLL_S)[0]:
        try:
            stage = ray.get(coordinator.progress.remote(), timeout=PROGRESS_POLL_S)
        except (ray.exceptions.RayError, TimeoutError):  # restarting, or busy: the next poll will tell
            continue
        if stage is not None:
            progress.update(stage["round"], stage["stage"], stage["done"], stage["total"], stage["unit"])
    return ray.get(ref)


def _report_record(record: dict, on_record, progress: RunProgress | None, tracker) -> None:
    if progress is not None:
        progress.round_done(record["round"], record["seconds"]["round"])
    if on_record:
        on_record(record)
    if tracker:
        tracker.log_round(record)


def _plots(plan: RunPlan, store: RunStore, records: list[dict], targets: dict) -> list:
    """The run's own plots (selection time, update per round, target accuracy), for the tracker."""
    from pipeline.report.summary import plot, summarize

    summary = summarize(
        {plan.config.strategy: {"records": records, "targets": targets}},
        {f"{100 * r['labelled'] / plan.data.pool_size:g}%": r["round"] for r in records if r["round"] in targets},
        plan.data.pool_size,
    )
    out_dir = Path(store.storage.path("plots"))
    out_dir.mkdir(exist_ok=True)
    return plot(summary, out_dir)

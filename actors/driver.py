"""The driver: join (or start) Ray, run every round through the coordinator actor, fit the target.

`clactive run`, `clactive compare`, Tune trials and the benchmarks all run rounds through here.
"""
from __future__ import annotations

import os
from typing import Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.cluster import connect
from actors.coordinator import Coordinator
from actors.resources import check_fits
from pipeline.faults import HOOK_ENV
from pipeline.preflight import RunPlan
from pipeline.run_store import RunStore

COORDINATOR_RESTARTS = 3  # a coordinator that dies is restarted and reloads the run directory
CLOSE_TIMEOUT_S = 60  # a graceful stop of the learner's worker group, when a run is interrupted


def run_rounds(plan: RunPlan, on_record: Callable[[dict], None] | None = None,
               on_target: Callable[[dict], None] | None = None, no_progress_timeout_s: float | None = None,
               target_rounds: list[int] | None = None, accept_partial: bool = False) -> dict:
    """Every round of the run through the coordinator actor (`on_record` gets each record, the
    committed ones first), then the target from scratch on the labels of each of `target_rounds`
    (default: the last round, when `config.train_target_at_end`; `on_target` gets each fit).

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
    if not RunStore(config.run_dir).holds_run():
        RunStore.create(config.run_dir, config)
    # On the driver's node, as Ray Train does with its controller: the run directory is written from there.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    coordinator = Coordinator.options(scheduling_strategy=here, max_restarts=COORDINATOR_RESTARTS,
                                      max_task_retries=COORDINATOR_RESTARTS).remote(
        plan, no_progress_timeout_s, os.environ.get(HOOK_ENV), accept_partial)
    try:
        records = ray.get(coordinator.completed_records.remote())
        for record in records if on_record else []:
            on_record(record)
        waiting = None
        for r in range(len(records), plan.num_rounds):
            outcome = ray.get(coordinator.run_round.remote(r))
            if "waiting" in outcome:  # round r asked people for labels and waits for their answers
                waiting = outcome
                break
            records.append(outcome)
            if on_record:
                on_record(outcome)
        if waiting is not None:
            target_rounds = []
        elif target_rounds is None:
            target_rounds = [plan.last_round] if config.train_target_at_end else []
        targets = {}
        for r in target_rounds:
            targets[r] = ray.get(coordinator.train_target.remote(r))
            if on_target:
                on_target(targets[r])
        ray.get(coordinator.close.remote())
        return {"records": records, "targets": targets, "final": targets[target_rounds[-1]] if target_rounds else None,
                "waiting": waiting}
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

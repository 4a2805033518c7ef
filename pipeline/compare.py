"""`clactive compare`: every strategy from the same initial set, on the same schedule and scoring
protocol, in one run; then the target from scratch on each strategy's labels at each budget.

    COMPARE_DIR/
      <strategy>/        a run directory each (resumable on its own; target fits in targets/)
      results.json       every figure, with date, machine and command
      table.md           strategy x budget, and the speed-ups
      *.png              target accuracy vs labels, cumulative selection time, update per round

Re-running the same command continues: finished strategies are read back, not run again; an
interrupted one resumes after its last committed round; finished target fits are reused.
"""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from actors.decode import ray_data_map
from pipeline.config.run_config import BatchConfig, RunConfig, Size, check_size, config_from_raw, read_with_section
from pipeline.config.schedule import to_count
from pipeline.config.sections import build_section
from pipeline.errors import ConfigError
from pipeline.loop.preflight import RunPlan, plan_run, preflight
from pipeline.loop.run_store import RunStore
from pipeline.report.progress import make_progress
from pipeline.report.round_table import RoundTable
from pipeline.report.summary import TUNED, summarize, table, write
from pipeline.selection.acquisition import ACQUISITIONS
from pipeline.update.strategies import STRATEGIES
from tune.space import apply

_READING_ORDER = ("full", "svp", "clactive", "finetune")  # baselines first; other strategies follow, by name
STRATEGY_ENTRIES = tuple(
    sorted(
        STRATEGIES.names(),
        key=lambda name: (_READING_ORDER.index(name) if name in _READING_ORDER else len(_READING_ORDER), name),
    )
)
# An entry named after an acquisition is the clactive engine selecting with it, beside the run's own
# acquisition: `random` (selection without any model) is the control every compare runs by default.
ACQUISITION_ENTRIES = tuple(name for name in ACQUISITIONS.names() if name not in STRATEGY_ENTRIES)
DEFAULT_ENTRIES = STRATEGY_ENTRIES + ("random",)
KNOWN = STRATEGY_ENTRIES + ACQUISITION_ENTRIES + (TUNED,)  # tuned: clactive with compare.tuned's chosen settings
# --quick: a smoke run on any dataset, minutes on 2 cores
QUICK = [
    "schedule.initial=0.01",
    "schedule.round_ends=[0.02, 0.03]",
    "schedule.round_size=null",
    "schedule.rounds=null",
    "proxy.epochs=2",
    "target.epochs=1",
    "update.steps=50",
    "compare.budgets=[0.02, 0.03]",
]


@dataclass(frozen=True)
class CompareConfig:
    dir: str = "runs/compare"
    strategies: tuple[str, ...] = DEFAULT_ENTRIES
    # labelled totals at which the target is fitted from scratch; each must end a round (null: none)
    budgets: tuple[Size, ...] | None = (0.2, 0.5)
    # a `clactive tune` directory: its chosen trial's settings run as the `tuned` entry (added when unlisted)
    tuned: str | None = None
    # more entries of the clactive engine, by name, each with run-config keys of its own (added when
    # unlisted), e.g. {power: {batch.sampling: power}, near: {scoring.candidates_from: neighbours}}
    variants: dict[str, dict[str, str | int | float | bool]] = field(default_factory=dict)


def load(path: str | None, overrides: list[str], quick: bool, data_dir: str | None) -> tuple[RunConfig, CompareConfig]:
    raw, section = read_with_section(path, (QUICK if quick else []) + list(overrides), "compare")
    section = build_section(CompareConfig, section or {}, "compare")
    for name in section.variants:
        if name in KNOWN:
            raise ConfigError(f"compare.variants.{name} would hide the entry of that name: name the variant otherwise")
    section = replace(
        section, strategies=(*section.strategies, *(v for v in section.variants if v not in section.strategies))
    )
    for name in section.strategies:
        if name not in KNOWN and name not in section.variants:
            raise ConfigError(f"unknown compare.strategies entry '{name}': choose from {', '.join(KNOWN)}")
    if len(set(section.strategies)) != len(section.strategies):
        raise ConfigError("compare.strategies names a strategy twice: list each once")
    for i, budget in enumerate(section.budgets or ()):
        check_size(f"compare.budgets[{i}]", budget)
    if TUNED in section.strategies and section.tuned is None:
        raise ConfigError(
            "compare.strategies lists tuned, but compare.tuned names no search: set it to a clactive tune directory"
        )
    if section.tuned is not None and TUNED not in section.strategies:
        section = replace(section, strategies=(*section.strategies, TUNED))
    if quick:
        section = replace(section, dir=section.dir.rstrip("/") + "-quick")
    base = config_from_raw(raw, (), **{"data.data_dir": data_dir})
    if base.oracle != "simulated":
        raise ConfigError(
            f"oracle = {base.oracle}: compare runs every strategy unattended, with the simulated "
            "oracle; drop the oracle key (people label one run at a time, with clactive run)"
        )
    if base.stopping:
        raise ConfigError(
            "stopping: would end each strategy at a budget of its own, but compare measures them all at "
            "the same budgets: drop the stopping key (it is for clactive run)"
        )
    return base, section


def entry_config(base: RunConfig, section: CompareConfig, name: str) -> RunConfig:
    if name == TUNED:
        from tune.report import chosen_params

        base = apply(base.to_dict(), chosen_params(Path(section.tuned or "")), where="compare.tuned")
        strategy, acquisition = "clactive", base.acquisition
    elif name in section.variants:
        base = apply(
            base.to_dict(), {"strategy": "clactive", **section.variants[name]}, where=f"compare.variants.{name}"
        )
        strategy, acquisition = base.strategy, base.acquisition
    elif name in STRATEGY_ENTRIES:
        strategy, acquisition = name, base.acquisition
    else:  # an acquisition's entry; `random`, the control, keeps the default batch rule (top k of uniform scores)
        strategy, acquisition = "clactive", name
        if name == "random":
            base = replace(base, batch=BatchConfig())
    return replace(
        base,
        strategy=strategy,
        acquisition=acquisition,
        train_target_at_end=False,
        run_dir=str(Path(section.dir) / name),
    )


def budget_rounds(section: CompareConfig, plan: RunPlan) -> dict[str, int]:
    """Budget label, as the config writes the budget ("20%" for 0.2, "3000 labels" for 3000) -> the index of
    the round whose labelled total it is."""
    ends = [plan.initial_size]
    for size in plan.round_sizes:
        ends.append(ends[-1] + size)
    pool_size = plan.data.pool_size
    out = {}
    for budget in section.budgets or ():
        count = to_count(budget, pool_size)
        if count not in ends:
            raise ConfigError(
                f"compare.budgets {budget} is {count} labels, which no round ends at (rounds end at "
                f"{', '.join(map(str, ends))}): pick budgets from the schedule's round ends"
            )
        out[f"{100 * budget:g}%" if isinstance(budget, float) else f"{budget} labels"] = ends.index(count)
    return out


def main(args: argparse.Namespace) -> int:
    base, section = load(args.config, args.overrides, args.quick, args.data_dir)
    from actors.cluster import connect  # Ray is imported only when a run starts

    base_plan = preflight(base, parallel_map=ray_data_map(lambda: connect(args.address, args.verbose)))
    data, num_rounds = base_plan.data, base_plan.num_rounds
    budgets = budget_rounds(section, base_plan)
    plans = {name: plan_run(entry_config(base, section, name), data) for name in section.strategies}
    for config in (plan.config for plan in plans.values()):  # refuse a changed config before any strategy runs
        if RunStore(config.run_dir).holds_run():
            RunStore.open(config.run_dir, config)
        else:
            RunStore.check_new(config.run_dir)
    print(
        f"clactive compare: {', '.join(section.strategies)} on {data.dataset} ({data.pool_size} pool), "
        f"{num_rounds} rounds, target at {', '.join(budgets) or 'no budget'} -> {section.dir}",
        flush=True,
    )
    print(
        f"every strategy scores {scored(base)} each round: batch {base.scoring.batch_size}, "
        f"{base.scoring.actors} actor(s)",
        flush=True,
    )

    connect(args.address, args.verbose)
    entries = {name: run_entry(name, plan, num_rounds, section, budgets, args.quiet) for name, plan in plans.items()}
    summary = summarize(entries, budgets, data.pool_size)
    paths = write(summary, Path(section.dir), results_meta(base, base_plan, args.command_line))
    print(table(summary), end="")
    print("wrote " + ", ".join(str(p) for p in paths), flush=True)
    return 0


def run_entry(
    name: str, plan: RunPlan, num_rounds: int, section: CompareConfig, budgets: dict[str, int], quiet: bool
) -> dict:
    """One strategy's records and target fits: read back when it finished earlier, else run (or resumed)."""
    from actors.driver import run_rounds

    config = plan.config
    fits = [] if config.strategy == "full" else list(budgets.values())  # full fits the target every round
    done = finished(config.run_dir, num_rounds, fits)
    if done is not None:
        print(f"== {name}: done earlier, read from {config.run_dir}", flush=True)
        return done
    print(f"== {name} ({config.strategy} / {config.acquisition})", flush=True)
    progress = make_progress(num_rounds, quiet)
    printed = RoundTable(progress.write)
    # one MLflow experiment per compare, a run per strategy, one store in the compare's directory
    tracking = {
        "experiment": Path(section.dir).name,
        "run_name": name,
        "store_dir": str(Path(section.dir).absolute()),
    }
    try:
        result = run_rounds(
            plan,
            on_record=printed.row,
            on_target=printed.target,
            target_rounds=fits,
            progress=progress,
            tracking=tracking,
        )
    finally:
        progress.close()
    return {"records": result["records"], "targets": result["targets"]}


def results_meta(base: RunConfig, base_plan: RunPlan, command_line: str) -> dict:
    """What results.json records beside the figures: when, where, the command, the shared protocol."""
    data = base_plan.data
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": command_line,
        "dataset": data.dataset,
        "pool_size": data.pool_size,
        "rounds": base_plan.num_rounds,
        "scoring_protocol": {
            "candidates": scored(base),
            "batch_size": base.scoring.batch_size,
            "actors": base.scoring.actors,
        },
        "schedules": {
            "proxy_epochs": base.proxy.epochs,
            "target_epochs": base.target.epochs,
            "update_steps": base.update.steps,
            "memory_ratio": base.memory.ratio,
        },
    }


def scored(config: RunConfig) -> str:
    """What every strategy of the compare scores each round: one protocol for all."""
    size = config.scoring.candidates
    if size is None:
        return "all unlabelled pool examples"
    what = f"{100 * size:g}% of the unlabelled pool" if isinstance(size, float) else f"{size} unlabelled pool examples"
    return f"a random {what} (scoring.candidates)"


def finished(run_dir: str | Path, num_rounds: int, fits: list[int]) -> dict | None:
    """A strategy's records and target fits (by round) in `run_dir`, when all are committed; None otherwise."""
    store = RunStore(run_dir)
    if not store.holds_run():
        return None
    records = store.records()
    targets = {k: store.read_json(f"targets/{k:04d}.json") for k in fits}
    if len(records) < num_rounds or any(fit is None for fit in targets.values()):
        return None
    return {"records": records, "targets": targets}


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )

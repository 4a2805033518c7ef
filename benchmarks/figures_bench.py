"""benchmarks/README.md's generated sections (benchmarks/figures.py calls fill_bench_readme): what was
measured where, the hand-timed make runs, the multi-seed compare and the tune search. The systems
benchmarks' sections are benchmarks/figures_systems.py's. Every figure comes from benchmarks/results/."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import figures_systems
from benchmarks.figures_text import fill, read_text, tune_choice, tune_summary

DERIVED = ("fashion_mnist.json", "class_incremental.json", "make_timings.json")  # not measurements of their own
RUN_OUTPUTS = (
    "compare/results.json",
    "long_horizon/results.json",
    "class_incremental/results.json",
    "tune/trials.json",
)
SEED_ROWS = [
    "target_acc_full_at_20",
    "target_acc_svp_at_20",
    "target_acc_clactive_at_20",
    "target_acc_random_at_20",
    "target_acc_full_at_50",
    "target_acc_svp_at_50",
    "target_acc_clactive_at_50",
    "target_acc_random_at_50",
    "target_acc_clactive_minus_full_at_50",
    "target_acc_clactive_minus_random_at_20",
    "speedup_vs_full_at_50",
    "speedup_vs_svp_at_50",
    "update_speedup_vs_svp_at_50",
    "clactive_scoring_share_at_50",
    "target_acc_cluster_margin_at_20",
    "target_acc_cluster_margin_at_50",
    "target_acc_cluster_margin_minus_clactive_at_20",
    "target_acc_cluster_margin_minus_random_at_20",
]
BEFORE_IDLE = Path("seeds") / "before_idle_workers" / "c10000-s0-clactive.json"
AFTER_IDLE = Path("seeds") / "c10000-s0" / "clactive.json"


def read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def sources(results: Path) -> list[tuple[str, dict]]:
    """Every measurement's JSON under `results`, by path: the scripts' own, then the runs' outputs."""
    names = sorted(p.name for p in results.glob("*.json") if p.name not in DERIVED) + list(RUN_OUTPUTS)
    return [(name, data) for name in names if (data := read(results / name)) is not None]


def sitting_machines(results: Path) -> list[str]:
    seeds = read(results / "seeds.json") or {"protocols": {}}
    return [
        machine.rsplit(", ", 1)[0]
        for protocol in seeds["protocols"].values()
        for seed in sorted(protocol.get("sittings", {}))
        for machine in protocol["sittings"][seed]
    ]


def machines(results: Path) -> dict[str, str]:
    """Each distinct machine string -> its short name, in order of first appearance."""
    found = [data["machine"] for _, data in sources(results) if data.get("machine")] + sitting_machines(results)
    return {machine: f"machine {i + 1}" for i, machine in enumerate(dict.fromkeys(found))}


def measurement_lines(results: Path) -> list[str]:
    names = machines(results)
    lines = ["| JSON under benchmarks/results/ | command | date | machine |", "|---|---|---|---|"]
    for name, data in sources(results):
        command = data.get("command") or "; ".join(data.get("commands", []))
        machine = names.get(data.get("machine", ""), "not noted")
        cells = [f"`{name}`", f"`{command}`" if command else "not noted", str(data.get("date", ""))[:10], machine]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ["", *(f"- {short}: {machine}" for machine, short in names.items())]


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def timing_lines(results: Path) -> list[str]:
    timings = read(results / "make_timings.json")
    if timings is None:
        return []
    lines = [
        f"`benchmarks/results/make_timings.json`: {timings['source']}; {timings['machine']}.",
        "",
        "| date | command | venv | wall | pytest | tests | note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for run in timings["runs"]:
        cells = [run["date"], f"`{run['command']}`", run["venv"], _minutes(run["wall_s"])]
        note = "; ".join(part for part in (run.get("commit"), run.get("machine"), run.get("note")) if part)
        cells += [_minutes(run.get("pytest_s")), str(run.get("tests", "-")), note]
        lines.append("| " + " | ".join(cells) + " |")
    for run in timings["runs"]:
        if "train_worker_groups" in run:
            lines += [
                "",
                f"The {run['date']} {run.get('note', '')} `{run['command']}` started {run['train_worker_groups']} Ray "
                f"Train worker groups, whose controllers took {run['controller_start_s_mean']} s each on average "
                "from their first log line on the head.",
            ]
    return lines


def seed_cell(protocol: dict, key: str) -> str:
    value = protocol.get("figures", {}).get(key)
    if not value or value["mean"] is None:
        return "-"
    text = f"{value['mean']:.4g}" + ("" if value["std"] is None else f" ± {value['std']:.2g}")
    over = sorted(int(seed) for seed, v in value.get("seeds", {}).items() if v is not None)
    if over != protocol["seeds_done"]:  # an extra that ran on some of the seeds only
        text += f" (seeds {', '.join(map(str, over))})"
    return text


def seed_lines(seeds: dict) -> list[str]:
    """The multi-seed table: each figure's mean ± sample std per protocol, with the seeds it is over."""
    protocols = seeds["protocols"]
    names = list(protocols)
    head = " | ".join(
        f"{name} (seeds {', '.join(map(str, p['seeds_done'])) or 'none yet'})" for name, p in protocols.items()
    )
    lines = [
        f"Over several seeds (`python -m benchmarks.seeds run` then `gather`; {seeds['date'][:10]}): mean ± "
        "sample std over the seeds done, per scoring protocol (whole: every unlabelled example scored each "
        f"round; candidates: a random {protocols.get('candidates', {}).get('candidates')} of them, "
        "scoring.candidates). Seeds still missing: "
        + "; ".join(f"{n}: {', '.join(map(str, p['seeds_missing'])) or 'none'}" for n, p in protocols.items())
        + ".",
        "",
        f"| figure | {head} |",
        "|---|" + "---:|" * len(names),
    ]
    lines += [f"| {key} | " + " | ".join(seed_cell(protocols[n], key) for n in names) + " |" for key in SEED_ROWS]
    return lines + [""]


def sitting_lines(seeds: dict, names: dict[str, str]) -> list[str]:
    """Where and from which commits each protocol's seeds ran (seeds.json's sittings and code)."""
    lines = ["| protocol | seed | sittings | commits |", "|---|---:|---|---|"]
    for protocol_name, protocol in seeds["protocols"].items():
        for seed in sorted(protocol.get("sittings", {}), key=int):
            sittings = []
            for text in protocol["sittings"][seed]:
                machine, day = text.rsplit(", ", 1)
                sittings.append(f"{names.get(machine, machine)} ({day})")
            code = protocol.get("code", {}).get(seed, {})
            commits = "; ".join(f"{name} {', '.join(ids)}" for name, ids in code.items())
            lines.append(f"| {protocol_name} | {seed} | {', '.join(sittings)} | {commits} |")
    return lines


def run_costs(run: dict) -> list[str]:
    score = sum(r["seconds"]["score"] for r in run["records"])
    scored = sum(r["seconds"]["score"] > 0 for r in run["records"])
    fits = [f"{t['target_acc']:.4f}" for _, t in sorted(run["targets"].items(), key=lambda kv: int(kv[0]))]
    return [run["date"][:10], f"{score:.1f} ({scored} rounds)", f"{run['records'][0]['seconds']['round']:.1f}"] + fits


def idle_worker_lines(results: Path) -> list[str]:
    before, after = read(results / BEFORE_IDLE), read(results / AFTER_IDLE)
    if before is None or after is None:
        return []
    budgets = ", ".join(
        f"{t['labelled']} labels" for _, t in sorted(after["targets"].items(), key=lambda kv: int(kv[0]))
    )
    return [
        "",
        f"clactive, seed {after['seed']}, {after['candidates']} candidates, before and after idle task workers were "
        f"kept (`benchmarks/results/{BEFORE_IDLE.as_posix()}` and `.../{AFTER_IDLE.as_posix()}`):",
        "",
        f"| run | date | scoring s | round 0 s | target acc at {budgets} |",
        "|---|---|---:|---:|---|",
        "| before | " + " | ".join(run_costs(before)[:3]) + " | " + ", ".join(run_costs(before)[3:]) + " |",
        "| after | " + " | ".join(run_costs(after)[:3]) + " | " + ", ".join(run_costs(after)[3:]) + " |",
    ]


def seed0_against_compare(seeds: dict, compare: dict | None) -> list[str]:
    """How many of seed 0's (whole pool) target accuracies equal the one-seed compare's, to four digits."""
    if compare is None or "0" not in seeds["protocols"].get("whole", {}).get("sittings", {}):
        return []
    figures = seeds["protocols"]["whole"]["figures"]
    pairs = []
    for name, strategy in compare["strategies"].items():
        for label, at in strategy["at"].items():
            mine = figures.get(f"target_acc_{name}_at_{label.rstrip('%')}", {}).get("seeds", {}).get("0")
            if mine is not None and at.get("target_acc") is not None:
                pairs.append(round(mine, 4) == round(at["target_acc"], 4))
    return [
        "",
        f"Seed 0 of the whole-pool protocol against the one-seed compare of {compare['date'][:10]}: "
        f"{sum(pairs)} of {len(pairs)} target accuracies (strategy and budget) equal to the fourth digit.",
    ]


def seeds_section(results: Path) -> list[str]:
    seeds = read(results / "seeds.json")
    if seeds is None:
        return []
    lines = seed_lines(seeds) + sitting_lines(seeds, machines(results)) + idle_worker_lines(results)
    return lines + seed0_against_compare(seeds, read(results / "compare" / "results.json"))


def tune_section(search: dict | None, results: Path) -> list[str]:
    table = read_text(results / "tune" / "trials.md")
    if not search or table is None:
        return []
    return [
        tune_summary(search),
        "",
        table,
        "",
        "![accuracy vs selection time](results/tune/pareto.png)",
        "",
        *tune_choice(search, "benchmarks/results/tune/best.yaml"),
    ]


def fill_bench_readme(text: str, search: dict | None, results: Path) -> str:
    sections = {
        "measurements": measurement_lines(results),
        "timings": timing_lines(results),
        "seeds": seeds_section(results),
        "tune": tune_section(search, results),
        **figures_systems.sections(results),
    }
    for name, lines in sections.items():
        text = fill(text, name, lines or ["(not measured)"])
    return text

"""Gather every measured figure into `benchmarks/results/fashion_mnist.json`, the README's generated
sections and benchmarks/README.md's.

Reads what the other scripts wrote, never a number of its own:
  the compare directory (clactive compare --config configs/fashion_mnist_compare.yaml)
  the long-horizon directory (clactive compare --config configs/fashion_mnist_long.yaml)
  the class-incremental directory (clactive compare --config configs/fashion_mnist_class_incremental.yaml),
    whose figures go to benchmarks/results/class_incremental.json
  the tune directory (clactive tune --config configs/fashion_mnist_tune.yaml): trials, Pareto plot, best.yaml
  benchmarks/results/*.json (the benchmark scripts' own) and seeds.json (benchmarks/seeds.py gather)
copies the compare and tune outputs (results.json, table.md, plots) under benchmarks/results/ when their
directories exist here, marks each target met or missed, and rewrites the sections between the
`<!-- NAME:begin ... -->` and `<!-- NAME:end -->` markers of README.md and benchmarks/README.md. What it
writes depends on benchmarks/results/ alone (no clock, no machine), so tests/unit/test_figures.py
regenerates it and fails when a committed file differs. A source that is missing leaves its figures
null and its targets "not measured".

    .venv/bin/python -m benchmarks.figures
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from benchmarks import figures_bench, figures_text
from benchmarks.figures_targets import (
    CLASS_INCREMENTAL_TARGETS,
    SEEDED,
    SEEDED_CANDIDATES,
    TARGET_SEEDS,
    TARGETS,
)

RESULTS = Path(__file__).parent / "results"
README = Path(__file__).parent.parent / "README.md"
BENCH_README = Path(__file__).parent / "README.md"
COPIED = (
    "results.json",
    "table.md",
    "target_accuracy.png",
    "selection_time.png",
    "update_per_round.png",
    "acc_seen.png",
    "forgetting.png",
)
TUNE_COPIED = ("trials.md", "trials.json", "pareto.png", "best.yaml")
# the benchmark scripts' JSON that the targets read (benchmarks/results/<name>.json)
BENCH_SOURCES = ("scoring_throughput", "round_costs", "driver_rss", "scale", "plain_loop")


def read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def copy_outputs(source_dir: Path, name: str, index: str = "results.json", files=COPIED) -> dict | None:
    """The `index` JSON of a run's output directory, with its `files` copied to benchmarks/results/<name>/."""
    results = read(source_dir / index)
    if results is None:  # run on another machine: what an earlier run copied here still stands
        return read(RESULTS / name / index)
    out = RESULTS / name
    out.mkdir(parents=True, exist_ok=True)
    for file in files:
        if (source_dir / file).is_file():
            shutil.copyfile(source_dir / file, out / file)
    return results


def long_horizon(results: dict | None) -> dict:
    if results is None:
        return {}
    last = {name: s["per_round"][-1] for name, s in results["strategies"].items()}
    if not {"svp", "clactive"} <= set(last):
        return {}
    labelled = [row["labelled"] for row in results["strategies"]["clactive"]["per_round"]]
    return {
        "rounds_after_initial": len(labelled) - 1,
        "labelled_initial": labelled[0],
        "round_size": labelled[1] - labelled[0] if len(labelled) > 1 else None,
        "labelled_at_last_round": last["clactive"]["labelled"],
        "update_speedup": last["svp"]["cum_update_s"] / last["clactive"]["cum_update_s"],
        "selection_speedup": last["svp"]["cum_selection_s"] / last["clactive"]["cum_selection_s"],
        "proxy_acc_last_round": {name: row["selection_acc"] for name, row in last.items()},
        "proxy_acc_clactive_minus_svp": last["clactive"]["selection_acc"] - last["svp"]["selection_acc"],
    }


def compare_figures(compare: dict | None, horizon: dict) -> dict:
    """The one-seed compare's figures at 50% and the long horizon's (seeds.json, when there, replaces some)."""
    at50 = (compare or {}).get("speedups", {}).get("50%", {})
    minus_full = at50.get("target_acc_minus_full")
    return {
        "speedup_vs_full_at_50": at50.get("selection_vs_full"),
        "speedup_vs_svp_at_50": at50.get("selection_vs_svp"),
        "clactive_scoring_share_at_50": at50.get("clactive_scoring_share"),
        "update_speedup_vs_svp_at_50": at50.get("update_vs_svp"),
        "update_speedup_vs_full_at_50": at50.get("update_vs_full"),
        "target_acc_clactive_minus_full_at_50": None if minus_full is None else 100 * minus_full,
        "update_speedup_vs_svp_long_horizon": horizon.get("update_speedup"),
        "long_horizon": horizon or None,
        "target_acc_at_50": {
            name: s["at"]["50%"]["target_acc"]
            for name, s in (compare or {}).get("strategies", {}).items()
            if "50%" in s["at"]
        }
        or None,
    }


def bench_figures(bench: dict) -> dict:
    """The headline ratio of each benchmark script's JSON (None where it was not measured)."""
    throughput, rounds, rss, scale, plain = (bench[name] or {} for name in BENCH_SOURCES)
    return {
        "update_time_ratio_last_first": rounds.get("update_time_ratio_last_first"),
        "scoring_throughput_ratio": throughput.get("throughput_ratio_at_config"),
        "driver_rss_ratio_600k_60k": rss.get("driver_rss_ratio"),
        "overhead_share": rounds.get("overhead_share"),
        "cluster_margin_scorer_rss_ratio": scale.get("cluster_margin_scorer_rss_ratio"),
        "cluster_margin_coordinator_rss_ratio": scale.get("cluster_margin_coordinator_rss_ratio"),
        "selection_ratio_vs_plain": plain.get("selection_ratio_vs_plain"),
    }


def gather(results: Path | None = None) -> dict:
    """fashion_mnist.json: every figure the targets read, from what lies in `results` (default RESULTS)."""
    results = RESULTS if results is None else results
    compare = read(results / "compare" / "results.json")
    horizon_results = read(results / "long_horizon" / "results.json")
    horizon = long_horizon(horizon_results)
    bench = {name: read(results / f"{name}.json") for name in BENCH_SOURCES}
    seeds = read(results / "seeds.json")
    figures = {**compare_figures(compare, horizon), **bench_figures(bench), **seeded(seeds)}
    sources = [x for x in (compare, horizon_results, *bench.values()) if x and x.get("command")]
    measured = [{"command": x["command"], "date": str(x.get("date", ""))[:10]} for x in sources]
    if seeds:
        command = "python -m benchmarks.seeds run; python -m benchmarks.seeds gather"
        measured.append({"command": command, "date": seeds["date"][:10]})
    return {
        "date": max((m["date"] for m in measured), default=""),  # the newest measurement's: no clock here
        "command": [m["command"] for m in measured],
        "measured": measured,
        **figures,
        "targets": judge(figures, horizon),
    }


def seeds_of(spread: dict) -> list[int]:
    """The seeds a figure's mean is over (seeds.json keys them as text; None: not measured there)."""
    return sorted(int(seed) for seed, value in spread.get("seeds", {}).items() if value is not None)


def _mean(protocol: dict, key: str) -> float | None:
    return protocol.get("figures", {}).get(key, {}).get("mean")


def _over(protocol: dict, key: str) -> list[int]:
    return seeds_of(protocol.get("figures", {}).get(key, {}))


def _at_seed(protocol: dict, key: str, seed: int) -> float:
    return protocol["figures"][key]["seeds"][str(seed)]


def seeded(seeds: dict | None) -> dict:
    """The multi-seed figures (benchmarks/seeds.py's seeds.json): means of the seeds done, their
    spread, which seeds, and the candidates protocol against the whole pool. {} without seeds.json."""
    if seeds is None:
        return {}
    whole, subset = seeds["protocols"].get("whole", {}), seeds["protocols"].get("candidates", {})
    out = {
        "seeds": whole.get("seeds_done", []),
        "seeds_candidates": subset.get("seeds_done", []),
        "clactive_scoring_share_at_50_candidates": _mean(subset, "clactive_scoring_share_at_50"),
        "clactive_scoring_share_at_50_candidates_seeds": _over(subset, "clactive_scoring_share_at_50"),
    }
    if whole.get("seeds_done"):
        for key in SEEDED:
            out[key] = _mean(whole, key)
            out[f"{key}_std"] = whole["figures"].get(key, {}).get("std")
            out[f"{key}_seeds"] = _over(whole, key)
    for key in SEEDED_CANDIDATES:
        if _over(subset, key):
            out[key], out[f"{key}_seeds"] = _mean(subset, key), _over(subset, key)
    for budget in ("20", "50"):  # paired: over the seeds both protocols have
        key = f"target_acc_clactive_at_{budget}"
        both = sorted(set(_over(subset, key)) & set(_over(whole, key)))
        per_seed = [100 * (_at_seed(subset, key, seed) - _at_seed(whole, key, seed)) for seed in both]
        out[f"target_acc_candidates_minus_whole_at_{budget}"] = statistics.fmean(per_seed) if both else None
        out[f"target_acc_candidates_minus_whole_at_{budget}_seeds"] = both
    return out


def judge(figures: dict, horizon: dict) -> list[dict]:
    out = []
    for key, figure, target, met in TARGETS:
        value = figures.get(key)
        if value is None:
            verdict = "not measured"
        elif key == "update_speedup_vs_svp_long_horizon":
            close = abs(horizon["proxy_acc_clactive_minus_svp"]) <= 0.01
            verdict = "met" if value >= 10 and close else "missed"
        elif met is None:
            verdict = "reported"
        else:
            verdict = "met" if met(value) else "missed"
        seeds = figures.get(f"{key}_seeds")
        if value is not None and seeds is not None and len(seeds) < TARGET_SEEDS:
            verdict += f", {len(seeds)} of {TARGET_SEEDS} seeds"  # a mean of 3 seeds is what the target asks for
        out.append({"key": key, "figure": figure, "target": target, "measured": value, "verdict": verdict})
    return out


def class_incremental(results: dict | None) -> dict | None:
    """Per strategy at the last round: the selection model's accuracy on seen classes and its
    forgetting, and the target fitted on the strategy's labels, tested on the seen classes."""
    if results is None:
        return None
    last = {name: s["per_round"][-1] for name, s in results["strategies"].items() if s["per_round"]}
    target = {
        name: next((at.get("target_acc_seen") for at in s["at"].values()), None)
        for name, s in results["strategies"].items()
    }
    forget = {n: row.get("forgetting") for n, row in last.items()}
    proxy_seen = {n: row.get("acc_seen") for n, row in last.items()}
    measured: dict[str, float | None] = {}
    if forget.get("clactive") is not None and forget.get("finetune") is not None:
        measured["forgetting"] = forget["clactive"] / forget["finetune"] if forget["finetune"] else None
    for key, seen in (("target_seen", target), ("proxy_seen", proxy_seen)):
        ours, full = seen.get("clactive"), seen.get("full")
        if ours is not None and full is not None:
            measured[key] = 100 * (ours - full)
    checks = []
    for key, value in measured.items():
        figure, goal, met = CLASS_INCREMENTAL_TARGETS[key]
        verdict = "met" if value is not None and met(value) else "missed"
        checks.append({"figure": figure, "target": goal, "measured": value, "verdict": verdict})
    return {
        "date": str(results.get("date", ""))[:10],
        "machine": results.get("machine"),
        "command": results.get("command"),
        "forgetting": forget,
        "acc_seen_last": proxy_seen,
        "target_acc_seen_last": target,
        "targets": checks,
    }


def dumps(payload: dict) -> str:
    return json.dumps(payload, indent=1) + "\n"


def outputs(readme: str | None = None, bench_readme: str | None = None, results: Path | None = None) -> dict:
    """Every file this script writes, path -> its new text, from `results` (default RESULTS) and the
    two READMEs' current texts (default: as they are on disk). Writes nothing."""
    results = RESULTS if results is None else results
    readme = README.read_text() if readme is None else readme
    bench_readme = BENCH_README.read_text() if bench_readme is None else bench_readme
    summary = gather(results)
    incremental = class_incremental(read(results / "class_incremental" / "results.json"))
    search = read(results / "tune" / "trials.json")
    out = {results / "fashion_mnist.json": dumps(summary)}
    if incremental is not None:
        out[results / "class_incremental.json"] = dumps(incremental)
    out[README] = figures_text.fill_readme(readme, summary, incremental, search, results)
    out[BENCH_README] = figures_bench.fill_bench_readme(bench_readme, search, results)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-dir", default="runs/compare-fashion_mnist")
    parser.add_argument("--long-dir", default="runs/compare-fashion_mnist-long")
    parser.add_argument("--class-incremental-dir", default="runs/compare-fashion_mnist-class_incremental")
    parser.add_argument("--tune-dir", default="runs/tune-fashion_mnist")
    args = parser.parse_args()
    copy_outputs(Path(args.tune_dir), "tune", "trials.json", TUNE_COPIED)
    copy_outputs(Path(args.class_incremental_dir), "class_incremental")
    copy_outputs(Path(args.compare_dir), "compare")
    copy_outputs(Path(args.long_dir), "long_horizon")
    written = outputs()
    for path, text in written.items():
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path}")
    summary = json.loads(written[RESULTS / "fashion_mnist.json"])
    for t in summary["targets"]:
        value = "n/a" if t["measured"] is None else f"{t['measured']:.4g}"
        print(f"{t['verdict']:>12}  {value:>8}  {t['target']:>8}  {t['figure']}")


if __name__ == "__main__":
    main()

"""The Fashion-MNIST compare over several seeds and two scoring protocols, as mean ± std.

    .venv/bin/python -m benchmarks.seeds run  [--seeds 0 1 2] [--protocol whole|candidates] [--strategies ...]
                                                   # hours; resumable
    .venv/bin/python -m benchmarks.seeds save      # keep what finished
    .venv/bin/python -m benchmarks.seeds curve     # random's target at 30% and 40% too (label efficiency)
    .venv/bin/python -m benchmarks.seeds gather    # writes seeds.json

`run` runs `clactive compare --config configs/fashion_mnist_compare.yaml` once per (protocol, seed,
strategy), all strategies of a seed in one directory (runs/compare-fashion_mnist-s<seed>[-c<candidates>]):
full, svp, clactive and random, then the extras (cluster_margin: the clactive engine selecting with
Cluster-Margin instead of least confidence; VARIANTS: least confidence's batch drawn by power or softrank
sampling, class-balanced, or from the labelled set's neighbours), first with every strategy scoring the whole unlabelled
pool (the paper's protocol), then with every strategy scoring the same random `--candidates` of it
(scoring.candidates). Run it again after an interruption: an interrupted strategy resumes after its
last committed round.

Hours outlast a sitting, and a sitting's run directories do not outlast its machine: each strategy
that finishes is kept in the repository (benchmarks/results/seeds/<protocol>-s<seed>/<strategy>.json:
its round records and target fits, the machine and the date), and `run` skips what is kept there.
`save` keeps what a `run` of an earlier version of this script finished. Each kept strategy lists
the commits its run started from (`commits`; "+changes" when the code differed from it). `gather`
reads the kept strategies and writes benchmarks/results/seeds.json: per protocol, every figure's per-seed values,
mean and standard deviation, with pipeline.report.summary's definitions. Seeds with one of the four
strategies missing are listed as missing, never filled in; an extra's figures are over the seeds
where it ran (each figure lists its seeds); a seed whose strategies ran in different sittings says so (its
speed-ups then compare times from different machines or days).

Label efficiency (`labels_saved_vs_random_at_20`: clactive's; `..._svp`, `..._full`): how many
labels random needs to reach a strategy's target test accuracy at 20%, interpolated linearly on
random's target curve at 20, 30, 40 and 50% (`curve` re-runs random in its own directory, checks
that it labels what the kept run labelled, and fits the target at 30 and 40%; a seed without them
interpolates between 20 and 50%, which overstates the saving where the curve is concave, and says so
in `labels_saved_curve_points`), as a fraction more than 20%: 0.25 means random needs 25% more
labels. A strategy random does not reach by 50% has
none (more than 1.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import RESULTS, machine
from pipeline.compare import finished
from pipeline.loop.run_store import RunStore
from pipeline.report.summary import summarize

CONFIG = "configs/fashion_mnist_compare.yaml"
STRATEGIES = ("full", "svp", "clactive", "random")  # a seed is summarized when these four are kept
# Least confidence's batch drawn other ways (compare.variants of the clactive engine), at the papers'
# defaults (β = 1, SEALS' 100 neighbours): nothing here is chosen, on test or otherwise.
VARIANTS = {
    "power": {"batch.sampling": "power"},
    "softrank": {"batch.sampling": "softrank"},
    "balanced": {"batch.balance": True},
    "neighbours": {"scoring.candidates_from": "neighbours"},
}
# compared where they ran: pipeline.compare's acquisition entries, then the variants
EXTRAS = ("cluster_margin", *VARIANTS)
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_CANDIDATES = 10_000  # the random subsets of the active-learning literature
BUDGETS = (0.2, 0.5)  # the config's compare.budgets ...
BUDGET_ROUNDS = (2, 5)  # ... end these rounds of its schedule (2% initial, then 10, 20, 30, 40, 50%)
ROUNDS = 6
POOL_SIZE = 60_000  # Fashion-MNIST's training split: the pool
KEPT = RESULTS / "seeds"
CURVE_BUDGETS = (0.3, 0.4)  # random's extra target fits: with BUDGETS, its curve from 20 to 50%
CURVE_ROUNDS = (3, 4)
LABEL_EFFICIENCY = ("clactive", "svp", "full")  # least confidence, each way of selecting with it


def protocol_name(candidates: int | None) -> str:
    return "whole" if candidates is None else f"c{candidates}"


def compare_dir(seed: int, candidates: int | None) -> Path:
    return (
        Path("runs") / f"compare-fashion_mnist-s{seed}"
        if candidates is None
        else Path("runs") / f"compare-fashion_mnist-s{seed}-c{candidates}"
    )


def kept_path(seed: int, candidates: int | None, strategy: str) -> Path:
    return KEPT / f"{protocol_name(candidates)}-s{seed}" / f"{strategy}.json"


def compare_command(seed: int, candidates: int | None, strategies: tuple[str, ...] = STRATEGIES) -> list[str]:
    sets = [
        f"seed={seed}",
        f"compare.dir={compare_dir(seed, candidates)}",
        f"compare.strategies=[{','.join(strategies)}]",
    ]
    if candidates is not None:
        sets.append(f"scoring.candidates={candidates}")
    variants = {name: VARIANTS[name] for name in strategies if name in VARIANTS}
    if variants:
        sets.append(f"compare.variants={json.dumps(variants)}")  # JSON is YAML
    return [
        sys.executable,
        "-m",
        "pipeline",
        "compare",
        "--config",
        CONFIG,
        "--quiet",
        *[arg for s in sets for arg in ("--set", s)],
    ]


def curve_command(seed: int) -> list[str]:
    """random alone, again, fitting the target at CURVE_BUDGETS only (20 and 50% are kept already)."""
    command = compare_command(seed, None, ("random",))
    command[command.index(f"compare.dir={compare_dir(seed, None)}")] = f"compare.dir={compare_dir(seed, None)}-curve"
    budgets = ", ".join(f"{b:g}" for b in CURVE_BUDGETS)
    return [*command, "--set", f"compare.budgets=[{budgets}]"]


def curve_path(seed: int) -> Path:
    return KEPT / f"whole-s{seed}" / "random_curve.json"


def keep_curve(seed: int) -> bool:
    """Keep random's fits at CURVE_BUDGETS once its re-run finished, after checking that it labelled
    what the kept random run labelled (the same selection accuracy every round: the same labels)."""
    done = finished(Path(f"{compare_dir(seed, None)}-curve") / "random", ROUNDS, list(CURVE_ROUNDS))
    if done is None:
        return False
    records, targets = done["records"], done["targets"]
    kept_random = json.loads(kept_path(seed, None, "random").read_text())["records"]
    if [r["selection_acc"] for r in records] != [r["selection_acc"] for r in kept_random]:
        raise SystemExit(f"seed {seed}: random's re-run labelled other examples than its kept run: not kept")
    curve_path(seed).write_text(
        json.dumps(
            {
                "seed": seed,
                "machine": machine(),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "targets": targets,
            },
            indent=1,
        )
        + "\n"
    )
    return True


def labels_to_reach(curve: list[tuple[int, float]], accuracy: float) -> float | None:
    """The labels at which the (labels, accuracy) curve, linear between its points, first reaches
    `accuracy`; None when it never does, or already exceeds it at its first point (nothing to say)."""
    if not curve or curve[0][1] >= accuracy:
        return None
    for (n0, a0), (n1, a1) in zip(curve, curve[1:]):
        if a1 >= accuracy:
            return n0 + (n1 - n0) * (accuracy - a0) / (a1 - a0)
    return None


def label_efficiency(results: dict, random_curve: list[tuple[int, float]]) -> dict[str, float | None]:
    """labels_saved_vs_random_at_20[_<strategy>] for each of LABEL_EFFICIENCY (see the docstring)."""
    out: dict[str, float | None] = {}
    for name in LABEL_EFFICIENCY:
        at = results["strategies"].get(name, {}).get("at", {}).get("20%")
        needed = labels_to_reach(random_curve, at["target_acc"]) if at and at["target_acc"] is not None else None
        key = "labels_saved_vs_random_at_20" + ("" if name == "clactive" else f"_{name}")
        out[key] = None if needed is None else needed / at["labelled"] - 1
    return out


def random_curve(entries: dict[str, dict], seed: int) -> list[tuple[int, float]] | None:
    """random's (labels, target accuracy) at 20 and 50%, and at 30 and 40% where `curve` kept them."""
    if "random" not in entries:
        return None
    extra = json.loads(curve_path(seed).read_text())["targets"] if curve_path(seed).is_file() else {}
    fits = {**entries["random"]["targets"], **{int(k): v for k, v in extra.items()}}
    return sorted((fit["labelled"], fit["target_acc"]) for fit in fits.values())


def code_path(seed: int, candidates: int | None, strategy: str) -> Path:
    return compare_dir(seed, candidates) / f"{strategy}.code"


def note_code(seed: int, candidates: int | None, strategy: str) -> None:
    """Append the commit the strategy's run (or its resumption) starts from, "+changes" when the
    code it runs differs from it: a kept result says which code measured it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "pipeline", "actors", "configs"], capture_output=True, text=True
    ).stdout.strip()
    path = code_path(seed, candidates, strategy)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(f"{head or 'unknown'}{'+changes' if changed else ''}\n")


def keep(seed: int, candidates: int | None, strategy: str) -> bool:
    """Copy a finished strategy's records and target fits from its run directory into the repository,
    with this machine and the time; False when it has not finished."""
    store = RunStore(compare_dir(seed, candidates) / strategy)
    if not store.holds_run():
        return False
    records = store.records()
    fits = () if strategy == "full" else BUDGET_ROUNDS  # full's round-k model is its target at k
    targets = {k: store.read_json(f"targets/{k:04d}.json") for k in fits}
    if len(records) < ROUNDS or any(fit is None for fit in targets.values()):
        return False
    code = code_path(seed, candidates, strategy)
    commits = code.read_text().split() if code.is_file() else []  # empty: run before commits were noted
    path = kept_path(seed, candidates, strategy)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "strategy": strategy,
                "seed": seed,
                "candidates": candidates,
                "pool_size": POOL_SIZE,
                "machine": machine(),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "commits": commits,
                "records": records,
                "targets": targets,
            },
            indent=1,
        )
        + "\n"
    )
    return True


def kept(seed: int, candidates: int | None) -> dict[str, dict]:
    """The seed's kept strategies: name -> {"records", "targets" (keyed by round), "pool_size", ...}."""
    out = {}
    for strategy in STRATEGIES + EXTRAS:
        path = kept_path(seed, candidates, strategy)
        if path.is_file():
            entry = json.loads(path.read_text())
            out[strategy] = {**entry, "targets": {int(k): v for k, v in entry["targets"].items()}}
    return out


def summary_of(entries: dict[str, dict]) -> dict:
    """One seed's compare report (pipeline.report.summary.summarize) from its kept strategies."""
    budgets = {f"{100 * b:g}%": k for b, k in zip(BUDGETS, BUDGET_ROUNDS)}
    return summarize(
        {name: {"records": e["records"], "targets": e["targets"]} for name, e in entries.items()}, budgets, POOL_SIZE
    )


def figures(results: dict) -> dict[str, float | None]:
    """One seed's figures from its compare report (pipeline.report.summary.summarize's output)."""
    strategies, speedups = results["strategies"], results["speedups"]
    at = {
        budget: {name: s["at"].get(budget, {}).get("target_acc") for name, s in strategies.items()}
        for budget in ("20%", "50%")
    }
    fifty = speedups.get("50%", {})

    def minus(a: str, b: str, budget: str) -> float | None:
        x, y = at[budget].get(a), at[budget].get(b)
        return None if x is None or y is None else 100 * (x - y)

    out = {
        "speedup_vs_full_at_50": fifty.get("selection_vs_full"),
        "speedup_vs_svp_at_50": fifty.get("selection_vs_svp"),
        "update_speedup_vs_svp_at_50": fifty.get("update_vs_svp"),
        "clactive_scoring_share_at_50": fifty.get("clactive_scoring_share"),
        "target_acc_clactive_minus_full_at_50": minus("clactive", "full", "50%"),
        "target_acc_clactive_minus_random_at_20": minus("clactive", "random", "20%"),
        **results.get("label_efficiency", {}),
    }
    for extra in EXTRAS:
        for other in ("clactive", "random"):
            out[f"target_acc_{extra}_minus_{other}_at_20"] = minus(extra, other, "20%")
        score = strategies.get(extra, {}).get("at", {}).get("50%", {}).get("score_s")
        ours = strategies.get("clactive", {}).get("at", {}).get("50%", {}).get("score_s")
        out[f"scoring_time_ratio_{extra}_at_50"] = None if score is None or not ours else score / ours
    for budget in ("20%", "50%"):
        for name, acc in at[budget].items():
            out[f"target_acc_{name}_at_{budget[:-1]}"] = acc
    return out


def spread(values: dict[int, float | None]) -> dict:
    """{"seeds": {seed: value}, "mean", "std"} over the seeds that have the figure (std: sample, n - 1)."""
    present = [v for v in values.values() if v is not None]
    return {
        "seeds": values,
        "mean": statistics.fmean(present) if present else None,
        "std": statistics.stdev(present) if len(present) > 1 else None,
    }


def print_spreads(figures: dict[str, dict]) -> None:
    """One line per measured figure: its mean, ± its std where there is one."""
    for key, value in figures.items():
        if value["mean"] is not None:
            std = "" if value["std"] is None else f" ± {value['std']:.3g}"
            print(f"  {key}: {value['mean']:.4g}{std}")


def gather(per_seed: dict[int, dict | None]) -> dict:
    """{seed: results.json or None} of one protocol -> its figures as spreads, and the seeds missing."""
    done = {seed: figures(results) for seed, results in per_seed.items() if results is not None}
    keys = sorted({key for f in done.values() for key in f})
    return {
        "seeds_done": sorted(done),
        "seeds_missing": sorted(s for s, r in per_seed.items() if r is None),
        "figures": {key: spread({seed: f.get(key) for seed, f in done.items()}) for key in keys},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("run", "save", "curve", "gather"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES)
    parser.add_argument("--protocol", choices=("both", "whole", "candidates"), default="both")
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=STRATEGIES + EXTRAS,
        default=list(STRATEGIES + EXTRAS),
        help="run or save only these (a sitting too short for a seed's full)",
    )
    args = parser.parse_args()
    protocols = {"whole": None, "candidates": args.candidates}
    if args.protocol != "both" and args.action != "gather":  # seeds.json always holds both
        protocols = {args.protocol: protocols[args.protocol]}
    if args.action == "curve":
        for seed in args.seeds:
            if not curve_path(seed).is_file():
                print(f"== seed {seed}, random's target curve", flush=True)
                subprocess.run(curve_command(seed), check=True)
                if keep_curve(seed):
                    print(f"kept {curve_path(seed)}", flush=True)
        return
    if args.action in ("run", "save"):
        for candidates in protocols.values():
            for seed in args.seeds:
                for strategy in args.strategies:
                    if kept_path(seed, candidates, strategy).is_file():
                        continue
                    if args.action == "run":
                        print(
                            f"== seed {seed}, {'whole pool' if candidates is None else f'{candidates} candidates'},"
                            f" {strategy}",
                            flush=True,
                        )
                        note_code(seed, candidates, strategy)
                        subprocess.run(compare_command(seed, candidates, (strategy,)), check=True)
                    if keep(seed, candidates, strategy):
                        print(f"kept {kept_path(seed, candidates, strategy)}", flush=True)
        return
    out = {
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": CONFIG,
        "strategies": list(STRATEGIES),
        "extras": list(EXTRAS),
        "protocols": {},
    }
    for name, candidates in protocols.items():
        per_seed, sittings, code = {}, {}, {}
        for seed in args.seeds:
            entries = kept(seed, candidates)
            per_seed[seed] = summary_of(entries) if set(STRATEGIES) <= set(entries) else None
            curve = random_curve(entries, seed) if candidates is None else None
            if per_seed[seed] is not None and curve is not None:
                per_seed[seed]["label_efficiency"] = {
                    **label_efficiency(per_seed[seed], curve),
                    "labels_saved_curve_points": len(curve),  # 2: random's 20 and 50% only; 4: with `curve`
                }
            sittings[seed] = sorted({(e["machine"], e["date"][:10]) for e in entries.values()})
            code[seed] = {name: e.get("commits") or ["not noted"] for name, e in entries.items()}
        out["protocols"][name] = {
            "candidates": candidates,
            "commands": [" ".join(compare_command(s, candidates, STRATEGIES + EXTRAS)[1:]) for s in args.seeds],
            "sittings": {seed: [f"{m}, {d}" for m, d in s] for seed, s in sittings.items()},
            "code": code,
            **gather(per_seed),
        }
    path = RESULTS / "seeds.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    for name, protocol in out["protocols"].items():
        print(f"{name}: seeds done {protocol['seeds_done']}, missing {protocol['seeds_missing']}")
        print_spreads(protocol["figures"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Tune's choice of clactive's steps and replay memory against full and the hand-set 200 steps, at 50%, over seeds.

    .venv/bin/python -m benchmarks.tuned_seeds tune               # hours; resumable within a sitting
    .venv/bin/python -m benchmarks.tuned_seeds run [--seeds 0 1 2]  # about 75 min a seed; resumable
    .venv/bin/python -m benchmarks.tuned_seeds gather             # writes tuned_seeds.json

`tune` runs `clactive tune --config configs/fashion_mnist_tune_at_50.yaml` (each trial: the compare's
schedule to 50% on a pool with 5,000 validation examples held out, then the target fitted on the
trial's labels; `full` first on the same schedule; the chosen trial is the cheapest in selection time
whose target's validation accuracy is within 0.5 pt of full's) and keeps its trials.md, trials.json
and pareto.png in benchmarks/results/tune_at_50/: the search directory itself is a sitting's.

`run` runs, per seed, `clactive compare` with `compare.tuned` pointing at that kept search: `tuned`
(clactive with the chosen settings), `clactive` (the compare config's 200 steps, memory ratio 1) and
`full`, on the same 5,000-example validation hold-out, the target fitted at 50%. The short entries
go first, so a sitting that ends during `full` loses the least. Each strategy that finishes is kept
in benchmarks/results/tuned_seeds/s<seed>/<strategy>.json (records, the 50% fit, machine, date,
commits), and `run` skips what is kept.

`gather` writes benchmarks/results/tuned_seeds.json: per seed and as mean ± std, full's selection
time over tuned's and over clactive's at 50% (`speedup_vs_full_at_50_tuned`, `..._handset`), each
with its target test-accuracy gap to full (points). A seed whose strategies ran in different
sittings is listed in `mixed_sittings`: its speed-up divides times from different days.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import RESULTS, machine
from pipeline.loop.run_store import RunStore
from pipeline.report.summary import summarize

TUNE_CONFIG = "configs/fashion_mnist_tune_at_50.yaml"
COMPARE_CONFIG = "configs/fashion_mnist_compare.yaml"
TUNE_DIR = Path("runs/tune-fashion_mnist-at_50")  # the config's tune.dir
KEPT_SEARCH = RESULTS / "tune_at_50"  # what compare.tuned reads: trials.json
SEARCH_FILES = ("trials.md", "trials.json", "pareto.png", "best.yaml")
KEPT = RESULTS / "tuned_seeds"
ORDER = ("tuned", "clactive", "full")  # shortest first
VALIDATION = 5000
BUDGET_ROUND = 5  # 50%: 2% initial, then 10, 20, 30, 40, 50%
ROUNDS = 6
POOL_SIZE = 55_000  # Fashion-MNIST's 60,000 training images less the validation hold-out
DEFAULT_SEEDS = (0, 1, 2)


def compare_dir(seed: int) -> Path:
    return Path("runs") / f"compare-fashion_mnist-s{seed}-tuned"


def kept_path(seed: int, strategy: str) -> Path:
    return KEPT / f"s{seed}" / f"{strategy}.json"


def tune() -> None:
    command = [sys.executable, "-m", "pipeline", "tune", "--config", TUNE_CONFIG, "--quiet"]
    subprocess.run(command, check=True)
    KEPT_SEARCH.mkdir(parents=True, exist_ok=True)
    for name in SEARCH_FILES:
        if (TUNE_DIR / name).is_file():
            shutil.copy(TUNE_DIR / name, KEPT_SEARCH / name)
    print(f"kept the search's {', '.join(SEARCH_FILES)} in {KEPT_SEARCH}")


def compare_command(seed: int, strategy: str) -> list[str]:
    sets = [
        f"seed={seed}",
        f"data.validation={VALIDATION}",
        f"compare.dir={compare_dir(seed)}",
        f"compare.strategies=[{strategy}]",
        f"compare.tuned={KEPT_SEARCH}",
        "compare.budgets=[0.5]",
    ]
    return [sys.executable, "-m", "pipeline", "compare", "--config", COMPARE_CONFIG, "--quiet"] + [
        arg for s in sets for arg in ("--set", s)
    ]


def keep(seed: int, strategy: str, commit: str) -> bool:
    """Copy a finished strategy's records and 50% fit into the repository; False when unfinished."""
    store = RunStore(compare_dir(seed) / strategy)
    if not store.holds_run():
        return False
    records = store.records()
    fit = None if strategy == "full" else store.read_json(f"targets/{BUDGET_ROUND:04d}.json")
    if len(records) < ROUNDS or (strategy != "full" and fit is None):
        return False
    entry = {
        "strategy": strategy,
        "seed": seed,
        "pool_size": POOL_SIZE,
        "machine": machine(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "records": records,
        "targets": {} if fit is None else {BUDGET_ROUND: fit},
    }
    kept_path(seed, strategy).parent.mkdir(parents=True, exist_ok=True)
    kept_path(seed, strategy).write_text(json.dumps(entry, indent=1) + "\n")
    return True


def run(seeds: list[int]) -> None:
    if not (KEPT_SEARCH / "trials.json").is_file():
        raise SystemExit(f"{KEPT_SEARCH / 'trials.json'} is missing: run `python -m benchmarks.tuned_seeds tune` first")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    for seed in seeds:
        for strategy in ORDER:
            if kept_path(seed, strategy).is_file():
                continue
            print(f"seed {seed}: {strategy}", flush=True)
            subprocess.run(compare_command(seed, strategy), check=True)
            if not keep(seed, strategy, commit):
                raise SystemExit(f"seed {seed}: {strategy} did not finish in {compare_dir(seed)}")


def seed_figures(seed: int) -> dict | None:
    entries = {s: json.loads(kept_path(seed, s).read_text()) for s in ORDER if kept_path(seed, s).is_file()}
    if len(entries) < len(ORDER):
        return None
    for entry in entries.values():
        entry["targets"] = {int(k): v for k, v in entry["targets"].items()}
    at = summarize(entries, {"50%": BUDGET_ROUND}, POOL_SIZE)["strategies"]
    full = at["full"]["at"]["50%"]
    out = {"dates": {s: e["date"][:10] for s, e in entries.items()}}
    for entry, name in (("tuned", "tuned"), ("clactive", "handset")):
        ours = at[entry]["at"]["50%"]
        out[f"speedup_vs_full_at_50_{name}"] = full["selection_s"] / ours["selection_s"]
        out[f"target_acc_{name}_minus_full_at_50"] = 100 * (ours["target_acc"] - full["target_acc"])
        out[f"target_val_acc_{name}_minus_full_at_50"] = 100 * (ours["target_val_acc"] - full["target_val_acc"])
        out[f"selection_s_{name}"] = ours["selection_s"]
    out["selection_s_full"] = full["selection_s"]
    return out


def gather() -> None:
    search = json.loads((KEPT_SEARCH / "trials.json").read_text())
    chosen = next(t for t in search["trials"] if t["trial"] == search["chosen"])
    per_seed = {seed: figures for seed in DEFAULT_SEEDS if (figures := seed_figures(seed)) is not None}
    keys = sorted({k for f in per_seed.values() for k in f if k != "dates"})
    out: dict = {
        "chosen": {"trial": chosen["trial"], "params": chosen["params"]},
        "seeds": sorted(per_seed),
        "missing_seeds": [s for s in DEFAULT_SEEDS if s not in per_seed],
        "mixed_sittings": [s for s, f in per_seed.items() if len(set(f["dates"].values())) > 1],
        "per_seed": per_seed,
    }
    for key in keys:
        values = [f[key] for f in per_seed.values()]
        out[key] = statistics.mean(values)
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
    (RESULTS / "tuned_seeds.json").write_text(json.dumps(out, indent=1) + "\n")
    for key in keys:
        std = out[f"{key}_std"]
        print(f"{key:42s} {out[key]:10.3f}" + ("" if std is None else f" ± {std:.3f}"))
    print(f"seeds {out['seeds']}, missing {out['missing_seeds']}, mixed sittings {out['mixed_sittings']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["tune", "run", "gather"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    args = parser.parse_args()
    if args.action == "tune":
        tune()
    elif args.action == "run":
        run(args.seeds)
    else:
        gather()


if __name__ == "__main__":
    main()

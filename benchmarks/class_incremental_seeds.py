"""The class-incremental compare over several seeds, with what each strategy's labels hold per class.

    .venv/bin/python -m benchmarks.class_incremental_seeds run [--seeds 0 1 2]   # about 20 min a seed; resumable
    .venv/bin/python -m benchmarks.class_incremental_seeds refit                 # minutes a seed
    .venv/bin/python -m benchmarks.class_incremental_seeds gather                # class_incremental_seeds.json

`run` runs `clactive compare --config configs/fashion_mnist_class_incremental.yaml --set seed=<s>` in
runs/compare-fashion_mnist-class_incremental-s<s> (a re-run continues) and keeps, per seed, in
benchmarks/results/class_incremental_seeds/s<s>.json: the compare's results.json and, per strategy,
its labels per class and the per-class test accuracy of its last selection model and of its target.
`refit` fits the target once more from scratch on `full`'s labels, in this process, exactly as the
compare fits it on every other strategy's (the same schedule and seed: Rounds.train_target), and
keeps its test accuracy beside full's own last-round model's: when the two agree, what full's target
scores is its labels' doing, not its fit's.
`gather` writes mean ± std over the kept seeds of the target's accuracy at the budget, the selection
model's accuracy on the seen classes and its forgetting, the clactive / finetune forgetting ratio,
full's refit, and the per-class label counts that explain a strategy's target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, machine
from benchmarks.seeds import print_spreads, spread
from pipeline.loop.run_store import RunStore

CONFIG = "configs/fashion_mnist_class_incremental.yaml"
BUDGET = "10%"
KEPT = RESULTS / "class_incremental_seeds"


def compare_dir(seed: int) -> Path:
    return Path("runs") / f"compare-fashion_mnist-class_incremental-s{seed}"


def command(seed: int) -> list[str]:
    sets = [f"seed={seed}", f"compare.dir={compare_dir(seed)}"]
    return [sys.executable, "-m", "pipeline", "compare", "--config", CONFIG, "--quiet"] + [
        arg for s in sets for arg in ("--set", s)
    ]


def per_class(run_dir: Path) -> dict:
    """A strategy's labels per class, and its last selection model's and its target's per-class test accuracy."""
    store = RunStore(run_dir)
    _, labels = store.load_labels()
    last = store.records()[-1]
    num_classes = len(last["per_class_acc"])
    fit = store.read_json(f"targets/{last['round']:04d}.json")
    return {
        "labels_per_class": np.bincount(labels, minlength=num_classes).tolist(),
        "selection_model_per_class_acc": last["per_class_acc"],
        "target_per_class_acc": (fit or last)["per_class_acc"],  # full's target is its own last model
    }


def keep(seed: int) -> bool:
    results_path = compare_dir(seed) / "results.json"
    if not results_path.is_file():
        return False
    results = json.loads(results_path.read_text())
    labels = {name: per_class(compare_dir(seed) / name) for name in results["strategies"]}
    KEPT.mkdir(parents=True, exist_ok=True)
    payload = {"seed": seed, "machine": machine(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (KEPT / f"s{seed}.json").write_text(json.dumps({**payload, "results": results, "classes": labels}, indent=1) + "\n")
    return True


def refit(seed: int) -> None:
    """full's target, fitted again as the compare fits every other strategy's, on a copy of full's run."""
    import shutil

    from benchmarks.common import prepared
    from benchmarks.plain_loop import PlainLearner, PlainScorers
    from pipeline.labels.labelling import make_oracle
    from pipeline.loop.preflight import plan_run
    from pipeline.loop.rounds import Rounds

    path = KEPT / f"s{seed}.json"
    kept = json.loads(path.read_text())
    if "full_refit" in kept:
        return
    copy = compare_dir(seed) / "full-refit"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(compare_dir(seed) / "full", copy)
    store = RunStore(copy)
    config = store.saved_config()
    data = prepared(config)
    plan = plan_run(config, data)
    rounds = Rounds(plan, store, PlainScorers(config, data), PlainLearner(config, data), make_oracle(plan, store))
    fit = rounds.train_target(plan.last_round)
    kept["full_refit"] = {"target_acc": fit["target_acc"], "per_class_acc": fit["per_class_acc"], "steps": fit["steps"]}
    path.write_text(json.dumps(kept, indent=1) + "\n")
    print(f"seed {seed}: full's labels, target fitted again: {fit['target_acc']:.4f}", flush=True)


def figures(kept: dict) -> dict:
    """One seed's figures from its kept compare."""
    strategies = kept["results"]["strategies"]
    out = {}
    for name, s in strategies.items():
        last = s["per_round"][-1]
        out[f"target_acc_{name}"] = s["at"].get(BUDGET, {}).get("target_acc")
        out[f"acc_seen_{name}"] = last.get("acc_seen")
        out[f"forgetting_{name}"] = last.get("forgetting")
    if "full_refit" in kept:
        out["target_acc_full_refit"] = kept["full_refit"]["target_acc"]
    if out.get("forgetting_finetune"):
        out["forgetting_clactive_over_finetune"] = out["forgetting_clactive"] / out["forgetting_finetune"]
    return out


def gather(seeds: list[int]) -> dict:
    kept = {s: json.loads((KEPT / f"s{s}.json").read_text()) for s in seeds if (KEPT / f"s{s}.json").is_file()}
    per_seed = {s: figures(k) for s, k in kept.items()}
    keys = sorted({key for f in per_seed.values() for key in f})
    return {
        "config": CONFIG,
        "budget": BUDGET,
        "seeds_done": sorted(kept),
        "seeds_missing": sorted(set(seeds) - set(kept)),
        "sittings": {s: f"{k['machine']}, {k['date'][:10]}" for s, k in kept.items()},
        "figures": {key: spread({s: f.get(key) for s, f in per_seed.items()}) for key in keys},
        "classes": {s: k["classes"] for s, k in kept.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("run", "refit", "gather"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if args.action == "run":
        for seed in args.seeds:
            if not (KEPT / f"s{seed}.json").is_file():
                subprocess.run(command(seed), check=True)
                keep(seed)
        return
    if args.action == "refit":
        for seed in args.seeds:
            refit(seed)
        return
    out = gather(args.seeds)
    path = RESULTS / "class_incremental_seeds.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print_spreads(out["figures"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

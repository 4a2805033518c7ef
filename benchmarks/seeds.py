"""The Fashion-MNIST compare over several seeds and two scoring protocols, as mean ± std.

    .venv/bin/python -m benchmarks.seeds run  [--seeds 0 1 2] [--candidates 10000]   # hours; resumable
    .venv/bin/python -m benchmarks.seeds gather                                      # writes seeds.json

`run` runs `clactive compare --config configs/fashion_mnist_compare.yaml` once per (protocol, seed),
each in its own directory (runs/compare-fashion_mnist-s<seed>[-c<candidates>]): full, svp, clactive
and random, first with every strategy scoring the whole unlabelled pool (the paper's protocol),
then with every strategy scoring the same random `--candidates` of it (scoring.candidates). Run it
again after an interruption: finished strategies are read back, an interrupted one resumes after
its last committed round, so the hours can be spread over several sittings.

`gather` reads each directory's results.json (the compare's own report) and writes
benchmarks/results/seeds.json: per protocol, every figure's per-seed values, mean and standard
deviation. Seeds whose compare has not finished are listed as missing, never filled in.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.common import RESULTS, machine

CONFIG = "configs/fashion_mnist_compare.yaml"
STRATEGIES = ("full", "svp", "clactive", "random")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_CANDIDATES = 10_000  # the random subsets of the active-learning literature


def compare_dir(seed: int, candidates: int | None) -> Path:
    return Path("runs") / f"compare-fashion_mnist-s{seed}" if candidates is None else \
        Path("runs") / f"compare-fashion_mnist-s{seed}-c{candidates}"


def compare_command(seed: int, candidates: int | None) -> list[str]:
    sets = [f"seed={seed}", f"compare.dir={compare_dir(seed, candidates)}",
            f"compare.strategies=[{','.join(STRATEGIES)}]"]
    if candidates is not None:
        sets.append(f"scoring.candidates={candidates}")
    return [sys.executable, "-m", "pipeline", "compare", "--config", CONFIG, "--quiet",
            *[arg for s in sets for arg in ("--set", s)]]


def figures(results: dict) -> dict[str, float | None]:
    """One seed's figures from its compare report (pipeline.report.summarize's output)."""
    strategies, speedups = results["strategies"], results["speedups"]
    at = {budget: {name: s["at"].get(budget, {}).get("target_acc") for name, s in strategies.items()}
          for budget in ("20%", "50%")}
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
    }
    for budget in ("20%", "50%"):
        for name, acc in at[budget].items():
            out[f"target_acc_{name}_at_{budget[:-1]}"] = acc
    return out


def spread(values: dict[int, float | None]) -> dict:
    """{"seeds": {seed: value}, "mean", "std"} over the seeds that have the figure (std: sample, n - 1)."""
    present = [v for v in values.values() if v is not None]
    return {"seeds": values, "mean": statistics.fmean(present) if present else None,
            "std": statistics.stdev(present) if len(present) > 1 else None}


def gather(per_seed: dict[int, dict | None]) -> dict:
    """{seed: results.json or None} of one protocol -> its figures as spreads, and the seeds missing."""
    done = {seed: figures(results) for seed, results in per_seed.items() if results is not None}
    keys = sorted({key for f in done.values() for key in f})
    return {"seeds_done": sorted(done), "seeds_missing": sorted(s for s, r in per_seed.items() if r is None),
            "figures": {key: spread({seed: f.get(key) for seed, f in done.items()}) for key in keys}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("run", "gather"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES)
    parser.add_argument("--protocol", choices=("both", "whole", "candidates"), default="both")
    args = parser.parse_args()
    protocols = {"whole": None, "candidates": args.candidates}
    if args.protocol != "both":
        protocols = {args.protocol: protocols[args.protocol]}
    if args.action == "run":
        for candidates in protocols.values():
            for seed in args.seeds:
                print(f"== seed {seed}, {'whole pool' if candidates is None else f'{candidates} candidates'}",
                      flush=True)
                subprocess.run(compare_command(seed, candidates), check=True)
        return
    out = {"machine": machine(), "config": CONFIG, "strategies": list(STRATEGIES), "protocols": {}}
    for name, candidates in protocols.items():
        per_seed = {}
        for seed in args.seeds:
            path = compare_dir(seed, candidates) / "results.json"
            per_seed[seed] = json.loads(path.read_text()) if path.is_file() else None
        out["protocols"][name] = {"candidates": candidates,
                                  "commands": [" ".join(compare_command(s, candidates)[1:]) for s in args.seeds],
                                  **gather(per_seed)}
    path = RESULTS / "seeds.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    for name, protocol in out["protocols"].items():
        print(f"{name}: seeds done {protocol['seeds_done']}, missing {protocol['seeds_missing']}")
        for key, value in protocol["figures"].items():
            if value["mean"] is not None:
                std = "" if value["std"] is None else f" ± {value['std']:.3g}"
                print(f"  {key}: {value['mean']:.4g}{std}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Scoring throughput: the Ray Data path against a plain single-process torch loop.

Both score the same unlabelled pool (every example not in a random 2% labelled set) with the
same proxy weights, batch size, acquisition and top-k, on the same cores: the Ray path's actors
get the threads the plain loop gets. A Ray pass is timed the way a round after the first pays for
it, from planning the dataset to the last id: the scoring actors live for the whole run, so their
start-up is paid once, in round 1, and is reported on its own. The plain loop pays its model load
every pass. Passes alternate between the two paths, so drift on a shared machine hits both; each
cell is the median over `--repeats`, with the range. The two paths must choose the same ids.

With `--candidates N` both score the same seeded random N of the unlabelled pool (scoring.candidates)
and the result goes to scoring_throughput_c<N>.json. Each Ray pass is also split into where its time
went, averaged over the actors: before the first batch (weights, the read task's start, the first
block), compute, and waiting for blocks after the first; the rest is the driver's (dataset planning,
the calls, the merge).

    .venv/bin/python -m benchmarks.scoring_throughput --batch-sizes 256,1024,4096
    .venv/bin/python -m benchmarks.scoring_throughput --batch-sizes 256 --candidates 10000 --repeats 5
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import ray
import torch

from actors.scorer import ScorerPool
from benchmarks.common import plain_select, prepared, print_table, spread, start_ray, write_result
from pipeline.config.run_config import load_config
from pipeline.selection.candidates import draw_candidates
from pipeline.update.models import create_model
from pipeline.update.training import checkpoint_bytes, torch_threads

# a Ray pass's seconds, by where they went (the actors' share averaged over them): record key of each
PARTS = {
    "before first batch": "score_first_batch",
    "compute": "score_compute",
    "waiting for blocks": "score_starved",
    "driver": None,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/fashion_mnist.yaml")
    parser.add_argument("--batch-sizes", default="256,1024,4096", help="scoring batch sizes to measure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=None, help="score a seeded random subset of this size")
    args = parser.parse_args()

    config = load_config(args.config)
    data = prepared(config)
    torch.manual_seed(config.seed)
    model_name = config.proxy.name
    weights = checkpoint_bytes(create_model(model_name, data.image_shape[0], data.num_classes))
    rng = np.random.default_rng(config.seed)
    labelled = rng.choice(data.pool_size, size=data.pool_size // 50, replace=False).astype(np.int64)
    k = data.pool_size // 100
    unlabelled = np.setdiff1d(np.arange(data.pool_size), labelled)  # pool ids are 0..N-1
    candidate_ids = None if args.candidates is None else draw_candidates(unlabelled, args.candidates, config.seed)
    scored = len(unlabelled) if candidate_ids is None else len(candidate_ids)
    threads = torch_threads(config.scoring.actors) * config.scoring.actors

    start_ray()
    rows, results = [], []
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        run = replace(config, scoring=replace(config.scoring, batch_size=batch_size))
        scorers = ScorerPool(run, data, model_name)
        # round 1: the actors start here
        seconds = scorers.select(weights, labelled, k, seed=config.seed, candidate_ids=candidate_ids).seconds
        first_s = seconds["score"] + seconds["select"]
        ray_s: list[float] = []
        plain_s: list[float] = []
        parts: dict[str, list[float]] = {part: [] for part in PARTS}
        for _ in range(args.repeats):
            ray_pass = scorers.select(weights, labelled, k, seed=config.seed, candidate_ids=candidate_ids)
            ray_ids, seconds = ray_pass.pool_ids, ray_pass.seconds
            ray_s.append(seconds["score"] + seconds["select"])
            in_actors = {part: seconds[key] for part, key in PARTS.items() if key}
            for part, value in {**in_actors, "driver": ray_s[-1] - sum(in_actors.values())}.items():
                parts[part].append(value)
            plain_ids, plain_seconds = plain_select(
                run, data, model_name, weights, labelled, k, config.seed, threads, candidate_ids
            )
            plain_s.append(plain_seconds)
            if not np.array_equal(np.sort(ray_ids), np.sort(plain_ids)):
                raise SystemExit(f"batch {batch_size}: the Ray and plain paths chose different ids")
        scorers.close()
        ray_spread, plain_spread = spread(ray_s), spread(plain_s)
        ratios = spread([p / r for p, r in zip(plain_s, ray_s)])
        pass_parts = {part: spread(values) for part, values in parts.items()}
        results.append(
            {
                "batch_size": batch_size,
                "ray_first_pass_s": first_s,
                "ray_s": ray_spread,
                "plain_s": plain_spread,
                "ray_per_s": scored / ray_spread["median"],
                "plain_per_s": scored / plain_spread["median"],
                "throughput_ratio": ratios,
                "ray_pass_parts_s": pass_parts,
            }
        )
        rows.append(
            [
                batch_size,
                f"{first_s:.2f}",
                f"{ray_spread['median']:.2f} [{ray_spread['min']:.2f}-{ray_spread['max']:.2f}]",
                f"{plain_spread['median']:.2f} [{plain_spread['min']:.2f}-{plain_spread['max']:.2f}]",
                f"{scored / ray_spread['median']:.0f}",
                f"{scored / plain_spread['median']:.0f}",
                f"{ratios['median']:.3f} [{ratios['min']:.3f}-{ratios['max']:.3f}]",
                *(f"{pass_parts[part]['median']:.2f}" for part in PARTS),
            ]
        )
    ray.shutdown()

    print(
        f"{model_name} scoring {scored} of {data.pool_size} pool images ({data.dataset}), "
        f"{config.scoring.actors} actor(s), {threads} torch threads in all; median [range] of {args.repeats}"
    )
    print_table(
        [
            "batch",
            "ray 1st pass s",
            "ray s",
            "plain s",
            "ray img/s",
            "plain img/s",
            "ray/plain throughput",
            *(f"ray {part} s" for part in PARTS),
        ],
        rows,
    )
    at_config = next((r for r in results if r["batch_size"] == config.scoring.batch_size), None)
    best = max(results, key=lambda r: r["ray_per_s"])
    name = "scoring_throughput" if args.candidates is None else f"scoring_throughput_c{args.candidates}"
    path = write_result(
        name,
        {
            "model": model_name,
            "dataset": data.dataset,
            "pool_size": data.pool_size,
            "scored": scored,
            "candidates": args.candidates,
            "actors": config.scoring.actors,
            "threads": threads,
            "repeats": args.repeats,
            "config_batch_size": config.scoring.batch_size,
            "results": results,
            "best_batch_size": best["batch_size"],
            "throughput_ratio_at_config": at_config["throughput_ratio"]["median"] if at_config else None,
        },
    )
    print(f"fastest Ray batch size {best['batch_size']}; wrote {path}")


if __name__ == "__main__":
    main()

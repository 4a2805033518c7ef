"""Peak memory of the process that drives selection, with the pool at 1x and at `--copies`x its size.

The larger pool is the prepared pool's Parquet shards written `--copies` times with new ids
(id + copy x pool size), so every example is distinct to the pipeline. Each measurement runs
one scoring pass (`actors.scorer.ScorerPool.select`, as the coordinator does every round: 2% labelled,
1% chosen) inside a fresh actor placed like the coordinator, and reads that process's peak
resident set (`ru_maxrss`). Scoring streams, so the peak should not grow with the pool.

    .venv/bin/python -m benchmarks.driver_rss --copies 10
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import uuid
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import ray
import torch

from benchmarks.common import prepared, print_table, spread, start_ray, write_result
from pipeline.config.run_config import RunConfig, load_config
from pipeline.data import PreparedData
from pipeline.update.models import create_model
from pipeline.update.training import checkpoint_bytes


def replicated(data: PreparedData, copies: int, cache_dir: str) -> PreparedData:
    """The pool written `copies` times with new ids, once; the test split is shared by a link."""
    root = Path(cache_dir) / "bench" / f"{Path(data.root).name}-x{copies}"
    if not (root / "pool").is_dir():
        tmp = root.with_name(f".{root.name}.{uuid.uuid4().hex[:8]}.tmp")
        (tmp / "pool").mkdir(parents=True)
        try:
            for shard in sorted(Path(data.split_dir("pool")).glob("*.parquet")):
                table = pq.read_table(shard)
                ids = table.column("id").to_numpy()
                for copy in range(copies):
                    moved = table.set_column(0, "id", pa.array(ids + copy * data.pool_size, pa.int64()))
                    pq.write_table(moved, tmp / "pool" / f"copy-{copy:03d}-{shard.name}")
            os.symlink(os.path.abspath(data.split_dir("test")), tmp / "test")
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    rows = pads.dataset(str(root / "pool"), format="parquet").count_rows()
    return replace(data, root=str(root), sizes={**data.sizes, "pool": rows})


@ray.remote(num_cpus=0)
class SelectionProbe:
    """A process that does what the coordinator does in a round's selection, and nothing else."""

    def peak_rss_mib(self) -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    def select(self, config: dict, data: dict, model_name: str, weights: bytes, seed: int) -> dict:
        from actors.scorer import ScorerPool
        from pipeline.config.run_config import config_from_dict

        data = PreparedData(**data)
        rng = np.random.default_rng(seed)
        labelled = rng.choice(data.pool_size, size=data.pool_size // 50, replace=False).astype(np.int64)
        before = self.peak_rss_mib()
        scorers = ScorerPool(config_from_dict(config), data, model_name)
        try:
            scored = scorers.select(weights, labelled, k=data.pool_size // 100, seed=seed)
        finally:
            scorers.close()
        return {
            "peak_rss_mib": self.peak_rss_mib(),
            "before_mib": before,
            "chosen": len(scored.pool_ids),
            "score_s": scored.seconds["score"],
        }


def measure(config: RunConfig, data: PreparedData, weights: bytes) -> dict:
    probe = SelectionProbe.remote()
    try:
        return ray.get(probe.select.remote(config.to_dict(), asdict(data), config.proxy.name, weights, config.seed))
    finally:
        ray.kill(probe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/fashion_mnist.yaml")
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    config = load_config(args.config)
    small = prepared(config)
    large = replicated(small, args.copies, config.data.cache_dir)
    torch.manual_seed(config.seed)
    weights = checkpoint_bytes(create_model(config.proxy.name, small.image_shape[0], small.num_classes))

    start_ray()
    runs: dict[str, list[dict]] = {"small": [], "large": []}
    for _ in range(args.repeats):  # alternate, so drift hits both sizes
        runs["small"].append(measure(config, small, weights))
        runs["large"].append(measure(config, large, weights))
    ray.shutdown()

    sizes = {"small": small.pool_size, "large": large.pool_size}
    summary = {
        name: {
            "pool_size": sizes[name],
            "peak_rss_mib": spread([r["peak_rss_mib"] for r in rs]),
            "rss_before_scoring_mib": spread([r["before_mib"] for r in rs]),
            "score_s": spread([r["score_s"] for r in rs]),
        }
        for name, rs in runs.items()
    }
    ratio = summary["large"]["peak_rss_mib"]["median"] / summary["small"]["peak_rss_mib"]["median"]
    growth = {name: s["peak_rss_mib"]["median"] - s["rss_before_scoring_mib"]["median"] for name, s in summary.items()}
    print(f"peak RSS of the selecting process, median of {args.repeats} fresh processes per pool size")
    print_table(
        ["pool", "peak RSS MiB", "before scoring MiB", "growth in pass MiB", "score s"],
        [
            [
                sizes[n],
                s["peak_rss_mib"]["median"],
                s["rss_before_scoring_mib"]["median"],
                growth[n],
                s["score_s"]["median"],
            ]
            for n, s in summary.items()
        ],
    )
    path = write_result(
        "driver_rss",
        {
            "copies": args.copies,
            "repeats": args.repeats,
            "by_pool": summary,
            "growth_in_pass_mib": growth,
            "driver_rss_ratio": ratio,
        },
    )
    print(f"peak RSS {large.pool_size} / {small.pool_size} pool: {ratio:.3f}; wrote {path}")


if __name__ == "__main__":
    main()

"""Scale: the pipeline on pools of millions, its memory per process and its scoring rate. A systems
benchmark, not an accuracy one: the pools are Fashion-MNIST copies, so what a model learns there
says nothing.

A pool of R rows is the prepared Fashion-MNIST pool written R / 60k times with new ids (id + copy x
60k) and a deterministic per-copy transform (copy c is shifted c mod 7 pixels to the right), so no two
rows are equal; `--size 64` also resizes each image up to 3x64x64 (bilinear, the channel repeated),
as a stand-in for larger images. Each configuration runs two rounds of the default job's clactive
through the real driver, coordinator, scorers and Ray Train worker group:

  round 0   `labelled` random labels, the proxy trained from scratch on them for one epoch: with
            half the pool labelled, the `full`-like update the issue asks to measure once
  round 1   a scoring pass over the unlabelled pool (or `--candidates` of it), `k` labels, the
            constant-step replay update

and reads its round records: scoring seconds and images/s (round 1), update seconds, framework
overhead, each process's peak resident memory (the records' peak_rss_mib: coordinator, Train worker,
largest scorer; the driver's own from here), and the object store's peak (polled each second).

    .venv/bin/python -m benchmarks.scale --only pool-60k-28 pool-600k-28 pool-1200k-28
    .venv/bin/python -m benchmarks.scale --only labels-30k-64 labels-600k-64
    .venv/bin/python -m benchmarks.scale --only pool-1200k-28 cluster-margin-1200k-28

Results accumulate per configuration in benchmarks/results/scale.json (a re-run replaces its
entries), with the two headline ratios once both of their configurations are in:
coordinator_rss_ratio (600k labelled over 30k labelled, 3x64x64), scoring_rate_ratio (images/s
at 1.2M over 60k, 28x28) and cluster_margin_{scorer,coordinator}_rss_ratio (Cluster-Margin over least
confidence on the whole 1.2M pool: its shortlist of embeddings, not the pool, is what it adds).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from benchmarks.common import RESULTS, prepared, print_table, start_ray, write_result
from pipeline.config.run_config import load_config
from pipeline.data import PreparedData
from pipeline.data.rows import arrow_table, images_from_arrow, pool_schema

BASE_ROWS = 60_000


@dataclass(frozen=True)
class Scale:
    name: str
    rows: int  # pool rows
    size: int  # 28: the images as they are; 64: resized to 3x64x64
    labelled: int  # random labels of round 0
    candidates: int | None = None  # round 1 scores this random subset (None: the whole unlabelled pool)
    acquisition: str = "least_confidence"  # the default job's


CONFIGS = {
    c.name: c
    for c in [
        Scale("pool-60k-28", 60_000, 28, 600),
        Scale("pool-600k-28", 600_000, 28, 600),
        Scale("pool-1200k-28", 1_200_000, 28, 600),
        Scale("cluster-margin-1200k-28", 1_200_000, 28, 600, acquisition="cluster_margin"),
        Scale("pool-60k-64", 60_000, 64, 600),
        Scale("pool-1200k-64", 1_200_000, 64, 600, candidates=100_000),
        Scale("labels-30k-64", 1_200_000, 64, 30_000, candidates=20_000),
        Scale("labels-600k-64", 1_200_000, 64, 600_000, candidates=20_000),
    ]
}


def scaled_pool(base: PreparedData, rows: int, size: int, cache_dir: str) -> PreparedData:
    """The pool of `rows` rows (and the test split) at `size`, written once under cache_dir/bench."""
    copies = -(-rows // base.pool_size)
    root = Path(os.path.abspath(cache_dir)) / "bench" / f"scale-{rows}-{size}"  # every process reads it
    shape = base.image_shape if size == base.image_shape[1] else (3, size, size)
    if not (root / "manifest.json").is_file():
        tmp = root.with_name(f".{root.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            for split, count in (("pool", copies), ("test", 1)):
                (tmp / split).mkdir(parents=True)
                shards = sorted(Path(base.split_dir(split)).glob("*.parquet"))
                written = 0
                for copy in range(count):
                    for shard in shards:
                        table = pq.read_table(shard)
                        take = min(table.num_rows, rows - written) if split == "pool" else table.num_rows
                        if take <= 0:
                            break
                        ids = table.column("id").to_numpy()[:take] + copy * base.pool_size
                        pixels = images_from_arrow(table.column("image"), base.image_shape)[:take]
                        images = transform(pixels, copy, shape)
                        labels = table.column("label").to_numpy()[:take]
                        pq.write_table(
                            arrow_table(ids, images, labels, pool_schema(shape)),
                            tmp / split / f"copy-{copy:03d}-{shard.name}",
                        )
                        written += take
            (tmp / "manifest.json").write_text(json.dumps({"rows": rows, "shape": list(shape)}))
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return replace(base, root=str(root), image_shape=shape, sizes={"pool": rows, "test": base.sizes["test"]})


def transform(images: np.ndarray, copy: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Copy `copy` of (n, 1, 28, 28) uint8 images: shifted copy mod 7 pixels right, then resized to `shape`."""
    images = np.roll(images, copy % 7, axis=3)
    if shape[1:] == images.shape[2:]:
        return images
    out = torch.nn.functional.interpolate(
        torch.from_numpy(images).float(), size=shape[1:], mode="bilinear", align_corners=False
    )
    return out.round().clamp(0, 255).to(torch.uint8).expand(-1, shape[0], -1, -1).contiguous().numpy()


class ObjectStorePeak:
    """Polls the cluster's object-store use each second (Ray's memory summary) and keeps the largest."""

    def __init__(self):
        self.peak_mib, self.stop = 0.0, threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        import ray
        from ray._private.internal_api import memory_summary

        address = ray.get_runtime_context().gcs_address
        while not self.stop.wait(1.0):
            try:
                found = re.search(r"Plasma memory usage (\d+) MiB", memory_summary(address, stats_only=True))
            except Exception:  # the cluster is going down
                continue
            if found:
                self.peak_mib = max(self.peak_mib, float(found.group(1)))

    def close(self) -> float:
        self.stop.set()
        self.thread.join()
        return self.peak_mib


def measure(scale: Scale, args) -> dict:
    """One configuration, in this process (a fresh one per configuration: its peak RSS is the driver's)."""
    from actors.driver import run_rounds
    from pipeline.loop.preflight import plan_run

    base_config = load_config(args.config)
    data = scaled_pool(prepared(base_config), scale.rows, scale.size, base_config.data.cache_dir)
    run_dir = Path(args.run_root) / scale.name
    shutil.rmtree(run_dir, ignore_errors=True)  # every measurement starts fresh processes on a fresh run
    sets = [
        f"schedule.initial={scale.labelled}",
        f"schedule.round_ends=[{scale.labelled + args.k}]",
        "train_target_at_end=false",
        "strategy=clactive",
        "proxy.epochs=1",
        f"update.steps={args.steps}",
        f"acquisition={scale.acquisition}",
    ]
    if scale.candidates is not None:
        sets.append(f"scoring.candidates={scale.candidates}")
    config = load_config(args.config, sets, run_dir=str(run_dir))
    start_ray()
    store_peak = ObjectStorePeak()
    start = time.perf_counter()
    try:
        records = run_rounds(plan_run(config, data), no_progress_timeout_s=1800)["records"]
    finally:
        object_store_mib = store_peak.close()
    wall_s = time.perf_counter() - start
    first, scored = records
    s0, s1 = first["seconds"], scored["seconds"]
    overhead = (s1["score"] - s1["score_compute"]) + s1["learner_overhead"]
    return {
        "rows": scale.rows,
        "image_shape": list(data.image_shape),
        "labelled_round_0": scale.labelled,
        "acquisition": scale.acquisition,
        "candidates": scored["candidates"],
        "k": args.k,
        "update_steps": args.steps,
        "score_s": s1["score"],
        "score_compute_s": s1["score_compute"],
        "images_per_s": scored["candidates"] / s1["score"],
        "round_0_update_s": s0["update"],
        "round_0_steps": first["steps"],
        "round_0_read_rows_s": s0["read_rows"],
        "update_s": s1["update"],
        "read_rows_s": s1["read_rows"],
        "round_s": s1["round"],
        "overhead_s": overhead,
        "overhead_share": overhead / s1["round"],
        "peak_rss_mib": {
            "driver": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "coordinator": scored["peak_rss_mib"]["coordinator"],
            "learner": max(first["peak_rss_mib"]["learner"], scored["peak_rss_mib"]["learner"]),
            "scorer": scored["peak_rss_mib"]["scorers"],
        },
        "object_store_peak_mib": object_store_mib,
        "wall_s": wall_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/fashion_mnist.yaml")
    parser.add_argument("--only", nargs="+", choices=sorted(CONFIGS), default=sorted(CONFIGS))
    parser.add_argument("--k", type=int, default=600, help="labels acquired in round 1")
    parser.add_argument("--steps", type=int, default=200, help="update.steps of round 1")
    parser.add_argument("--run-root", default="runs/bench-scale")
    parser.add_argument("--measure", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:  # the child: one configuration, its figures as the last line of stdout
        print(json.dumps(measure(CONFIGS[args.measure], args)))
        return
    path = RESULTS / "scale.json"
    by_config = json.loads(path.read_text()).get("by_config", {}) if path.is_file() else {}
    base_config = load_config(args.config)
    for name in args.only:
        scale = CONFIGS[name]
        scaled_pool(prepared(base_config), scale.rows, scale.size, base_config.data.cache_dir)  # here, not in the child
        child = [
            sys.executable,
            "-m",
            "benchmarks.scale",
            "--measure",
            name,
            "--config",
            args.config,
            "--k",
            str(args.k),
            "--steps",
            str(args.steps),
            "--run-root",
            args.run_root,
        ]
        done = subprocess.run(child, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed ({done.returncode}); its output:\n{done.stdout[-3000:]}")
        by_config[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: {json.dumps(by_config[name])}", flush=True)

    rows = [
        [
            name,
            m["rows"],
            "x".join(map(str, m["image_shape"])),
            m["labelled_round_0"],
            m["candidates"],
            m["score_s"],
            m["images_per_s"],
            m["round_0_update_s"],
            m["update_s"],
            m["overhead_s"],
            m["peak_rss_mib"]["driver"],
            m["peak_rss_mib"]["coordinator"],
            m["peak_rss_mib"]["scorer"],
            m["peak_rss_mib"]["learner"],
            m["object_store_peak_mib"],
        ]
        for name, m in sorted(by_config.items())
    ]
    print_table(
        [
            "config",
            "pool",
            "image",
            "labelled",
            "scored",
            "score s",
            "images/s",
            "round 0 update s",
            "update s",
            "overhead s",
            "driver MiB",
            "coord MiB",
            "scorer MiB",
            "worker MiB",
            "store MiB",
        ],
        rows,
    )
    figures = {}
    if {"labels-30k-64", "labels-600k-64"} <= set(by_config):
        figures["coordinator_rss_ratio"] = (
            by_config["labels-600k-64"]["peak_rss_mib"]["coordinator"]
            / by_config["labels-30k-64"]["peak_rss_mib"]["coordinator"]
        )
    if {"pool-60k-28", "pool-1200k-28"} <= set(by_config):
        figures["scoring_rate_ratio"] = (
            by_config["pool-1200k-28"]["images_per_s"] / by_config["pool-60k-28"]["images_per_s"]
        )
    if {"pool-1200k-28", "cluster-margin-1200k-28"} <= set(by_config):
        for process in ("scorer", "coordinator"):
            figures[f"cluster_margin_{process}_rss_ratio"] = (
                by_config["cluster-margin-1200k-28"]["peak_rss_mib"][process]
                / by_config["pool-1200k-28"]["peak_rss_mib"][process]
            )
    written = write_result("scale", {"by_config": by_config, **figures})
    print(" ".join(f"{key} {value:.3f};" for key, value in figures.items()), f"wrote {written}")


if __name__ == "__main__":
    main()

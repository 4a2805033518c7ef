"""What the benchmark scripts share: the prepared data, a plain torch scoring loop, spreads, tables, JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import torch

from pipeline.config.run_config import RunConfig
from pipeline.data import PreparedData, images_from_arrow, prepare_dataset, source_for
from pipeline.ids import in_sorted
from pipeline.loop.preflight import acquisition_for
from pipeline.selection.collector import Collector, Collects, ModelOutput
from pipeline.selection.k_center import min_sq_distances
from pipeline.update.models import create_model
from pipeline.update.training import load_weights, predict

RESULTS = Path(__file__).parent / "results"


def prepared(config: RunConfig) -> PreparedData:
    return prepare_dataset(source_for(config.data), config.data.cache_dir, config.data.shard_rows)


def start_ray() -> None:
    """The Ray a run would use (actors.cluster.connect): its own local one, or the cluster at RAY_ADDRESS;
    never a stale `ray start` session. Measured under the same settings as `clactive run`."""
    import ray

    from actors.cluster import connect

    connect()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_no_progress_timeout_s = 600  # a starved pipeline fails instead of hanging


def machine() -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {memory_gib:.0f} GiB RAM, {gpu}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, torch {torch.__version__}"
    )


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    meta = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "command": f"python -m {sys.modules['__main__'].__spec__.name}" + "".join(f" {a}" for a in sys.argv[1:]),
    }
    path.write_text(json.dumps({**meta, **payload}, indent=1) + "\n")
    return path


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)), flush=True)


def plain_select(
    config: RunConfig,
    data: PreparedData,
    model_name: str,
    weights: bytes,
    labelled_ids: np.ndarray,
    k: int,
    seed: int,
    threads: int,
    candidate_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """The scoring pass of `actors.scorer.ScorerPool.select` in one process with no Ray: the same shards,
    batch size, model and acquisition, through the same collector (pipeline.selection.acquisition), over
    `candidate_ids` (ascending) or every unlabelled row; a set-based acquisition's second pass reads the
    labelled rows here too. Returns (chosen ids, wall seconds including the model load)."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model = load_weights(create_model(model_name, data.image_shape[0], data.num_classes), weights).eval()
    acquisition = acquisition_for(config)
    labelled = np.sort(labelled_ids)
    pool = pads.dataset(data.split_dir("pool"), format="parquet")
    batch_size = config.scoring.batch_size

    cpu = torch.device("cpu")

    def outputs(images: torch.Tensor, needs: str) -> ModelOutput:
        return predict(model, images, mean=data.mean, std=data.std, device=cpu, output=needs)

    def labelled_distances(candidate_emb: np.ndarray) -> np.ndarray:
        min_dist = np.full(len(candidate_emb), np.inf, dtype=np.float32)
        for _, images in kept_batches(pool, lambda ids: in_sorted(ids, labelled), batch_size, data.image_shape):
            embeddings = predict(model, images, mean=data.mean, std=data.std, device=cpu, output="embeddings")
            min_dist = min_sq_distances(candidate_emb, embeddings, min_dist)
        return min_dist

    def wanted(ids: np.ndarray) -> np.ndarray:
        return ~in_sorted(ids, labelled) if candidate_ids is None else in_sorted(ids, candidate_ids)

    collector = acquisition.collector(k, seed)
    for pool_ids, images in kept_batches(pool, wanted, batch_size, data.image_shape):
        # None: the acquisition uses no model output, so no forward pass (as in the scorers)
        collector.push(pool_ids, None if acquisition.needs is None else outputs(images, acquisition.needs))
    chosen = collector.select(labelled_distances).pool_ids
    return chosen, time.perf_counter() - start


def plain_collect(
    config: RunConfig,
    data: PreparedData,
    model_name: str,
    weights: bytes,
    acquisition: Collects,
    candidate_ids: np.ndarray | None,
    threads: int,
) -> Collector:
    """`actors.scorer.ScorerPool.collect` in one process: one pass of `acquisition` over the pool's
    `candidate_ids` (ascending; None: every row), into one collector."""
    torch.set_num_threads(threads)
    model = load_weights(create_model(model_name, data.image_shape[0], data.num_classes), weights).eval()
    pool = pads.dataset(data.split_dir("pool"), format="parquet")
    collector, cpu = acquisition.collector(0, 0), torch.device("cpu")

    def wanted(ids: np.ndarray) -> np.ndarray:
        return np.ones(len(ids), bool) if candidate_ids is None else in_sorted(ids, candidate_ids)

    for pool_ids, images in kept_batches(pool, wanted, config.scoring.batch_size, data.image_shape):
        needs = acquisition.needs
        out = None if needs is None else predict(model, images, mean=data.mean, std=data.std, device=cpu, output=needs)
        collector.push(pool_ids, out)
    return collector


def kept_batches(
    pool: pads.Dataset, keep: Callable[[np.ndarray], np.ndarray], batch_size: int, image_shape: tuple[int, int, int]
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """(pool ids (B,), images (B, C, H, W)) of the pool rows whose ids `keep` marks, in full batches: rows
    are dropped before decoding and the kept ones regrouped, as the Ray path's read tasks and iter_batches
    do. The kept rows are held in memory: a benchmark's pool, not millions."""
    kept = []
    for batch in pool.to_batches(columns=["id", "image"], batch_size=batch_size):
        kept.append(batch.filter(pa.array(keep(batch.column("id").to_numpy()))))
    table = pa.Table.from_batches(kept).combine_chunks()
    for batch in table.to_batches(max_chunksize=batch_size):
        yield batch.column("id").to_numpy(), torch.from_numpy(images_from_arrow(batch.column("image"), image_shape))

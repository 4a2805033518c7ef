"""Scoring the unlabelled pool with Ray Data: Parquet shards stream through an actor pool.

read_parquet(id, image) -> map_batches(PoolScorer, ActorPoolStrategy, num_gpus when present)
-> the coordinator folds each scored batch into a StreamingTopK, so no step holds the
scores of the whole pool.
"""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import ray
import torch

from actors.resources import read_args, scoring_map_args
from pipeline.acquisition import Acquisition, StreamingTopK, get_acquisition
from pipeline.config import RunConfig
from pipeline.data import PreparedData, images_from_arrow
from pipeline.faults import Hook
from pipeline.models import create_model
from pipeline.training import load_weights, predict, torch_threads


def in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Boolean mask: which `values` occur in the ascending array `sorted_set`."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values


class PoolScorer:
    """Ray Data callable class: loads the selection model once, scores Arrow batches.

    Object refs arrive wrapped in one-element lists so Ray hands them over unresolved and the
    actor fetches each once.
    """

    def __init__(self, model_name: str, data: dict, weights: list, labelled_ids: list, acquisition: str,
                 seed: int, threads: int, hook: Hook = Hook()):
        self.data = PreparedData(**data)
        gpu = bool(ray.get_gpu_ids()) and torch.cuda.is_available()  # logical GPUs alone never mean CUDA
        self.device = torch.device("cuda" if gpu else "cpu")
        torch.set_num_threads(threads)
        model = create_model(model_name, self.data.image_shape[0], self.data.num_classes)
        self.model = load_weights(model, ray.get(weights[0])).to(self.device).eval()
        self.labelled_ids = ray.get(labelled_ids[0])
        self.acquisition: Acquisition = get_acquisition(acquisition)
        self.seed = seed
        self.hook = hook

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        self.hook.at("scorer")
        pool_ids = batch.column("id").to_numpy()
        labelled = in_sorted(pool_ids, self.labelled_ids)
        streamable = self.acquisition.streamable
        rows = ~labelled if streamable else np.ones(len(pool_ids), dtype=bool)
        out = None
        if self.acquisition.needs is not None:
            images = torch.from_numpy(images_from_arrow(batch.column("image"), self.data.image_shape)[rows])
            out = predict(self.model, images, mean=self.data.mean, std=self.data.std, device=self.device,
                          output=self.acquisition.needs)
        if streamable:
            scored = {"id": pool_ids[rows], "score": self.acquisition.score(out, pool_ids[rows], self.seed)}
        else:
            scored = {"id": pool_ids, "labelled": labelled, "embedding": out}
        # The batch's compute time, spread over its rows (Ray Data has no per-batch side channel):
        # what scoring costs without the framework, for the overhead figures.
        scored["busy_s"] = np.full(len(scored["id"]), (time.perf_counter() - start) / max(len(scored["id"]), 1))
        return scored


def select(config: RunConfig, data: PreparedData, model_name: str, weights: bytes, labelled_ids: np.ndarray,
           k: int, seed: int, hook: Hook = Hook(), pool: str | list[str] | None = None) -> tuple[np.ndarray, dict]:
    """The k ids to label next from `pool` (Parquet files or a directory; default: the prepared pool).

    Also returns {"score", "select": seconds, "score_compute": the seconds the scoring actors
    computed (summed over actors, divided by their maximum number), "candidates": unlabelled
    examples scored}.
    """
    start = time.perf_counter()
    acquisition = get_acquisition(config.acquisition)
    ds = ray.data.read_parquet(pool or data.split_dir("pool"), **read_args(config.scoring))
    ds = ds.select_columns(["id", "image"])
    scored = ds.map_batches(
        PoolScorer, batch_format="pyarrow", **scoring_map_args(config.scoring),
        fn_constructor_kwargs=dict(
            model_name=model_name, data=asdict(data), weights=[ray.put(weights)],
            labelled_ids=[ray.put(np.sort(labelled_ids))], acquisition=config.acquisition, seed=seed,
            threads=torch_threads(config.scoring.max_actors), hook=hook))
    select_s, busy_s = 0.0, 0.0
    if acquisition.streamable:
        topk = StreamingTopK(k)
        for i, batch in enumerate(scored.iter_batches(batch_size=None, batch_format="numpy")):
            t = time.perf_counter()
            busy_s += float(batch["busy_s"].sum())
            topk.push(batch["id"], batch["score"])
            select_s += time.perf_counter() - t
            if i == 0:
                hook.at("score")
        t = time.perf_counter()
        chosen, _ = topk.result()
        select_s += time.perf_counter() - t
        candidates = topk.seen
    else:
        # Set-based selection needs every embedding at once: O(pool x D) floats on this actor.
        parts = []
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            parts.append(batch)
            if len(parts) == 1:
                hook.at("score")
        t = time.perf_counter()
        busy_s = float(sum(p["busy_s"].sum() for p in parts))
        pool_ids = np.concatenate([p["id"] for p in parts])
        labelled = np.concatenate([p["labelled"] for p in parts])
        emb = np.concatenate([p["embedding"] for p in parts])
        candidates = int((~labelled).sum())
        picks = acquisition.select(emb[~labelled], emb[labelled], k)
        chosen = pool_ids[~labelled][picks]
        select_s = time.perf_counter() - t
    total = time.perf_counter() - start
    return chosen, {"score": total - select_s, "select": select_s,
                    "score_compute": busy_s / max(config.scoring.max_actors, 1), "candidates": candidates}


def label_hints(config: RunConfig, data: PreparedData, model_name: str, weights: bytes, pool_ids: np.ndarray,
                images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """For annotators, per requested example: the selection model's predicted label, its
    probability, and the acquisition score (NaN where the acquisition scores sets, not examples:
    k_center). Recomputed in this process on the requested images only, with the weights and seed
    that scored the pool; used by the external oracle alone, so the scoring pass stays as it is.

    pool_ids (n,), images (n, C, H, W) uint8 pixels or int32 token ids -> {name: (n,)}.
    """
    model = load_weights(create_model(model_name, data.image_shape[0], data.num_classes), weights)
    probs = predict(model, torch.from_numpy(np.ascontiguousarray(images)), mean=data.mean, std=data.std,
                    device=torch.device("cpu"))  # (n, K)
    acquisition = get_acquisition(config.acquisition)
    score = (acquisition.score(probs, pool_ids, seed) if acquisition.streamable
             else np.full(len(pool_ids), np.nan))
    return {"predicted_label": probs.argmax(axis=1), "predicted_prob": probs.max(axis=1).astype(np.float64),
            "score": score}

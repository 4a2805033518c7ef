"""Scoring the unlabelled pool: Ray Data streams Parquet blocks to scoring actors that live for the run.

    pool files, dealt round-robin -> n x read_parquet(id, image) -> n Scorer actors (num_gpus when present)

A scorer is started once per run, so torch's import, the model's construction and the CUDA
context are paid once, not every round: a round only ships the new weights (one object ref) and
a lazy dataset over the scorer's share of the pool's files, which the scorer executes itself:
Ray Data's read tasks stream the blocks to it. Each scorer keeps the top k of its shard
(StreamingTopK), so no process ever holds the scores of the whole pool; the coordinator merges
the n top-k lists, which is exact because every id of the global top k is in its own shard's top k.

A fresh Ray Data actor pool per pass (map_batches with ActorPoolStrategy) was the first design:
each pass then paid 4-5 s of actor start-up and model loading, a fixed cost that made scoring
0.75 of a plain torch loop and 27% of a round's time framework overhead (issue 11's figures).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import ray
import torch

from actors.resources import read_args, scorer_resources
from pipeline.acquisition import (Acquisition, PerExampleAcquisition, SetAcquisition, StreamingTopK,
                                  get_acquisition, in_sorted)
from pipeline.config import RunConfig
from pipeline.data import PreparedData, images_from_arrow
from pipeline.data.pool import split_files
from pipeline.faults import Hook
from pipeline.models import create_model
from pipeline.training import load_weights, predict, torch_threads

log = logging.getLogger(__name__)

PASS_ATTEMPTS = 3  # a pass that loses a scorer is redone from its start, with the restarted actor
RESTART_DEADLINE_S = 600  # how long a redone pass waits for restarted scorers (a GPU node may have to come up)


def per_example(acquisition: Acquisition) -> bool:
    """The scorer's one dispatch on the acquisition contract. True: per-example scores, ranked in a
    stream (a StreamingTopK per shard, merged). False: set-based selection, which gathers every
    unlabelled and labelled embedding of the pool first."""
    if isinstance(acquisition, PerExampleAcquisition):
        return True
    if isinstance(acquisition, SetAcquisition):
        return False
    raise TypeError(f"acquisition '{acquisition.name}' is neither a PerExampleAcquisition nor a SetAcquisition")


class Scorer:
    """One scoring actor: the selection model, built once; each pass loads the round's weights and
    scores its shard of the pool, Arrow batch by Arrow batch."""

    def __init__(self, model_name: str, data: dict, threads: int, hook: Hook = Hook()):
        hook.starting("scorer")
        self.data = PreparedData(**data)
        gpu = bool(ray.get_gpu_ids()) and torch.cuda.is_available()  # logical GPUs alone never mean CUDA
        self.device = torch.device("cuda" if gpu else "cpu")
        torch.set_num_threads(threads)
        self.model = create_model(model_name, self.data.image_shape[0], self.data.num_classes).to(self.device)

    def ready(self) -> bool:
        return True

    def score(self, shard, weights: bytes, labelled_ids: np.ndarray, acquisition_name: str, k: int, seed: int,
              batch_size: int, hook: Hook) -> dict:
        """Scores every batch of `shard` (a Ray Data dataset; None: no file) with `weights`, skipping `labelled_ids`
        (ascending). Per-example acquisitions return {"top": StreamingTopK of the shard}; set-based ones
        return {"rows": every row's "id", "labelled" and "embedding"}, rows None for an empty shard.
        Both add "busy_s", the compute seconds."""
        load_weights(self.model, weights).eval()
        acquisition = get_acquisition(acquisition_name)
        streamed = per_example(acquisition)
        top, parts, busy_s = StreamingTopK(k), [], 0.0
        batches = shard.iter_batches(batch_size=batch_size, batch_format="pyarrow") if shard is not None else []
        for batch in batches:
            start = time.perf_counter()
            hook.at("scorer")
            scored = self._score_batch(batch, labelled_ids, acquisition, streamed, seed)
            if streamed:
                top.push(scored["id"], scored["score"])
            else:
                parts.append(scored)
            busy_s += time.perf_counter() - start
        if streamed:
            return {"top": top, "busy_s": busy_s}
        if not parts:  # a scorer with no file of the pool
            return {"rows": None, "busy_s": busy_s}
        rows = {key: np.concatenate([p[key] for p in parts]) for key in ("id", "labelled", "embedding")}
        return {"rows": rows, "busy_s": busy_s}

    def _score_batch(self, batch: pa.Table, labelled_ids: np.ndarray, acquisition: Acquisition, streamed: bool,
                     seed: int) -> dict[str, np.ndarray]:
        """`streamed` (per_example(acquisition)): {"id", "score"} of the batch's unlabelled rows;
        otherwise {"id", "labelled", "embedding"} of every row."""
        pool_ids = batch.column("id").to_numpy()
        labelled = in_sorted(pool_ids, labelled_ids)
        # set-based selection measures candidates against the labelled examples, so it embeds them too
        to_score = ~labelled if streamed else np.ones(len(pool_ids), dtype=bool)
        out = None
        if acquisition.needs is not None:  # None: the score uses no model output, so skip the forward pass
            images = torch.from_numpy(images_from_arrow(batch.column("image"), self.data.image_shape)[to_score])
            out = predict(self.model, images, mean=self.data.mean, std=self.data.std, device=self.device,
                          output=acquisition.needs)
        if streamed:
            return {"id": pool_ids[to_score], "score": acquisition.score(out, pool_ids[to_score], seed)}
        return {"id": pool_ids, "labelled": labelled, "embedding": out}


class ScorerPool:
    """The run's scoring actors, started on first use and kept until `close`. Held by the
    coordinator: if it dies, they die with it, and the restarted coordinator starts new ones."""

    def __init__(self, config: RunConfig, data: PreparedData, model_name: str, hook: Hook = Hook()):
        self.config, self.data = config, data
        count = config.scoring.actors
        # Ray restarts a scorer that dies, as often as a pass may be redone
        actor = ray.remote(Scorer).options(**scorer_resources(config), max_restarts=PASS_ATTEMPTS)
        self.actors = [actor.remote(model_name, asdict(data), torch_threads(count), hook) for _ in range(count)]

    def select(self, weights: bytes, labelled_ids: np.ndarray, k: int, seed: int, hook: Hook = Hook(),
               pool: str | list[str] | None = None) -> tuple[np.ndarray, dict]:
        """The k ids to label next from `pool` (Parquet files or a directory; default: the prepared pool).

        Also returns {"score", "select": seconds, "score_compute": the seconds the scorers computed
        (summed over actors, divided by their number), "candidates": unlabelled examples scored,
        "redone": passes redone because a scorer died}.
        """
        for attempt in range(1, PASS_ATTEMPTS + 1):
            try:
                chosen, stats = self._select_once(weights, labelled_ids, k, seed, hook, pool)
                return chosen, {**stats, "redone": attempt - 1}
            except ray.exceptions.RayActorError as error:
                if attempt == PASS_ATTEMPTS:
                    raise
                log.warning("a scoring actor died (%s); the pass starts again once the scorers are back",
                            str(error).splitlines()[0])
                wait_until_ready(self.actors, RESTART_DEADLINE_S)

    def _select_once(self, weights: bytes, labelled_ids: np.ndarray, k: int, seed: int, hook: Hook,
                     pool: str | list[str] | None) -> tuple[np.ndarray, dict]:
        start = time.perf_counter()
        weights_ref, labelled_ref = ray.put(weights), ray.put(np.sort(labelled_ids))
        scoring = self.config.scoring
        refs = [actor.score.remote(shard, weights_ref, labelled_ref, self.config.acquisition, k, seed,
                                   scoring.batch_size, hook)
                for actor, shard in zip(self.actors, self._shards(pool or self.data.split_dir("pool")))]
        pending = refs
        try:
            while pending:  # in completion order: a dead scorer's error must not wait behind a live one
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)
        except ray.exceptions.RayActorError:
            # Ray restarts the scorer that died; the pass is redone from its start by all of them,
            # so the others' work on it is dropped (killed, they come back like the dead one).
            for actor, ref in zip(self.actors, refs):
                if ref in pending:
                    ray.kill(actor, no_restart=False)
            raise
        parts = ray.get(refs)
        score_s = time.perf_counter() - start
        busy_s = sum(part["busy_s"] for part in parts) / len(self.actors)

        start = time.perf_counter()
        acquisition = get_acquisition(self.config.acquisition)
        if per_example(acquisition):
            top = StreamingTopK.merged([part["top"] for part in parts], k)
            chosen, _ = top.result()
            candidates = top.seen
        else:
            # Set-based selection needs every embedding at once: O(pool x D) floats on this actor.
            parts = [part["rows"] for part in parts if part["rows"] is not None]
            pool_ids, labelled, emb = (np.concatenate([p[key] for p in parts]) for key in ("id", "labelled", "embedding"))
            candidates = int((~labelled).sum())
            picks = acquisition.select(emb[~labelled], emb[labelled], k)
            chosen = pool_ids[~labelled][picks]
        return chosen, {"score": score_s, "select": time.perf_counter() - start, "score_compute": busy_s,
                        "candidates": candidates}

    def _shards(self, pool: str | list[str]) -> list:
        """One lazy Ray Data dataset per scorer over its share of the pool's files (None: no file),
        which the scorer executes itself. One `streaming_split` would balance blocks dynamically, but
        starts a split-coordinator process every pass: seconds a round on small machines."""
        files = pool if isinstance(pool, list) else split_files(pool)
        shares = [files[i::len(self.actors)] for i in range(len(self.actors))]
        return [ray.data.read_parquet(share, **read_args(self.config.scoring)).select_columns(["id", "image"])
                if share else None for share in shares]

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []


def wait_until_ready(actors: list, deadline_s: float, first_backoff_s: float = 0.2, max_backoff_s: float = 5.0) -> None:
    """Block until every actor answers `ready()`, asking again while Ray restarts it.

    A call to an actor that is restarting fails at once (ActorUnavailableError) instead of
    waiting for it, so a pass redone straight after a death could land before the restart is
    done, as often as it is retried. An actor out of restarts raises ActorDiedError at once.
    """
    deadline, backoff = time.monotonic() + deadline_s, first_backoff_s
    for actor in actors:
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise ray.exceptions.GetTimeoutError
                ray.get(actor.ready.remote(), timeout=left)
                break
            except ray.exceptions.ActorUnavailableError:
                time.sleep(min(backoff, max(left, 0.0)))
                backoff = min(2 * backoff, max_backoff_s)
            except ray.exceptions.GetTimeoutError:
                raise TimeoutError(f"a restarted scoring actor did not come back within {deadline_s:g} s") from None


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
    score = (acquisition.score(probs, pool_ids, seed) if per_example(acquisition)
             else np.full(len(pool_ids), np.nan))
    return {"predicted_label": probs.argmax(axis=1), "predicted_prob": probs.max(axis=1).astype(np.float64),
            "score": score}

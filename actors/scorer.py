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
from ray.data import DataContext
from ray.data.exceptions import ExecutionTimeoutError

from actors.faults import Hook
from actors.pool_source import PoolShards
from actors.progress import Reporter, Sink
from actors.resources import describe, gpus_available, process_requests, read_args, scorer_resources
from pipeline.config.run_config import RunConfig
from pipeline.data import PreparedData, images_from_arrow
from pipeline.data.pool import split_files
from pipeline.errors import ResourceError
from pipeline.ids import in_sorted
from pipeline.loop.proc import peak_rss_mib
from pipeline.selection.acquisition import (
    Acquisition,
    PerExampleAcquisition,
    SetAcquisition,
    ShortlistAcquisition,
    StreamingTopK,
    check_set_candidates,
    get_acquisition,
    min_sq_distances,
)
from pipeline.update.models import create_model
from pipeline.update.training import load_weights, predict, torch_threads

log = logging.getLogger(__name__)

PASS_ATTEMPTS = 3  # a pass that loses a scorer is redone from its start, with the restarted actor


def per_example(acquisition: Acquisition) -> bool:
    """The scorer's one dispatch on the acquisition contract. True: per-example scores, ranked in a
    stream (a StreamingTopK per shard, merged; a ShortlistAcquisition keeps its shortlist's
    embeddings in it too). False: set-based selection, which gathers every candidate's embedding,
    then streams the labelled rows against them (Scorer.min_distances)."""
    if isinstance(acquisition, PerExampleAcquisition):
        return True
    if isinstance(acquisition, SetAcquisition):
        return False
    raise TypeError(f"acquisition '{acquisition.name}' is neither a PerExampleAcquisition nor a SetAcquisition")


def kept(acquisition: Acquisition, k: int) -> int:
    """How many of a stream's best a scorer keeps: the round's k, or a shortlist acquisition's shortlist."""
    return acquisition.shortlist(k) if isinstance(acquisition, ShortlistAcquisition) else k


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

    def score(
        self,
        shard,
        weights: bytes,
        labelled_ids: np.ndarray,
        candidate_ids: np.ndarray | None,
        acquisition_name: str,
        k: int,
        seed: int,
        batch_size: int,
        hook: Hook,
        report: Reporter = Reporter(None, ""),
    ) -> dict:
        """Scores the candidates in `shard` (a Ray Data dataset; None: no file) with `weights`: the rows in
        `candidate_ids`, or (None) every row not in `labelled_ids` (both ascending). Per-example acquisitions
        return {"top": StreamingTopK of the shard}; set-based ones return {"rows": "id" and "embedding" of
        the candidates}, rows None when the shard has none. Both add "busy_s", the compute seconds,
        "first_batch_s" (from the call to the first batch), "pass_s" (the whole call) and "peak_rss_mib".
        `report` gets the count of candidates scored."""
        called = time.perf_counter()
        load_weights(self.model, weights).eval()
        acquisition = get_acquisition(acquisition_name)
        streamed = per_example(acquisition)
        top, parts, busy_s, scored_count = StreamingTopK(kept(acquisition, k)), [], 0.0, 0
        first_batch_s = None  # from the call to the first batch: weights, read task start-up, first block
        batches = shard.iter_batches(batch_size=batch_size, batch_format="pyarrow") if shard is not None else []
        for batch in batches:
            start = time.perf_counter()
            if first_batch_s is None:
                first_batch_s = start - called
            hook.at("scorer")
            scored = self._score_batch(batch, labelled_ids, candidate_ids, acquisition, streamed, seed)
            if scored is not None and streamed:
                top.push(scored["id"], scored["score"], scored.get("embedding"))
                scored_count += len(scored["id"])
            elif scored is not None:
                parts.append(scored)
                scored_count += len(scored["id"])
            busy_s += time.perf_counter() - start
            report(scored_count)
        report(scored_count, final=True)
        stats = {
            "busy_s": busy_s,
            "first_batch_s": first_batch_s or 0.0,
            "pass_s": time.perf_counter() - called,
            "peak_rss_mib": peak_rss_mib(),
        }
        if streamed:
            return {"top": top, **stats}
        if not parts:  # a scorer with no file of the pool, or no candidate in it
            return {"rows": None, **stats}
        return {"rows": {key: np.concatenate([p[key] for p in parts]) for key in ("id", "embedding")}, **stats}

    def min_distances(self, shard, weights: bytes, candidate_emb: np.ndarray, batch_size: int, hook: Hook) -> dict:
        """Set-based selection's second pass: {"min_dist": (N,) squared distance of each candidate
        (candidate_emb (N, D)) to its nearest row of `shard` (the labelled rows of this scorer's
        files), "busy_s"}. One batch of distances at a time: memory O(N x (D + batch)), not O(labels)."""
        load_weights(self.model, weights).eval()
        min_dist, busy_s = np.full(len(candidate_emb), np.inf, dtype=np.float32), 0.0
        batches = shard.iter_batches(batch_size=batch_size, batch_format="pyarrow") if shard is not None else []
        for batch in batches:
            start = time.perf_counter()
            hook.at("scorer")
            images = torch.from_numpy(images_from_arrow(batch.column("image"), self.data.image_shape))
            embeddings = predict(
                self.model, images, mean=self.data.mean, std=self.data.std, device=self.device, output="embeddings"
            )
            min_dist = min_sq_distances(candidate_emb, embeddings, min_dist)
            busy_s += time.perf_counter() - start
        return {"min_dist": min_dist, "busy_s": busy_s, "peak_rss_mib": peak_rss_mib()}

    def _score_batch(
        self,
        batch: pa.Table,
        labelled_ids: np.ndarray,
        candidate_ids: np.ndarray | None,
        acquisition: Acquisition,
        streamed: bool,
        seed: int,
    ) -> dict[str, np.ndarray] | None:
        """`streamed` (per_example(acquisition)): {"id", "score"} of the batch's candidates (and their
        "embedding" for a shortlist); otherwise {"id", "embedding"} of its candidates. None: nothing to score."""
        pool_ids = batch.column("id").to_numpy()
        to_score = ~in_sorted(pool_ids, labelled_ids) if candidate_ids is None else in_sorted(pool_ids, candidate_ids)
        if not to_score.any():
            return None  # rows are dropped before decoding: a subsampled pass decodes candidates only
        out = None
        if acquisition.needs is not None:  # None: the score uses no model output, so skip the forward pass
            images = torch.from_numpy(images_from_arrow(batch.column("image"), self.data.image_shape)[to_score])
            out = predict(
                self.model, images, mean=self.data.mean, std=self.data.std, device=self.device, output=acquisition.needs
            )
        if isinstance(acquisition, ShortlistAcquisition):
            probs, embeddings = out
            return {
                "id": pool_ids[to_score],
                "score": acquisition.score(probs, pool_ids[to_score], seed),
                "embedding": embeddings,
            }
        if streamed:
            return {"id": pool_ids[to_score], "score": acquisition.score(out, pool_ids[to_score], seed)}
        return {"id": pool_ids[to_score], "embedding": out}


class ScorerPool:
    """The run's scoring actors, started on first use and kept until `close`. Held by the
    coordinator: if it dies, they die with it, and the restarted coordinator starts new ones."""

    def __init__(self, config: RunConfig, data: PreparedData, model_name: str, hook: Hook = Hook()):
        self.config, self.data = config, data
        count = config.scoring.actors
        # Ray restarts a scorer that dies, as often as a pass may be redone
        actor = ray.remote(Scorer).options(**scorer_resources(config), max_restarts=PASS_ATTEMPTS)
        self.actors = [actor.remote(model_name, asdict(data), torch_threads(count), hook) for _ in range(count)]

    def select(
        self,
        weights: bytes,
        labelled_ids: np.ndarray,
        k: int,
        seed: int,
        hook: Hook = Hook(),
        pool: str | list[str] | None = None,
        candidate_ids: np.ndarray | None = None,
        progress: Sink | None = None,
    ) -> tuple[np.ndarray, dict]:
        """The k ids to label next from `pool` (Parquet files or a directory; default: the prepared pool),
        among `candidate_ids` (ascending; None: every unlabelled id).

        Also returns {"score", "select": seconds, "score_compute": the seconds the scorers computed
        (summed over actors, divided by their number), "candidates": unlabelled examples scored,
        "redone": passes redone because a scorer died, "score_mean": the chosen ids' mean score
        (None for set-based selection), "peak_rss_mib": the largest scorer's peak resident memory}.
        `progress`: where the scorers report their counts.
        """
        for attempt in range(1, PASS_ATTEMPTS + 1):
            try:
                chosen, stats = self._select_once(weights, labelled_ids, candidate_ids, k, seed, hook, pool, progress)
                return chosen, {**stats, "redone": attempt - 1}
            except ray.exceptions.RayActorError as error:
                if attempt == PASS_ATTEMPTS:
                    raise
                log.warning(
                    "a scoring actor died (%s); the pass starts again once the scorers are back",
                    str(error).splitlines()[0],
                )
                self._wait_for_restarts()

    def _wait_for_restarts(self) -> None:
        timeout_s = self.config.scoring.placement_timeout_s
        try:
            wait_until_ready(self.actors, timeout_s)
        except TimeoutError:
            need = process_requests(self.config, gpus_available())["scoring actor"]
            raise ResourceError(
                f"a scoring actor died and no node had room to restart it ({describe(need)}) within {timeout_s:g} s "
                "(scoring.placement_timeout_s): was its node lost? The committed rounds are kept; once the cluster "
                f"has such a node, continue with clactive run --resume {self.config.run_dir}"
            ) from None

    def _select_once(
        self,
        weights: bytes,
        labelled_ids: np.ndarray,
        candidate_ids: np.ndarray | None,
        k: int,
        seed: int,
        hook: Hook,
        pool: str | list[str] | None,
        progress: Sink | None,
    ) -> tuple[np.ndarray, dict]:
        start = time.perf_counter()
        labelled_ids = np.sort(labelled_ids)
        weights_ref, labelled_ref, candidates_ref = ray.put(weights), ray.put(labelled_ids), ray.put(candidate_ids)
        acquisition = get_acquisition(self.config.acquisition)
        scoring = self.config.scoring
        pool = pool or self.data.split_dir("pool")
        refs = [
            actor.score.remote(
                shard,
                weights_ref,
                labelled_ref,
                candidates_ref,
                self.config.acquisition,
                k,
                seed,
                scoring.batch_size,
                hook,
                Reporter(progress, f"scorer {i}"),
            )
            for i, (actor, shard) in enumerate(zip(self.actors, self._shards(pool, candidate_ids)))
        ]
        parts = self._gather(refs)
        busy_s = sum(part["busy_s"] for part in parts) / len(self.actors)
        # where a pass's time goes besides compute, averaged over the actors: before the first batch
        # (weights, the read task's start, the first block) and waiting for blocks after it
        first_batch_s = sum(part["first_batch_s"] for part in parts) / len(self.actors)
        starved_s = sum(part["pass_s"] - part["first_batch_s"] - part["busy_s"] for part in parts) / len(self.actors)
        scorer_rss = max(part["peak_rss_mib"] for part in parts)
        if not per_example(acquisition):  # set-based: a second pass, over the labelled rows, is part of scoring
            rows = [part["rows"] for part in parts if part["rows"] is not None]
            scored_ids = np.concatenate([r["id"] for r in rows]) if rows else np.empty(0, np.int64)
            check_set_candidates(self.config.acquisition, len(scored_ids))  # a growing pool may outgrow the bound
            emb = np.concatenate([r["embedding"] for r in rows]) if rows else np.empty((0, 0), np.float32)
            min_dist, second_busy_s, second_rss = self._min_distances(weights_ref, emb, labelled_ids, pool, hook)
            busy_s, scorer_rss = busy_s + second_busy_s, max(scorer_rss, second_rss)
        score_s = time.perf_counter() - start

        start = time.perf_counter()
        score_mean = None
        if isinstance(acquisition, ShortlistAcquisition):
            seen = sum(part["top"].seen for part in parts)
            top = StreamingTopK.merged([part["top"] for part in parts], min(acquisition.shortlist(k), seen))
            shortlist_ids, scores, embeddings = top.result_with_rows()
            picks = acquisition.select(scores, embeddings, k, seed)
            chosen, candidates, score_mean = shortlist_ids[picks], seen, float(scores[picks].mean())
        elif per_example(acquisition):
            top = StreamingTopK.merged([part["top"] for part in parts], k)
            chosen, scores = top.result()
            candidates, score_mean = top.seen, float(scores.mean()) if len(scores) else None
        else:
            chosen, candidates = scored_ids[acquisition.select(emb, min_dist, k)], len(scored_ids)
        return chosen, {
            "score": score_s,
            "select": time.perf_counter() - start,
            "score_compute": busy_s,
            "score_first_batch": first_batch_s,
            "score_starved": starved_s,
            "candidates": candidates,
            "score_mean": score_mean,
            "peak_rss_mib": scorer_rss,
        }

    def _min_distances(
        self, weights_ref, candidate_emb: np.ndarray, labelled_ids: np.ndarray, pool: str | list[str], hook: Hook
    ) -> tuple[np.ndarray, float, float]:
        """Each candidate's squared distance to its nearest labelled example (inf: none labelled),
        from a second pass over the labelled rows: every scorer folds its share of them into its own
        (N,) minimum, and the minima meet here. The compute seconds and the scorers' peak memory too."""
        if len(labelled_ids) == 0 or len(candidate_emb) == 0:
            return np.full(len(candidate_emb), np.inf, dtype=np.float32), 0.0, 0.0
        emb_ref = ray.put(candidate_emb)
        refs = [
            actor.min_distances.remote(shard, weights_ref, emb_ref, self.config.scoring.batch_size, hook)
            for actor, shard in zip(self.actors, self._shards(pool, labelled_ids))
        ]
        parts = self._gather(refs)
        return (
            np.minimum.reduce([part["min_dist"] for part in parts]),
            sum(part["busy_s"] for part in parts) / len(self.actors),
            max(part["peak_rss_mib"] for part in parts),
        )

    def _gather(self, refs: list) -> list:
        """The scorers' results; a dead scorer's error surfaces at once (the pass is redone by
        `select`), and Ray Data's no-progress guard becomes one line in clactive's words."""
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
        except ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, ExecutionTimeoutError):  # Ray Data's no-progress guard, in clactive's words
                raise ResourceError(
                    f"a scoring pass made no progress for {DataContext.get_current().execution_no_progress_timeout_s:g} s:"
                    f" no node had room for a read task of the pool ({read_args(self.config.scoring)['num_cpus']:g} "
                    "CPU) beside the learner's and the scorers' processes: lower learner.cpus_per_worker or "
                    "scoring.cpus_per_actor, or add a node"
                ) from None
            raise
        return ray.get(refs)

    def _shards(self, pool: str | list[str], wanted_ids: np.ndarray | None) -> list:
        """One lazy Ray Data dataset per scorer over its share of the pool's files (None: no file),
        which the scorer executes itself: a read task per shard (actors.pool_source, no listing
        task). One `streaming_split` would balance blocks dynamically, but starts a split-coordinator
        process every pass: seconds a round on small machines.

        With `wanted_ids` (ascending; None: every row), the read task itself keeps only those rows
        (a candidate subset, the labelled rows), so the others' pixels never reach the object store
        or the scorer."""
        files = pool if isinstance(pool, list) else split_files(pool)
        shares = [files[i :: len(self.actors)] for i in range(len(self.actors))]
        return [
            ray.data.read_datasource(PoolShards(share, wanted_ids), **read_args(self.config.scoring)) if share else None
            for share in shares
        ]

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


def label_hints(
    config: RunConfig,
    data: PreparedData,
    model_name: str,
    weights: bytes,
    pool_ids: np.ndarray,
    images: np.ndarray,
    seed: int,
) -> dict[str, np.ndarray]:
    """For annotators, per requested example: the selection model's predicted label, its
    probability, and the acquisition score (NaN where the acquisition scores sets, not examples:
    k_center). Recomputed in this process on the requested images only, with the weights and seed
    that scored the pool; used by the external oracle alone, so the scoring pass stays as it is.

    pool_ids (n,), images (n, C, H, W) uint8 pixels or int32 token ids -> {name: (n,)}.
    """
    model = load_weights(create_model(model_name, data.image_shape[0], data.num_classes), weights)
    probs = predict(
        model, torch.from_numpy(np.ascontiguousarray(images)), mean=data.mean, std=data.std, device=torch.device("cpu")
    )  # (n, K)
    acquisition = get_acquisition(config.acquisition)
    score = acquisition.score(probs, pool_ids, seed) if per_example(acquisition) else np.full(len(pool_ids), np.nan)
    return {
        "predicted_label": probs.argmax(axis=1),
        "predicted_prob": probs.max(axis=1).astype(np.float64),
        "score": score,
    }

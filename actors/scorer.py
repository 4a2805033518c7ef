"""Scoring the unlabelled pool: Ray Data streams Parquet blocks to scoring actors that live for the run.

    pool files, dealt round-robin -> n x read_parquet(id, image) -> n Scorer actors (num_gpus when present)

A scorer is started once per run, so torch's import, the model's construction and the CUDA
context are paid once, not every round: a round only ships the new weights (one object ref) and
a lazy dataset over the scorer's share of the pool's files, which the scorer executes itself:
Ray Data's read tasks stream the blocks to it.

Each scorer pushes its shard's candidates, batch by batch, into the acquisition's collector
(pipeline.selection.acquisition): it computes the model output the acquisition `needs` and never
asks which kind of acquisition it holds. A collector keeps the top k of the shard, a shortlist, or
a set's candidate embeddings, so no process ever holds the scores of the whole pool; the
coordinator merges the n collectors, which is exact (every id of the global top k is in its own
shard's top k), and selects. Set-based selection then measures its candidates against the
labelled rows in a second pass the pool offers it (LabelledPass, Scorer.min_distances).

A fresh Ray Data actor pool per pass (map_batches with ActorPoolStrategy) was the first design:
each pass then paid 4-5 s of actor start-up and model loading, a fixed cost that made scoring
0.75 of a plain torch loop and 27% of a round's time framework overhead (issue 11's figures).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np
import pyarrow as pa
import ray
from ray.data import DataContext
from ray.data.exceptions import ExecutionTimeoutError

from actors.faults import Hook
from actors.pool_source import PoolShards
from actors.progress import Reporter, Sink
from actors.resources import describe, gpus_available, process_requests, read_args, scorer_resources
from actors.restarts import wait_until_ready
from pipeline.config.run_config import RunConfig
from pipeline.data import PreparedData, images_from_arrow
from pipeline.data.pool import split_files
from pipeline.errors import ResourceError
from pipeline.ids import in_sorted
from pipeline.loop.preflight import acquisition_for
from pipeline.loop.proc import peak_rss_mib
from pipeline.loop.seams import ScoredPass
from pipeline.selection.collector import Collector, Collects, LabelledDistances, ModelOutput, Picked
from pipeline.selection.k_center import min_sq_distances

log = logging.getLogger(__name__)

PASS_ATTEMPTS = 3  # a pass that loses a scorer is redone from its start, with the restarted actor


class Scorer:
    """One scoring actor: the selection model, built once; each pass loads the round's weights and
    scores its shard of the pool, Arrow batch by Arrow batch."""

    def __init__(self, model_name: str, data: dict, share: int, hook: Hook = Hook()):
        hook.starting("scorer")
        from actors.scoring_model import ScoringModel  # torch: in this actor's process, not the coordinator's

        self.data = PreparedData(**data)
        self.model = ScoringModel(model_name, self.data, share, gpu=bool(ray.get_gpu_ids()))

    def ready(self) -> bool:
        return True

    def score(
        self,
        shard,
        weights: bytes,
        labelled_ids: np.ndarray,
        candidate_ids: np.ndarray | None,
        acquisition: Collects,
        k: int,
        seed: int,
        batch_size: int,
        hook: Hook,
        report: Reporter = Reporter(None, ""),
    ) -> dict:
        """Scores the candidates in `shard` (a Ray Data dataset; None: no file) with `weights`: the rows in
        `candidate_ids`, or (None) every row not in `labelled_ids` (both ascending). Returns {"collector":
        the acquisition's Collector of them, "busy_s": the compute seconds, "first_batch_s" (from the call
        to the first batch), "pass_s" (the whole call), "peak_rss_mib"}. `report` gets the count scored."""
        called = time.perf_counter()
        self.model.load(weights)
        collector = acquisition.collector(k, seed)
        busy_s, scored_count = 0.0, 0
        first_batch_s = None  # from the call to the first batch: weights, read task start-up, first block
        batches = shard.iter_batches(batch_size=batch_size, batch_format="pyarrow") if shard is not None else []
        for batch in batches:
            start = time.perf_counter()
            if first_batch_s is None:
                first_batch_s = start - called
            hook.at("scorer")
            candidates = self._candidates(batch, labelled_ids, candidate_ids, acquisition.needs)
            if candidates is not None:
                collector.push(*candidates)
                scored_count += len(candidates[0])
            busy_s += time.perf_counter() - start
            report(scored_count)
        report(scored_count, final=True)
        return {
            "collector": collector,
            "busy_s": busy_s,
            "first_batch_s": first_batch_s or 0.0,
            "pass_s": time.perf_counter() - called,
            "peak_rss_mib": peak_rss_mib(),
        }

    def min_distances(self, shard, weights: bytes, candidate_emb: np.ndarray, batch_size: int, hook: Hook) -> dict:
        """Set-based selection's second pass: {"min_dist": (N,) squared distance of each candidate
        (candidate_emb (N, D)) to its nearest row of `shard` (the labelled rows of this scorer's
        files), "busy_s"}. One batch of distances at a time: memory O(N x (D + batch)), not O(labels)."""
        self.model.load(weights)
        min_dist, busy_s = np.full(len(candidate_emb), np.inf, dtype=np.float32), 0.0
        batches = shard.iter_batches(batch_size=batch_size, batch_format="pyarrow") if shard is not None else []
        for batch in batches:
            start = time.perf_counter()
            hook.at("scorer")
            images = images_from_arrow(batch.column("image"), self.data.image_shape)
            embeddings = self.model.embeddings(images)
            min_dist = min_sq_distances(candidate_emb, embeddings, min_dist)
            busy_s += time.perf_counter() - start
        return {"min_dist": min_dist, "busy_s": busy_s, "peak_rss_mib": peak_rss_mib()}

    def _candidates(
        self, batch: pa.Table, labelled_ids: np.ndarray, candidate_ids: np.ndarray | None, needs: str | None
    ) -> tuple[np.ndarray, ModelOutput] | None:
        """The batch's candidates: their pool ids (N,) and the model output `needs` names for them
        (batch_pos aligned; None: the acquisition uses none, so no forward pass). None: no candidate."""
        pool_ids = batch.column("id").to_numpy()
        to_score = ~in_sorted(pool_ids, labelled_ids) if candidate_ids is None else in_sorted(pool_ids, candidate_ids)
        if not to_score.any():
            return None  # rows are dropped before decoding: a subsampled pass decodes candidates only
        out: ModelOutput = None
        if needs is not None:
            out = self.model.output(images_from_arrow(batch.column("image"), self.data.image_shape)[to_score], needs)
        return pool_ids[to_score], out


class ScorerPool:
    """The run's scoring actors, started on first use and kept until `close`. Held by the
    coordinator: if it dies, they die with it, and the restarted coordinator starts new ones."""

    def __init__(self, config: RunConfig, data: PreparedData, model_name: str, hook: Hook = Hook()):
        self.config, self.data = config, data
        count = config.scoring.actors
        # Ray restarts a scorer that dies, as often as a pass may be redone
        actor = ray.remote(Scorer).options(**scorer_resources(config), max_restarts=PASS_ATTEMPTS)
        self.actors = [actor.remote(model_name, asdict(data), count, hook) for _ in range(count)]

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
    ) -> ScoredPass:
        """The k ids to label next from `pool` (Parquet files or a directory; default: the prepared pool),
        among `candidate_ids` (ascending; None: every unlabelled id), and what finding them cost: seconds
        {"score", "select", "score_compute": the seconds the scorers computed (summed over actors, divided
        by their number), "score_first_batch", "score_starved": where the rest of the pass went}, the
        passes redone because a scorer died, the largest scorer's peak memory. `progress`: where the
        scorers report their counts."""
        redone = 0
        while True:
            try:
                scored = self._select_once(weights, labelled_ids, candidate_ids, k, seed, hook, pool, progress)
                return replace(scored, redone=redone)
            except ray.exceptions.RayActorError as error:
                if redone + 1 == PASS_ATTEMPTS:
                    raise
                log.warning(
                    "a scoring actor died (%s); the pass starts again once the scorers are back",
                    str(error).splitlines()[0],
                )
                self._wait_for_restarts()
                redone += 1

    def collect(
        self, weights: bytes, acquisition: Collects, candidate_ids: np.ndarray | None, hook: Hook = Hook()
    ) -> Collector:
        """One pass of `acquisition` over the prepared pool's `candidate_ids` (ascending; None: every row,
        labelled or not), the scorers' collectors merged: a neighbour index's embedding passes. Redone
        from its start when a scorer dies, like `select`."""
        for attempt in range(PASS_ATTEMPTS):
            try:
                parts = self._score_shards(
                    ray.put(weights),
                    np.empty(0, np.int64),
                    candidate_ids,
                    0,
                    0,
                    hook,
                    self.data.split_dir("pool"),
                    None,
                    acquisition,
                )
                break
            except ray.exceptions.RayActorError:
                if attempt + 1 == PASS_ATTEMPTS:
                    raise
                self._wait_for_restarts()
        collector = acquisition.collector(0, 0)
        for part in parts:
            collector.merge(part["collector"])
        return collector

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
    ) -> ScoredPass:
        start = time.perf_counter()
        labelled_ids = np.sort(labelled_ids)
        weights_ref = ray.put(weights)
        pool = pool or self.data.split_dir("pool")
        parts = self._score_shards(weights_ref, labelled_ids, candidate_ids, k, seed, hook, pool, progress)
        score_s = time.perf_counter() - start

        start = time.perf_counter()
        labelled = LabelledPass(lambda emb: self._min_distances(weights_ref, emb, labelled_ids, pool, hook))
        collector, picked = self._choose([part["collector"] for part in parts], k, seed, labelled)
        n = len(self.actors)
        return ScoredPass(
            picked.pool_ids,
            collector.seen,
            {
                "score": score_s + labelled.wall_s,  # set-based: the second pass, over the labelled rows, is scoring
                "select": time.perf_counter() - start - labelled.wall_s,
                "score_compute": sum(part["busy_s"] for part in parts) / n + labelled.busy_s,
                # where a pass's time goes besides compute, averaged over the actors: before the first batch
                # (weights, the read task's start, the first block) and waiting for blocks after it
                "score_first_batch": sum(part["first_batch_s"] for part in parts) / n,
                "score_starved": sum(part["pass_s"] - part["first_batch_s"] - part["busy_s"] for part in parts) / n,
            },
            picked.score_mean,
            peak_rss_mib=max(max(part["peak_rss_mib"] for part in parts), labelled.peak_rss_mib),
        )

    def _score_shards(
        self,
        weights_ref,
        labelled_ids: np.ndarray,
        candidate_ids: np.ndarray | None,
        k: int,
        seed: int,
        hook: Hook,
        pool: str | list[str],
        progress: Sink | None,
        acquisition: Collects | None = None,
    ) -> list[dict]:
        """Every scorer's Scorer.score over its share of `pool`, with `acquisition` (None: the run's)."""
        labelled_ref, candidates_ref = ray.put(labelled_ids), ray.put(candidate_ids)
        scoring = self.config.scoring
        return self._gather(
            [
                actor.score.remote(
                    shard,
                    weights_ref,
                    labelled_ref,
                    candidates_ref,
                    acquisition or acquisition_for(self.config),
                    k,
                    seed,
                    scoring.batch_size,
                    hook,
                    Reporter(progress, f"scorer {i}"),
                )
                for i, (actor, shard) in enumerate(zip(self.actors, self._shards(pool, candidate_ids)))
            ]
        )

    def _choose(
        self, parts: list[Collector], k: int, seed: int, labelled: LabelledDistances
    ) -> tuple[Collector, Picked]:
        """Merges the scorers' collectors into the round's (exact) and selects from it. No Ray here:
        a unit test drives it in one process."""
        collector = acquisition_for(self.config).collector(k, seed)
        for part in parts:
            collector.merge(part)
        return collector, collector.select(labelled)

    def _min_distances(
        self, weights_ref, candidate_emb: np.ndarray, labelled_ids: np.ndarray, pool: str | list[str], hook: Hook
    ) -> tuple[np.ndarray, float, float]:
        """candidate_emb (N, D) -> (N,) each candidate's squared distance to its nearest labelled example
        (inf: none labelled), cand_pos as given, from a second pass over the labelled rows: every scorer folds
        its share of them into its own (N,) minimum, and the minima meet here. The compute seconds and the
        scorers' peak memory too."""
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
                timeout_s = DataContext.get_current().execution_no_progress_timeout_s
                raise ResourceError(
                    f"a scoring pass made no progress for {timeout_s:g} s:"
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


class LabelledPass:
    """Set-based selection's second pass as the collector's `labelled_distances` (ScorerPool._min_distances):
    it records the pass's wall and compute seconds and the scorers' peak memory, which the round counts as
    scoring. A collector that never calls it (every streamed acquisition) costs nothing."""

    def __init__(self, measure: Callable[[np.ndarray], tuple[np.ndarray, float, float]]):
        self.measure = measure
        self.wall_s = self.busy_s = self.peak_rss_mib = 0.0

    def __call__(self, candidate_emb: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        min_dist, self.busy_s, self.peak_rss_mib = self.measure(candidate_emb)
        self.wall_s = time.perf_counter() - start
        return min_dist

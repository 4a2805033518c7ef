"""Acquisition functions: which unlabelled examples to label next. Pure numpy, no Ray.

Index spaces: `pool_ids` are the stable int64 ids of the pool; `batch_pos` are positions in
one scored batch. Every score is "higher = label first".

Three contracts; every registered acquisition follows exactly one:
  PerExampleAcquisition  `_score`: an example's score depends on that example alone, so the pool
                         is ranked in a stream (StreamingTopK), shard by shard.
  ShortlistAcquisition   `_score` and `select`: ranked in a stream like the above, keeping the
                         `shortlist(k)` best with their embeddings, then k picked from that
                         shortlist as a set (Cluster-Margin). Memory: the shortlist, not the pool.
  SetAcquisition         `select`: picks k candidates at once from every candidate's embedding and
                         its distance to the nearest labelled example. The labelled side streams
                         (min_sq_distances, batch by batch); the candidates are held at once, at
                         most MAX_SET_CANDIDATES of them (check_set_candidates).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from pipeline.errors import ConfigError, PoolExhaustedError
from pipeline.registry import Registry

ACQUISITIONS: Registry[type[Acquisition]] = Registry("acquisition")


def get_acquisition(name: str) -> Acquisition:
    return ACQUISITIONS.get(name)()


class Acquisition(ABC):
    """Common parent of the two contracts below. `needs` says what the scorer computes per example:
    "probs" (softmax, (N, K)), "embeddings" ((N, D)) or None (nothing: no forward pass)."""

    name: str
    needs: str | None


class PerExampleAcquisition(Acquisition):
    """Scores each example on its own: probs (N, K), pool_ids (N,), seed -> scores (N,) float64,
    higher = label first. An example's score depends only on its own row, id and the seed, so any
    batching or order of the pool ranks the same.

    Subclasses implement `_score` only; `score` checks the inputs and hands it float64 probs.
    `needs` is "probs", or None when the score uses no model output (probs may then be None).
    """

    needs: str | None = "probs"

    def score(self, probs: np.ndarray | None, pool_ids: np.ndarray, seed: int) -> np.ndarray:
        """probs (N, K) softmax rows (or None when `needs` is None), pool_ids (N,) -> scores (N,) float64."""
        if probs is None:
            if self.needs is not None:
                raise ValueError(f"acquisition '{self.name}' scores model outputs ({self.needs}), but got none")
        elif probs.ndim != 2 or probs.shape[0] != pool_ids.shape[0]:
            raise ValueError(f"probs {probs.shape} and pool_ids {pool_ids.shape} do not match")
        else:
            probs = np.asarray(probs, dtype=np.float64)
        return np.asarray(self._score(probs, pool_ids, seed), dtype=np.float64)

    @abstractmethod
    def _score(self, probs: np.ndarray | None, pool_ids: np.ndarray, seed: int) -> np.ndarray: ...


class ShortlistAcquisition(PerExampleAcquisition):
    """A per-example score ranks the pool in a stream and keeps the `shortlist(k)` best rows with
    their embeddings; `select(scores, embeddings, k, seed)` then picks k positions of that shortlist.
    The scorer computes probs and embeddings in one forward pass ("probs+embeddings")."""

    needs = "probs+embeddings"

    def shortlist(self, k: int) -> int:
        return k

    @abstractmethod
    def select(self, scores: np.ndarray, embeddings: np.ndarray, k: int, seed: int) -> np.ndarray: ...


class SetAcquisition(Acquisition):
    """Selects a set: candidate_emb (N, D), min_dist (N,) squared distance of each candidate to its
    nearest labelled example (inf: none labelled), k -> k distinct positions into candidate_emb, in
    pick order; raises PoolExhaustedError when k > N. A pick depends on every other candidate, so
    the candidates' embeddings are gathered first; the labelled examples only ever reach a
    candidate through min_dist, which scorers compute in a stream (min_sq_distances)."""

    needs = "embeddings"

    @abstractmethod
    def select(self, candidate_emb: np.ndarray, min_dist: np.ndarray, k: int) -> np.ndarray: ...


# Set-based selection holds every candidate's embedding in one process (the coordinator, and each
# scorer while it measures the labelled rows against them): N x D float32, plus a scoring batch's
# B x N distances. 100k candidates of a 512-wide embedding is 200 MB.
MAX_SET_CANDIDATES = 100_000


def check_set_candidates(acquisition_name: str, candidates: int) -> None:
    """ConfigError (one line) when a set-based acquisition would hold more than MAX_SET_CANDIDATES."""
    if candidates > MAX_SET_CANDIDATES and isinstance(get_acquisition(acquisition_name), SetAcquisition):
        raise ConfigError(
            f"acquisition {acquisition_name} holds every candidate's embedding in one process, at most "
            f"{MAX_SET_CANDIDATES} candidates a round, and this round has {candidates}: set "
            f"scoring.candidates (e.g. {MAX_SET_CANDIDATES // 2}) to score a random subset each round"
        )


@ACQUISITIONS.register("least_confidence")
class LeastConfidence(PerExampleAcquisition):
    def _score(self, probs, pool_ids, seed):
        return 1.0 - probs.max(axis=1)


@ACQUISITIONS.register("entropy")
class Entropy(PerExampleAcquisition):
    def _score(self, probs, pool_ids, seed):
        return -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(axis=1)


@ACQUISITIONS.register("margin")
class Margin(PerExampleAcquisition):
    """Small gap between the two likeliest classes = high score."""

    def _score(self, probs, pool_ids, seed):
        top2 = np.partition(probs, -2, axis=1)[:, -2:]
        return -(top2[:, 1] - top2[:, 0])


@ACQUISITIONS.register("cluster_margin")
class ClusterMargin(ShortlistAcquisition):
    """Cluster-Margin (Citovsky et al. 2021): the 10k lowest-margin examples, clustered, then the
    batch filled round-robin over the clusters, smallest first (pipeline.selection.cluster_margin)."""

    MARGIN_MULTIPLE = 10  # the paper's k_m = 10 k

    def shortlist(self, k: int) -> int:
        return self.MARGIN_MULTIPLE * k

    def _score(self, probs, pool_ids, seed):
        return Margin()._score(probs, pool_ids, seed)  # -margin: the smallest margins rank first

    def select(self, scores, embeddings, k, seed):
        from pipeline.selection.cluster_margin import cluster_margin_select  # scikit-learn: loaded when this runs

        return cluster_margin_select(-scores, embeddings, k, seed, margin_multiple=self.MARGIN_MULTIPLE)


@ACQUISITIONS.register("random")
class Random(PerExampleAcquisition):
    """A uniform score that depends only on (pool id, seed), so any batching ranks the same.

    It needs no model output, so the scorer skips the forward pass."""

    needs = None

    def _score(self, probs, pool_ids, seed):
        return hashed_uniform(pool_ids, seed)


@ACQUISITIONS.register("k_center")
class KCenter(SetAcquisition):
    def select(self, candidate_emb: np.ndarray, min_dist: np.ndarray, k: int) -> np.ndarray:
        return k_center_from(candidate_emb, min_dist, k)


def hashed_uniform(pool_ids: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64(id ^ seed) mapped to [0, 1): a per-id random number without shared state."""
    with np.errstate(over="ignore"):
        z = pool_ids.astype(np.uint64) ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


class StreamingTopK:
    """Keeps the k highest-scoring pool ids seen so far; memory O(k + batch).

    Ties break toward the smaller pool id, so the result does not depend on how the pool
    was split into batches or in which order the batches arrived.
    """

    def __init__(self, k: int):
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        self.k = k
        self.seen = 0
        self._ids = np.empty(0, dtype=np.int64)
        self._scores = np.empty(0, dtype=np.float64)
        self._rows: np.ndarray | None = None  # a payload row per kept id (a shortlist's embeddings)

    def push(self, pool_ids: np.ndarray, scores: np.ndarray, rows: np.ndarray | None = None) -> None:
        self.seen += len(pool_ids)
        ids = np.concatenate([self._ids, np.asarray(pool_ids, dtype=np.int64)])
        values = np.concatenate([self._scores, np.asarray(scores, dtype=np.float64)])
        kept_rows = None
        if rows is not None:
            kept_rows = rows if self._rows is None else np.concatenate([self._rows, rows])
        if len(ids) > self.k:
            keep = np.lexsort((ids, -values))[: self.k]
            ids, values = ids[keep], values[keep]
            kept_rows = kept_rows[keep] if kept_rows is not None else None
        self._ids, self._scores, self._rows = ids, values, kept_rows

    @classmethod
    def merged(cls, parts: list[StreamingTopK], k: int) -> StreamingTopK:
        """The top k of a pool from the top-k lists of its disjoint parts: exact, since every id of the
        pool's top k is in the top k of its own part."""
        top = cls(k)
        for part in parts:
            top.push(part._ids, part._scores, part._rows)
        top.seen = sum(part.seen for part in parts)
        return top

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(pool_ids, scores), best first. Raises if fewer than k candidates were seen."""
        ids, scores, _ = self.result_with_rows()
        return ids, scores

    def result_with_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(pool_ids, scores, payload rows or None), best first."""
        if self.seen < self.k:
            raise PoolExhaustedError(
                f"pool exhausted: {self.seen} unlabelled available / {self.k} requested; "
                "lower the schedule's round sizes"
            )
        order = np.lexsort((self._ids, -self._scores))
        return self._ids[order], self._scores[order], self._rows[order] if self._rows is not None else None


def top_k(pool_ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """All-at-once reference of StreamingTopK."""
    topk = StreamingTopK(k)
    topk.push(pool_ids, scores)
    return topk.result()


def k_center_greedy(candidate_emb: np.ndarray, labelled_emb: np.ndarray, k: int) -> np.ndarray:
    """Core-set greedy (Sener & Savarese 2018), all at once: the reference of the streamed form.

    candidate_emb (N, D), labelled_emb (M, D) -> k positions into candidate_emb, in pick order.
    """
    return k_center_from(candidate_emb, min_sq_distances(candidate_emb, labelled_emb), k)


def min_sq_distances(
    candidate_emb: np.ndarray, labelled_emb: np.ndarray, so_far: np.ndarray | None = None
) -> np.ndarray:
    """(N,) squared distance of each candidate to its nearest row of labelled_emb (M, D), and to the
    rows seen before when `so_far` (N,) is given: fold batches of labelled rows in one at a time."""
    candidates = np.asarray(candidate_emb, dtype=np.float32)
    min_dist = np.full(len(candidates), np.inf, dtype=np.float32) if so_far is None else so_far
    for start in range(0, len(labelled_emb), 1024):
        min_dist = np.minimum(min_dist, _sq_dist_to_all(candidates, labelled_emb[start : start + 1024]).min(axis=1))
    return min_dist


def k_center_from(candidate_emb: np.ndarray, min_dist: np.ndarray, k: int) -> np.ndarray:
    """Core-set greedy from each candidate's squared distance to the labelled set (inf: none).
    Each pick is the candidate farthest from every labelled example and every earlier pick. With
    no labelled examples the first pick is candidate 0."""
    n = candidate_emb.shape[0]
    if k > n:
        raise PoolExhaustedError(
            f"pool exhausted: {n} unlabelled available / {k} requested; lower the schedule's round sizes"
        )
    candidates = np.asarray(candidate_emb, dtype=np.float32)
    min_dist = np.array(min_dist, dtype=np.float32)  # a copy: picks overwrite it
    picks = np.empty(k, dtype=np.int64)
    for i in range(k):
        pick = int(np.argmax(min_dist)) if np.isfinite(min_dist).any() else 0
        picks[i] = pick
        diff = candidates - candidates[pick]
        min_dist = np.minimum(min_dist, np.einsum("nd,nd->n", diff, diff))
        min_dist[pick] = -1.0  # never pick twice
    return picks


def _sq_dist_to_all(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D), (M, D) -> (N, M) squared Euclidean distances."""
    b = np.asarray(b, dtype=np.float32)
    d = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
    return np.maximum(d, 0.0)

"""k_center: core-set greedy selection (Sener & Savarese 2018) on the scorers' embeddings. Pure numpy.

Index spaces: `candidate_emb` (N, D) and `min_dist` (N,) are indexed by `cand_pos`, positions into
the round's candidates, and so is what k_center_from returns; mapping them to pool ids is the
collector's job (acquisition.SetCollector). Labelled rows are only ever folded into `min_dist`,
a batch at a time (min_sq_distances), so they are never held together.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import PoolExhaustedError
from pipeline.selection.acquisition import ACQUISITIONS, SetAcquisition

LABELLED_CHUNK = 1024  # labelled rows measured at once: a (N, 1024) float32 distance block


@ACQUISITIONS.register("k_center")
class KCenter(SetAcquisition):
    def select(self, candidate_emb: np.ndarray, min_dist: np.ndarray, k: int) -> np.ndarray:
        return k_center_from(candidate_emb, min_dist, k)


def min_sq_distances(
    candidate_emb: np.ndarray, labelled_emb: np.ndarray, so_far: np.ndarray | None = None
) -> np.ndarray:
    """(N,) squared distance of each candidate to its nearest row of labelled_emb (M, D), and to the
    rows seen before when `so_far` (N,) is given: fold batches of labelled rows in one at a time."""
    candidates = np.asarray(candidate_emb, dtype=np.float32)
    min_dist = np.full(len(candidates), np.inf, dtype=np.float32) if so_far is None else so_far
    for start in range(0, len(labelled_emb), LABELLED_CHUNK):
        block = _sq_dist_to_all(candidates, labelled_emb[start : start + LABELLED_CHUNK])
        min_dist = np.minimum(min_dist, block.min(axis=1))
    return min_dist


def k_center_from(candidate_emb: np.ndarray, min_dist: np.ndarray, k: int) -> np.ndarray:
    """Core-set greedy from each candidate's squared distance to the labelled set (inf: none).
    Each pick is the candidate farthest from every labelled example and every earlier pick. With
    no labelled examples the first pick is candidate 0. -> (k,) int64 cand_pos, in pick order."""
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

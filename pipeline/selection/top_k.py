"""StreamingTopK: the k best of a stream of scored pool ids, in O(k + batch) memory. Pure numpy.

Index space: every id here is a pool id (int64); a kept payload row (a shortlist's embedding)
stays beside its own id. Scores are "higher = better".
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import PoolExhaustedError


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
        """Scored pool ids (N,), their scores (N,) and optionally a payload row each (N, ...)."""
        self.seen += len(pool_ids)
        self._keep(np.asarray(pool_ids, dtype=np.int64), np.asarray(scores, dtype=np.float64), rows)

    def merge(self, other: StreamingTopK) -> None:
        """Folds in the top list of a disjoint part of the pool. Exact when both keep at least k: every
        id of the union's top k is in the top k of its own part."""
        self.seen += other.seen
        self._keep(other._ids, other._scores, other._rows)

    def _keep(self, pool_ids: np.ndarray, scores: np.ndarray, rows: np.ndarray | None) -> None:
        ids = np.concatenate([self._ids, pool_ids])
        values = np.concatenate([self._scores, scores])
        kept_rows = None
        if rows is not None:
            kept_rows = rows if self._rows is None else np.concatenate([self._rows, rows])
        if len(ids) > self.k:
            # (score descending, id ascending) is a total order over distinct ids: the kept set does
            # not depend on the order rows arrived in
            keep = np.lexsort((ids, -values))[: self.k]
            ids, values = ids[keep], values[keep]
            kept_rows = kept_rows[keep] if kept_rows is not None else None
        self._ids, self._scores, self._rows = ids, values, kept_rows

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(pool_ids, scores), best first. Raises if fewer than k candidates were seen."""
        ids, scores, _ = self.result_with_rows()
        return ids, scores

    def result_with_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(pool_ids, scores, payload rows or None), best first. Raises if fewer than k were seen."""
        if self.seen < self.k:
            raise PoolExhaustedError(
                f"pool exhausted: {self.seen} unlabelled available / {self.k} requested; "
                "lower the schedule's round sizes"
            )
        return self.kept()

    def kept(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(pool_ids, scores, payload rows or None) of what is kept, best first: min(k, seen) of them."""
        order = np.lexsort((self._ids, -self._scores))
        return self._ids[order], self._scores[order], self._rows[order] if self._rows is not None else None

"""The collectors of per-example acquisitions (acquisition.PerExampleAcquisition): a top list of keys
per predicted class, or every candidate's score for softrank. Pure numpy, no Ray.

Index spaces: what is pushed is aligned with its pool ids (batch_pos); a top list keeps each key
beside its own pool id and raw score; what select returns is pool ids.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pipeline.errors import PoolExhaustedError
from pipeline.selection.batch import BatchRule, round_robin, sample_keys, softrank_keys
from pipeline.selection.collector import Collector, LabelledDistances, ModelOutput, Picked, one_array
from pipeline.selection.top_k import StreamingTopK


class PerExample(Protocol):
    """What these collectors read of acquisition.PerExampleAcquisition (not imported: it imports them)."""

    rule: BatchRule

    def score(self, probs: np.ndarray | None, pool_ids: np.ndarray, seed: int) -> np.ndarray: ...


class TopKCollector(Collector):
    """PerExampleAcquisition's: the k pool ids of the stream with the largest keys, the scores themselves
    or the sampling's perturbed ones (batch.sample_keys); with batch.balance, the k largest of each
    predicted class, picked round-robin. Memory: k per class, not the shard."""

    def __init__(self, acquisition: PerExample, k: int, seed: int):
        self.acquisition, self.k, self.seed = acquisition, k, seed
        self.tops: dict[int, StreamingTopK] = {}  # predicted class (0 for all, unbalanced) -> its top list

    @property
    def seen(self) -> int:
        return sum(top.seen for top in self.tops.values())

    def push(self, pool_ids: np.ndarray, out: ModelOutput) -> None:
        probs = one_array(out)
        scores = self.acquisition.score(probs, pool_ids, self.seed)
        keys = sample_keys(self.acquisition.rule, scores, pool_ids, self.seed)
        groups = _groups(self.acquisition.rule, probs, len(pool_ids))
        for group in np.unique(groups):
            rows = groups == group
            top = self.tops.setdefault(int(group), StreamingTopK(self.k))
            top.push(pool_ids[rows], keys[rows], scores[rows])  # the raw score rides along for score_mean

    def merge(self, other: TopKCollector) -> None:
        # exact: each id of the global top k is in its own shard's top k (per class: the round-robin
        # takes at most k of any class, and they are that class's best)
        for group, top in other.tops.items():
            self.tops.setdefault(group, StreamingTopK(self.k)).merge(top)

    def select(self, labelled_distances: LabelledDistances | None = None) -> Picked:
        _check_seen(self.seen, self.k)
        kept = [(*top.kept(), group) for group, top in sorted(self.tops.items())]  # (ids, keys, scores, group)
        if not kept:
            return Picked(np.empty(0, np.int64), None)
        ids, keys, scores = (np.concatenate([part[i] for part in kept]) for i in range(3))
        return _pick(ids, keys, scores, np.concatenate([np.full(len(part[0]), part[3]) for part in kept]), self.k)


class RankCollector(Collector):
    """PerExampleAcquisition's under batch.sampling softrank: p ∝ rank^-β needs each candidate's rank
    among all of them, so every candidate's pool id, score and predicted class is kept (20 bytes each:
    24 MB for 1.2M candidates), and `select` ranks, perturbs and picks. Merging concatenates: exact."""

    def __init__(self, acquisition: PerExample, k: int, seed: int):
        self.acquisition, self.k, self.seed = acquisition, k, seed
        self._ids: list[np.ndarray] = []  # per pushed batch, batch_pos aligned
        self._scores: list[np.ndarray] = []
        self._groups: list[np.ndarray] = []

    @property
    def seen(self) -> int:
        return sum(len(ids) for ids in self._ids)

    def push(self, pool_ids: np.ndarray, out: ModelOutput) -> None:
        probs = one_array(out)
        self._ids.append(np.asarray(pool_ids, dtype=np.int64))
        self._scores.append(self.acquisition.score(probs, pool_ids, self.seed))
        self._groups.append(_groups(self.acquisition.rule, probs, len(pool_ids)).astype(np.int32))

    def merge(self, other: RankCollector) -> None:
        self._ids += other._ids
        self._scores += other._scores
        self._groups += other._groups

    def select(self, labelled_distances: LabelledDistances | None = None) -> Picked:
        _check_seen(self.seen, self.k)
        if not self._ids:
            return Picked(np.empty(0, np.int64), None)
        ids, scores, groups = (np.concatenate(parts) for parts in (self._ids, self._scores, self._groups))
        return _pick(ids, softrank_keys(self.acquisition.rule.coldness, scores, ids, self.seed), scores, groups, self.k)


def _pick(ids: np.ndarray, keys: np.ndarray, scores: np.ndarray, groups: np.ndarray, k: int) -> Picked:
    """The first k of the round-robin over `groups` by `keys`, and their mean raw score."""
    picks = round_robin(keys, ids, groups)[:k]
    return Picked(ids[picks], float(scores[picks].mean()) if len(picks) else None)


def _groups(rule: BatchRule, probs: np.ndarray | None, n: int) -> np.ndarray:
    """(n,) what the batch is balanced over: the predicted class with batch.balance, else one group."""
    return probs.argmax(axis=1) if rule.balance and probs is not None else np.zeros(n, dtype=np.int64)


def _check_seen(seen: int, k: int) -> None:
    if seen < k:  # as StreamingTopK.result says it
        raise PoolExhaustedError(
            f"pool exhausted: {seen} unlabelled available / {k} requested; lower the schedule's round sizes"
        )

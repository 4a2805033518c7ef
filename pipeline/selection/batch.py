"""How a round's batch is drawn from per-example scores: the rule (BatchRule) and its pure parts. Numpy only.

Top-k of one score over a batch of thousands picks near-duplicates. Two cheap answers, both exact
when the pool is split over scorers:
- Stochastic batch acquisition (Kirsch et al., "Stochastic Batch Acquisition", TMLR 2023; baal's
  PowerSampling): the k largest of `log p(s) + Gumbel noise` are k draws without replacement from
  p (the Gumbel-top-k trick), with p ∝ exp(β·s) (softmax), s^β (power) or rank^-β (softrank, rank 1
  the best-scored of the pool). The noise is a hash of (pool id, seed), so a key depends on its own
  example alone (softrank's on its rank too), and a per-scorer top k of keys merges exactly.
- Class balance (Emam et al. 2021): the batch is taken round-robin over the selection model's
  predicted classes, each class's best keys first, so no class's share exceeds another's by more
  than one while it still has candidates. The k best keys of each class are all a round-robin can
  reach, so per-class top-k lists merge exactly too.

Index spaces: every array here is aligned with the same candidates' pool ids (any order); what
round_robin returns is positions into those arrays, in pick order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLINGS = ("top_k", "softmax", "power", "softrank")
MARGIN_MULTIPLE = 10.0  # Cluster-Margin's shortlist, k_m = 10 k (Citovsky et al. 2021)
_NOISE_SALT = 0x6A09E667  # the noise's seed differs from the `random` acquisition's hash of the same seed


@dataclass(frozen=True)
class BatchRule:
    """The run config's `batch:` section, as the acquisitions read it."""

    sampling: str = "top_k"  # one of SAMPLINGS
    coldness: float = 1.0  # β: large is close to top_k, 0 is uniform
    balance: bool = False  # round-robin over predicted classes
    margin_multiple: float | None = None  # cluster_margin's k_m / k (None: MARGIN_MULTIPLE)


def hashed_uniform(pool_ids: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64(id ^ seed) mapped to [0, 1): a per-id random number without shared state."""
    with np.errstate(over="ignore"):
        z = pool_ids.astype(np.uint64) ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def gumbel(pool_ids: np.ndarray, seed: int) -> np.ndarray:
    """(N,) standard Gumbel noise, a function of (pool id, seed) alone."""
    u = hashed_uniform(pool_ids, seed ^ _NOISE_SALT) + 0.5 / 2**53  # in (0, 1): both logs finite
    return -np.log(-np.log(u))


def sample_keys(rule: BatchRule, scores: np.ndarray, pool_ids: np.ndarray, seed: int) -> np.ndarray:
    """(N,) keys whose top k is the batch: the scores themselves (top_k), else log p + Gumbel noise.
    Not for softrank, whose p needs every candidate's rank (softrank_keys)."""
    if rule.sampling == "top_k":
        return scores
    if rule.sampling == "softmax":
        log_p = rule.coldness * scores
    elif rule.sampling == "power":
        positive = scores > 0  # a zero score is drawn after every other, whatever β (0 · log 0 is NaN)
        log_p = np.full(len(scores), -np.inf)
        log_p[positive] = rule.coldness * np.log(scores[positive])
    else:
        raise ValueError(f"sampling {rule.sampling!r} has no per-example key")
    return log_p + gumbel(pool_ids, seed)


def softrank_keys(coldness: float, scores: np.ndarray, pool_ids: np.ndarray, seed: int) -> np.ndarray:
    """(N,) keys for p ∝ rank^-β over these candidates (rank 1: the highest score, ties to the smaller id)."""
    order = np.lexsort((pool_ids, -scores))
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    return -coldness * np.log(ranks) + gumbel(pool_ids, seed)


def round_robin(keys: np.ndarray, pool_ids: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Positions of all candidates in pick order: every group's best key, then every group's second
    best, and so on; within a turn, by key (ties to the smaller id). One group: plain key order."""
    by_key = np.lexsort((pool_ids, -keys, groups))  # grouped, each group best first
    sorted_groups = groups[by_key]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    turn = np.empty(len(keys), dtype=np.int64)
    turn[by_key] = np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
    return np.lexsort((pool_ids, -keys, turn))

"""Per-example acquisitions: least_confidence, entropy and margin score the model's softmax row,
random a hash of (pool id, seed). Pure numpy.

Every array is aligned with the scored batch's pool ids (batch_pos); scores are "higher = label first".
"""

from __future__ import annotations

import numpy as np

from pipeline.selection.acquisition import ACQUISITIONS, PerExampleAcquisition


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


@ACQUISITIONS.register("random")
class Random(PerExampleAcquisition):
    """A uniform score that depends only on (pool id, seed), so any batching ranks the same.

    It needs no model output, so the scorer skips the forward pass."""

    needs = None

    def _score(self, probs, pool_ids, seed):
        return hashed_uniform(pool_ids, seed)


def hashed_uniform(pool_ids: np.ndarray, seed: int) -> np.ndarray:
    """splitmix64(id ^ seed) mapped to [0, 1): a per-id random number without shared state."""
    with np.errstate(over="ignore"):
        z = pool_ids.astype(np.uint64) ^ np.uint64((seed * 0x9E3779B97F4A7C15) % 2**64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)

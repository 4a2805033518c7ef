"""Per-example acquisitions: least_confidence, entropy and margin score the model's softmax row,
random a hash of (pool id, seed). Pure numpy.

Every array is aligned with the scored batch's pool ids (batch_pos); scores are "higher = label first".
"""

from __future__ import annotations

import numpy as np

from pipeline.selection.acquisition import ACQUISITIONS, PerExampleAcquisition
from pipeline.selection.batch import hashed_uniform


@ACQUISITIONS.register("least_confidence")
class LeastConfidence(PerExampleAcquisition):
    nonnegative = True

    def _score(self, probs, pool_ids, seed):
        return 1.0 - probs.max(axis=1)


@ACQUISITIONS.register("entropy")
class Entropy(PerExampleAcquisition):
    nonnegative = True

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

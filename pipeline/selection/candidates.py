"""Which unlabelled examples a round scores at all. Pure numpy."""

from __future__ import annotations

import numpy as np


def draw_candidates(unlabelled_ids: np.ndarray, count: int, seed: int) -> np.ndarray | None:
    """`count` of the ascending `unlabelled_ids`, drawn uniformly at random without replacement with
    `seed`, ascending; None when `count` covers them all (score every unlabelled example).

    Candidate subsampling (baal's max_sample, small-text's SubsamplingQueryStrategy, the random
    10k subsets of the active-learning literature): a round scores only a random subset, so its
    cost no longer grows with the pool. The draw depends on the ids and the seed alone, so every
    strategy of a compare and a resumed run score the same subset.
    """
    if count >= len(unlabelled_ids):
        return None
    picks = np.random.default_rng(seed).choice(len(unlabelled_ids), size=count, replace=False)
    return np.sort(unlabelled_ids[picks])

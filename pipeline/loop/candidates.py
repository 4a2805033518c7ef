"""Which unlabelled examples a round scores: all of them, a uniform `scoring.candidates` of them, or
(`scoring.candidates_from: neighbours`) those near the labelled set, from an index of the pool built
once (pipeline.selection.neighbours). No Ray: the index's embedding passes go through the Scorers seam.
"""

from __future__ import annotations

import time
from typing import cast

import numpy as np

from pipeline.config.run_config import RunConfig
from pipeline.config.schedule import to_count
from pipeline.data import PreparedData
from pipeline.data.pool import pool_ids, split_files
from pipeline.loop.run_store import RunStore
from pipeline.loop.seams import Scorers
from pipeline.selection.candidates import draw_candidates
from pipeline.selection.neighbours import (
    FLAT_MAX,
    TRAIN_SAMPLE,
    EmbeddingPass,
    IndexCollector,
    NeighbourIndex,
    SampleCollector,
    neighbour_candidates,
    train_index,
)


class Candidates:
    """Round r's candidates, ascending (None: every unlabelled example), and what finding them cost."""

    def __init__(self, config: RunConfig, data: PreparedData, store: RunStore, scorers: Scorers):
        self.config, self.data, self.store, self.scorers = config, data, store, scorers
        self.index: NeighbourIndex | None = None  # built at the first scored round (or the first after a resume)
        self.near = np.empty(0, np.int64)  # the labelled examples' neighbours found so far, ascending
        self.queried = 0  # labelled examples (in labelling order) whose neighbours are in `near`

    def draw(
        self, pool: list[str] | None, labelled_ids: np.ndarray, k: int, seed: int
    ) -> tuple[np.ndarray | None, dict[str, float]]:
        scoring = self.config.scoring
        if scoring.candidates_from == "random" and scoring.candidates is None:
            return None, {}
        all_ids = pool_ids(pool or split_files(self.data.split_dir("pool")))
        unlabelled = np.setdiff1d(all_ids, labelled_ids, assume_unique=True)
        if scoring.candidates_from == "random" and scoring.candidates is not None:
            return draw_candidates(unlabelled, max(to_count(scoring.candidates, len(unlabelled)), k), seed), {}
        seconds = {"neighbours_build": 0.0}
        if self.index is None:
            start = time.perf_counter()
            self.index = self._build(all_ids, seed)
            seconds["neighbours_build"] = time.perf_counter() - start
        start = time.perf_counter()
        fresh = labelled_ids[self.queried :]  # labelled since the last query: the set only grows
        self.near, self.queried = np.union1d(self.near, self.index.near(fresh, scoring.neighbours)), len(labelled_ids)
        # scoring.candidates caps them (None: every neighbour), and the round's k is the least
        near = np.intersect1d(self.near, unlabelled, assume_unique=True)
        wanted = len(near) if scoring.candidates is None else to_count(scoring.candidates, len(unlabelled))
        chosen, _ = neighbour_candidates(near, unlabelled, min(max(wanted, k), len(unlabelled)), seed)
        seconds["neighbours_query"] = time.perf_counter() - start
        return chosen, seconds

    def _build(self, all_ids: np.ndarray, seed: int) -> NeighbourIndex:
        """The index over every pool row under the round-0 model: a training sample's pass (IVF-PQ
        only), then every row's, each scorer encoding its own shard."""
        weights = self.store.load_round_state(0)["checkpoint"]
        sample_ids = draw_candidates(all_ids, TRAIN_SAMPLE if len(all_ids) > FLAT_MAX else 1, seed)
        # EmbeddingPass() collects a SampleCollector, EmbeddingPass(trained) an IndexCollector
        sample = cast(SampleCollector, self.scorers.collect(weights, EmbeddingPass(), sample_ids))
        trained = train_index(sample.rows(), len(all_ids), seed)
        return cast(IndexCollector, self.scorers.collect(weights, EmbeddingPass(trained), None)).index

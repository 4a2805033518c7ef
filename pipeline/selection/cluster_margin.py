"""Cluster-Margin: uncertain examples, spread over clusters. The `cluster_margin` acquisition and its
selection. Pure numpy + scikit-learn (imported when a selection runs), no Ray.

Cluster-Margin (Citovsky et al., "Batch Active Learning at Scale", NeurIPS 2021) keeps the batch
uncertain and diverse at batch sizes where plain lowest-margin top-k piles into a few dense
regions of near-duplicates:
  1. shortlist the k_m = margin_multiple * k unlabelled examples with the lowest margin
     (batch.margin_multiple, default the paper's 10);
  2. group the shortlist by cluster and sort the clusters by size, smallest first;
  3. fill the batch round-robin over those clusters, a random member of each cluster in turn,
     until k are chosen. Small clusters are visited first, and a large cluster gives at most one
     more example than any smaller one that still has members left.

Deviation from the paper. The paper clusters the embeddings of the whole pool once, with
hierarchical agglomerative clustering (average linkage), before the first round. Here each round
clusters only the shortlist's embeddings, with scikit-learn's MiniBatchKMeans (seeded, n_init=1).
Why: HAC over the pool needs the pool's embeddings in one process and super-linear time and
memory in the pool size; a scorer here holds only its candidate set, so clustering the k_m
shortlist keeps memory at O(k_m * D) and time at O(k_m * clusters * D) per pass, whatever the pool
size. What changes: the clusters follow the current model's uncertain region instead of a fixed
partition of the pool, they are flat k-means cells rather than a cut of a linkage tree, and cluster
sizes count shortlist members only. Clustering the top uncertain examples with k-means is the
scheme of Zhdanov, "Diverse mini-batch Active Learning" (2019).

Index spaces: every array in and out of cluster_margin_select is indexed by `cand_pos`, positions
into the candidate arrays (`margins`, `embeddings`); mapping them to pool ids is the caller's job.
Its `short_pos` are positions into its own k_m shortlist. The acquisition's candidates are the
scorers' streamed shortlist (acquisition.ShortlistCollector), best first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np

from pipeline.errors import PoolExhaustedError
from pipeline.selection.acquisition import ACQUISITIONS, ShortlistAcquisition
from pipeline.selection.batch import MARGIN_MULTIPLE, BatchRule
from pipeline.selection.uncertainty import Margin


@ACQUISITIONS.register("cluster_margin")
class ClusterMargin(ShortlistAcquisition):
    """Cluster-Margin (Citovsky et al. 2021): the batch.margin_multiple * k lowest-margin examples (the
    paper's 10 k by default), clustered, then the batch filled round-robin over the clusters, smallest
    first (cluster_margin_select)."""

    def check_rule(self, rule: BatchRule) -> None:
        super().check_rule(replace(rule, margin_multiple=None))  # the margin multiple is its own setting

    @property
    def margin_multiple(self) -> float:
        return MARGIN_MULTIPLE if self.rule.margin_multiple is None else self.rule.margin_multiple

    def shortlist(self, k: int) -> int:
        return math.ceil(self.margin_multiple * k)

    def _score(self, probs, pool_ids, seed):
        return Margin()._score(probs, pool_ids, seed)  # -margin: the smallest margins rank first

    def select(self, scores, embeddings, k, seed):
        return cluster_margin_select(-scores, embeddings, k, seed, margin_multiple=self.margin_multiple)


def cluster_margin_select(
    margins: np.ndarray,
    embeddings: np.ndarray,
    k: int,
    seed: int,
    margin_multiple: float = 10.0,
    clusters: int | None = None,
) -> np.ndarray:
    """margins (n,) (top-1 minus top-2 probability: low = uncertain), embeddings (n, D) -> cand_pos (k,) int64:
    k distinct positions into the candidate arrays, in pick order.

    The shortlist is the k_m = min(n, ceil(margin_multiple * k)) lowest margins, ties broken toward
    the smaller position. `clusters` k-means cells are fitted on the shortlist (default k, capped
    by k_m); the batch is filled round-robin over them, smallest cluster first (ties by cluster
    index), each cluster's members in a random order. When k_m == k there is nothing to choose
    between and the k lowest margins come back in margin order, without clustering.

    Deterministic for a given seed on a given machine and scikit-learn version. k <= 0 or n == 0
    gives an empty array; k > n raises PoolExhaustedError, like k_center, rather than
    returning a short batch the round would silently under-label.
    """
    margins = np.asarray(margins, dtype=np.float64)
    n = margins.shape[0]
    _check_inputs(margins, embeddings, margin_multiple, clusters)
    if k <= 0 or n == 0:
        return np.empty(0, dtype=np.int64)
    if k > n:
        raise PoolExhaustedError(
            f"pool exhausted: {n} candidates available / {k} requested; "
            "lower the schedule's round sizes or draw more candidates"
        )

    k_m = min(n, math.ceil(margin_multiple * k))
    # A stable sort breaks equal margins toward the smaller position, so the shortlist does not
    # depend on the sort algorithm.
    short_cand_pos = np.argsort(margins, kind="stable")[:k_m]  # (k_m,) cand_pos, lowest margin first
    if k >= k_m:
        return short_cand_pos[:k].astype(np.int64)

    # Default k clusters: the first round-robin pass then takes one member of every cluster and
    # fills the batch, so the batch is one example per k-means cell of the shortlist. With more
    # clusters the pass stops early and the largest clusters (visited last) give nothing, which
    # biases the batch toward small outlying cells; with fewer, clusters give several members each.
    n_clusters = min(k if clusters is None else clusters, k_m)
    # scikit-learn here, not at the top: the registry (every config check) imports this module
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.exceptions import ConvergenceWarning

    short_emb = np.asarray(embeddings[short_cand_pos], dtype=np.float32)  # (k_m, D); only the shortlist is copied
    kmeans = MiniBatchKMeans(n_clusters=n_clusters, init="k-means++", n_init=1, random_state=seed)
    with warnings.catch_warnings():
        # Duplicate embeddings can leave fewer distinct clusters than asked; round-robin over
        # the clusters that exist is still correct, so the warning is noise here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        cluster_of = kmeans.fit(short_emb).labels_.astype(np.int64)  # (k_m,) cluster of each short_pos

    return short_cand_pos[_round_robin(cluster_of, n_clusters, k, seed)].astype(np.int64)


def _check_inputs(margins: np.ndarray, embeddings: np.ndarray, margin_multiple: float, clusters: int | None) -> None:
    n = margins.shape[0]
    if margins.ndim != 1 or embeddings.ndim != 2 or embeddings.shape[0] != n:
        raise ValueError(
            f"margins {margins.shape} and embeddings {embeddings.shape} do not match: expected (n,) and (n, D)"
        )
    if np.isnan(margins).any():
        raise ValueError(f"{int(np.isnan(margins).sum())} of {n} margins are NaN; check the model's probabilities")
    if margin_multiple < 1:
        raise ValueError(
            f"margin_multiple must be >= 1 (the shortlist holds at least the batch), got {margin_multiple}"
        )
    if clusters is not None and clusters < 1:
        raise ValueError(f"clusters must be >= 1 or None (default: k), got {clusters}")


def _round_robin(cluster_of: np.ndarray, n_clusters: int, k: int, seed: int) -> np.ndarray:
    """cluster_of (k_m,) cluster of each short_pos -> short_pos (k,): the round-robin picks."""
    k_m = cluster_of.shape[0]
    sizes = np.bincount(cluster_of, minlength=n_clusters)  # (n_clusters,) shortlist members per cluster
    visit_order = np.lexsort((np.arange(n_clusters), sizes))  # cluster ids, smallest first, ties by id
    visit_rank = np.empty(n_clusters, dtype=np.int64)
    visit_rank[visit_order] = np.arange(n_clusters)

    # Each member's turn within its cluster: shuffle the shortlist, then stable-sort by cluster,
    # so each cluster's members come out in a seeded random order.
    shuffled = np.random.default_rng(seed).permutation(k_m)  # short_pos
    by_cluster = shuffled[np.argsort(cluster_of[shuffled], kind="stable")]  # short_pos, grouped by cluster
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # first slot of each cluster in by_cluster
    turn = np.empty(k_m, dtype=np.int64)
    turn[by_cluster] = np.arange(k_m) - starts[cluster_of[by_cluster]]

    # Round-robin = order by (turn, cluster's place in the visit order): pass t takes the t-th
    # member of every cluster that still has one, smallest cluster first.
    return np.lexsort((visit_rank[cluster_of], turn))[:k]

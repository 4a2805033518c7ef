"""Acquisition contracts, the one interface a scoring pass uses them through, and the registry. Pure numpy, no Ray.

Index spaces: `pool_ids` are the stable int64 ids of the pool; a pushed batch's arrays are aligned
with its pool ids (`batch_pos`); a shortlist's scores and embeddings with the shortlist's pool ids
(`short_pos`), best first; set-based selection's with its candidates' pool ids (`cand_pos`). What
leaves a collector is pool ids again. Every score is "higher = label first".

How a scoring pass uses an acquisition, whatever its kind (actors/scorer.py, benchmarks/common.py):
  `needs`          the model output the scorer computes for each batch's candidates: None (no
                   forward pass), "probs" (N, K) softmax, "embeddings" (N, D), or "probs+embeddings"
                   (a (probs, embeddings) pair from one forward pass).
  `collector(k, seed)`  one per scorer, picklable (it travels back from a Ray actor): the scorer
                   `push`es each batch's candidate pool ids and model output into it. Its memory is
                   bounded by k (or a shortlist), except set-based selection's (check_candidates).
  `merge`          the coordinator folds the scorers' collectors into a fresh one, exactly.
  `select(labelled_distances)`  -> Picked: the chosen pool ids in pick order and their mean score.
                   `labelled_distances` is the scorer pool's second pass over the labelled rows;
                   only a collector that needs it calls it, so the caller never asks which kind it holds.
  `hint_scores`    per-example scores for annotators (NaN where the acquisition scores sets).

Three contracts implement it; each registered acquisition follows one:
  PerExampleAcquisition  `_score`: an example's score depends on that example alone, so the pool
                         is ranked in a stream (StreamingTopK), shard by shard.
  ShortlistAcquisition   `_score` and `select`: ranked in a stream like the above, keeping the
                         `shortlist(k)` best with their embeddings, then k picked from that
                         shortlist as a set (Cluster-Margin). Memory: the shortlist, not the pool.
  SetAcquisition         `select`: picks k candidates at once from every candidate's embedding and
                         its distance to the nearest labelled example. The labelled side streams
                         (k_center.min_sq_distances, batch by batch); the candidates are held at
                         once, at most MAX_SET_CANDIDATES of them (check_set_candidates).

How the batch is drawn from per-example scores (top k, sampled, class-balanced) is the run's
`batch:` rule (batch.py), which each acquisition checks (`check_rule`). The acquisitions live in
uncertainty.py, cluster_margin.py and k_center.py, imported by the package's __init__ (so
ACQUISITIONS is full once anything here is imported): a new one is a module subclassing a contract
under @ACQUISITIONS.register, plus its line in __init__.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from pipeline.errors import ConfigError, PoolExhaustedError
from pipeline.registry import Registry
from pipeline.selection.batch import BatchRule
from pipeline.selection.collector import Collector, LabelledDistances, ModelOutput, Picked, one_array
from pipeline.selection.per_example import RankCollector, TopKCollector
from pipeline.selection.top_k import StreamingTopK

ACQUISITIONS: Registry[type[Acquisition]] = Registry("acquisition")


# Set-based selection holds every candidate's embedding in one process (the coordinator, and each
# scorer while it measures the labelled rows against them): N x D float32, plus a scoring batch's
# B x N distances. 100k candidates of a 512-wide embedding is 200 MB.
MAX_SET_CANDIDATES = 100_000


def get_acquisition(name: str, rule: BatchRule = BatchRule()) -> Acquisition:
    """The acquisition `name` drawing its batches by `rule`; a ConfigError (one line) when it cannot."""
    return ACQUISITIONS.get(name)(rule)


def check_set_candidates(acquisition_name: str, candidates: int) -> None:
    """ConfigError (one line) when a set-based acquisition would hold more than MAX_SET_CANDIDATES."""
    get_acquisition(acquisition_name).check_candidates(candidates)


class Acquisition(ABC):
    """Common parent of the contracts below: what a scoring pass asks of every acquisition."""

    name: str
    needs: str | None

    def __init__(self, rule: BatchRule = BatchRule()):
        self.rule = rule
        self.check_rule(rule)

    def check_rule(self, rule: BatchRule) -> None:
        """ConfigError (one line) for a `batch:` setting this acquisition cannot draw by. The defaults
        (top k, unbalanced) suit every one; the rest are per-example acquisitions' (PerExampleAcquisition)."""
        if rule.sampling != "top_k" or rule.balance:
            raise ConfigError(
                f"acquisition {self.name} picks its batch as a set, so batch.sampling {rule.sampling} and "
                f"batch.balance {str(rule.balance).lower()} do not apply: drop them, or pick a per-example "
                "acquisition (least_confidence, entropy, margin)"
            )
        if rule.margin_multiple is not None:
            raise ConfigError(
                f"batch.margin_multiple is Cluster-Margin's shortlist size, and the acquisition is {self.name}: "
                "drop it, or set acquisition: cluster_margin"
            )

    @abstractmethod
    def collector(self, k: int, seed: int) -> Collector:
        """An empty collector for a pass that selects k, its scores seeded with `seed`."""

    @abstractmethod
    def hint_scores(self, probs: np.ndarray, pool_ids: np.ndarray, seed: int) -> np.ndarray:
        """probs (N, K), pool_ids (N,) -> (N,) float64 per-example scores for annotators (NaN: scores sets)."""

    def check_candidates(self, candidates: int) -> None:
        """Raises ConfigError when a pass over `candidates` would hold too much at once."""
        return None  # streamed: a pass holds a bounded top list whatever the pool's size


class PerExampleAcquisition(Acquisition):
    """Scores each example on its own: probs (N, K), pool_ids (N,), seed -> scores (N,) float64,
    higher = label first. An example's score depends only on its own row, id and the seed, so any
    batching or order of the pool ranks the same.

    Subclasses implement `_score` only; `score` checks the inputs and hands it float64 probs.
    `needs` is "probs", or None when the score uses no model output (probs may then be None).
    """

    needs: str | None = "probs"
    nonnegative = False  # every score >= 0, as batch.sampling power needs (p ∝ score^β)

    def check_rule(self, rule: BatchRule) -> None:
        if rule.margin_multiple is not None:
            super().check_rule(rule)
        if self.needs is None and (rule.sampling != "top_k" or rule.balance):
            raise ConfigError(
                f"acquisition {self.name} already draws uniformly and reads no model, so batch.sampling "
                f"{rule.sampling} and batch.balance {str(rule.balance).lower()} do not apply: drop them"
            )
        if rule.sampling == "power" and not self.nonnegative:
            raise ConfigError(
                f"batch.sampling power draws with p ∝ score^β, and {self.name}'s scores can be negative: "
                "use batch.sampling softmax or softrank"
            )

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

    def collector(self, k: int, seed: int) -> Collector:
        return RankCollector(self, k, seed) if self.rule.sampling == "softrank" else TopKCollector(self, k, seed)

    def hint_scores(self, probs: np.ndarray, pool_ids: np.ndarray, seed: int) -> np.ndarray:
        return self.score(probs, pool_ids, seed)


class ShortlistAcquisition(PerExampleAcquisition):
    """A per-example score ranks the pool in a stream and keeps the `shortlist(k)` best rows with
    their embeddings; `select(scores, embeddings, k, seed)` then picks k positions of that shortlist
    (short_pos). The scorer computes probs and embeddings in one forward pass ("probs+embeddings")."""

    needs = "probs+embeddings"

    def check_rule(self, rule: BatchRule) -> None:
        Acquisition.check_rule(self, rule)  # its batch is a set picked from the shortlist: no sampling

    def shortlist(self, k: int) -> int:
        return k

    @abstractmethod
    def select(self, scores: np.ndarray, embeddings: np.ndarray, k: int, seed: int) -> np.ndarray: ...

    def collector(self, k: int, seed: int) -> Collector:
        return ShortlistCollector(self, k, seed)


class SetAcquisition(Acquisition):
    """Selects a set: candidate_emb (N, D), min_dist (N,) squared distance of each candidate to its
    nearest labelled example (inf: none labelled), k -> k distinct positions into candidate_emb
    (cand_pos), in pick order; raises PoolExhaustedError when k > N. A pick depends on every other
    candidate, so the candidates' embeddings are gathered first; the labelled examples only ever
    reach a candidate through min_dist, which scorers compute in a stream (labelled_distances)."""

    needs = "embeddings"

    @abstractmethod
    def select(self, candidate_emb: np.ndarray, min_dist: np.ndarray, k: int) -> np.ndarray: ...

    def collector(self, k: int, seed: int) -> Collector:
        return SetCollector(self, k)

    def hint_scores(self, probs: np.ndarray, pool_ids: np.ndarray, seed: int) -> np.ndarray:
        return np.full(len(pool_ids), np.nan)  # a set has no per-example score

    def check_candidates(self, candidates: int) -> None:
        if candidates > MAX_SET_CANDIDATES:  # read at call time: tests lower it
            raise ConfigError(
                f"acquisition {self.name} holds every candidate's embedding in one process, at most "
                f"{MAX_SET_CANDIDATES} candidates a round, and this round has {candidates}: set "
                f"scoring.candidates (e.g. {MAX_SET_CANDIDATES // 2}) to score a random subset each round"
            )


class ShortlistCollector(Collector):
    """ShortlistAcquisition's: the shortlist(k) best-scoring pool ids of the stream with their
    embeddings; `select` picks k of them as a set. Memory: the shortlist's rows, not the shard's."""

    def __init__(self, acquisition: ShortlistAcquisition, k: int, seed: int):
        self.acquisition, self.k, self.seed = acquisition, k, seed
        self.top = StreamingTopK(acquisition.shortlist(k))

    @property
    def seen(self) -> int:
        return self.top.seen

    def push(self, pool_ids: np.ndarray, out: ModelOutput) -> None:
        if not isinstance(out, tuple):
            raise ValueError(f"acquisition '{self.acquisition.name}' needs (probs, embeddings), got {type(out)}")
        probs, embeddings = out
        self.top.push(pool_ids, self.acquisition.score(probs, pool_ids, self.seed), embeddings)

    def merge(self, other: ShortlistCollector) -> None:
        self.top.merge(other.top)  # exact, as for the top k: the shortlist is a top shortlist(k)

    def select(self, labelled_distances: LabelledDistances | None = None) -> Picked:
        # a pool shorter than the shortlist is shortlisted whole; the acquisition's select says when
        # it is shorter than k
        shortlist_ids, scores, embeddings = self.top.kept()
        if embeddings is None:  # nothing was pushed: no candidate at all
            raise PoolExhaustedError(
                f"pool exhausted: 0 unlabelled available / {self.k} requested; lower the schedule's round sizes"
            )
        picks = self.acquisition.select(scores, embeddings, self.k, self.seed)  # short_pos
        return Picked(shortlist_ids[picks], float(scores[picks].mean()) if len(picks) else None)


class SetCollector(Collector):
    """SetAcquisition's: every candidate's pool id and embedding, batch by batch; `select` measures
    them against the labelled set (labelled_distances) and picks k at once."""

    def __init__(self, acquisition: SetAcquisition, k: int):
        self.acquisition, self.k = acquisition, k
        self._ids: list[np.ndarray] = []  # per pushed batch: pool ids (N,)
        self._embeddings: list[np.ndarray] = []  # and their embeddings (N, D), batch_pos aligned

    @property
    def seen(self) -> int:
        return sum(len(ids) for ids in self._ids)

    def push(self, pool_ids: np.ndarray, out: ModelOutput) -> None:
        embeddings = one_array(out)
        if embeddings is None:
            raise ValueError(f"acquisition '{self.acquisition.name}' needs embeddings, got none")
        self._ids.append(np.asarray(pool_ids, dtype=np.int64))
        self._embeddings.append(embeddings)

    def merge(self, other: SetCollector) -> None:
        self._ids += other._ids
        self._embeddings += other._embeddings

    def select(self, labelled_distances: LabelledDistances | None = None) -> Picked:
        if labelled_distances is None:
            raise ValueError(
                f"acquisition '{self.acquisition.name}' selects against the labelled set: pass its distances"
            )
        cand_ids = np.concatenate(self._ids) if self._ids else np.empty(0, np.int64)  # (N,) pool id per cand_pos
        self.acquisition.check_candidates(len(cand_ids))  # a growing pool may outgrow the bound preflight checked
        emb = np.concatenate(self._embeddings) if self._embeddings else np.empty((0, 0), np.float32)
        picks = self.acquisition.select(emb, labelled_distances(emb), self.k)  # cand_pos
        return Picked(cand_ids[picks], None)

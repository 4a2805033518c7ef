"""The round loop's seams: what each step hands the next (Selection, Answer) and the three parts
that come in from outside (Scorers, Learner, Oracle) with what they return (ScoredPass,
UpdateResult). Ray's side (actors/coordinator.py) implements the parts on its actors; unit tests
and benchmarks/plain_loop.py implement them in one process."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pipeline.selection.collector import Collector, Collects
from pipeline.update.strategies import UpdatePlan


@dataclass(frozen=True)
class ScoredPass:
    """What one selection over the pool found (Scorers.select)."""

    pool_ids: np.ndarray  # to label, in selection order
    candidates: int  # unlabelled examples scored
    # score: the pass, select: choosing from its results, score_compute: the scorers' compute (mean over
    # actors); score_first_batch and score_starved: where the rest of the pass went, where measured
    seconds: dict[str, float]
    score_mean: float | None = None  # the chosen ids' mean acquisition score (None: set-based selection)
    redone: int = 0  # passes redone because a scorer died
    peak_rss_mib: float | None = None  # the largest scorer's peak resident memory


@dataclass(frozen=True)
class UpdateResult:
    """One update or target fit and its evaluation (Learner.update): on the validation split, which
    choices read, and on the test split, which only reports."""

    checkpoint: bytes  # weights and optimizer state
    steps: int
    loss: float
    test_acc: float  # reported only: no stop, schedule or Tune trial is chosen on it
    class_correct: list[int]  # test examples right, per true class
    class_total: list[int]
    # (n,) int32 predictions on the stop set, which the stable-predictions criterion compares: the
    # validation images where there is a validation split, else the test images (never their labels)
    stop_predictions: np.ndarray
    read_s: float  # reading the training rows by id
    train_s: float
    eval_s: float
    device: str
    val_acc: float | None = None  # on the validation split; None: the data has none
    # a from-scratch fit's validation accuracy after each epoch (None: a warm update, or no validation)
    val_acc_per_epoch: list[float] | None = None
    peak_rss_mib: float | None = None  # the rank-0 worker's
    launch_s: float | None = None  # set on the first update of a worker group this process started
    resources: dict | None = None  # with launch_s: what the run asked Ray for, per process


@dataclass(frozen=True)
class Selection:
    """What step [1/6] chose, and from which pool."""

    pool_ids: np.ndarray  # to label, in selection order
    pool: list[str] | None  # the pool's Parquet files this round (None: the prepared pool)
    admitted: list[str]  # arrival shards that joined the pool this round
    candidates: int  # unlabelled examples considered
    seconds: dict[str, float]  # score, select, score_compute (and where the rest of the pass went)
    rng_state: Mapping[str, Any]  # the run's random state once selection was done
    redone_passes: int = 0  # scoring passes redone because a scorer died
    score_mean: float | None = None  # the chosen batch's mean acquisition score (None: round 0, set-based)
    scorer_rss_mib: float | None = None  # the largest scorer's peak resident memory (None: no scoring)


@dataclass(frozen=True)
class Answer:
    """What step [2/6] got back: labels for (some of) the selection, or nothing yet."""

    pool_ids: np.ndarray | None = None  # answered ids, in selection order (None: waiting)
    labels: np.ndarray | None = None
    waiting: dict | None = None  # {"round", "waiting": labels missing, "requested"} while people label
    record: dict = field(default_factory=dict)  # what the oracle adds to the round's record
    seconds_before: float = 0.0  # the round's time before it paused for people (their wait excluded)


class Scorers(Protocol):
    def start(self) -> None:
        """Start the scoring processes in the background, if they are not up yet."""

    def select(
        self,
        weights: bytes,
        labelled_ids: np.ndarray,
        k: int,
        seed: int,
        round_index: int,
        pool: list[str] | None,
        candidate_ids: np.ndarray | None,
    ) -> ScoredPass:
        """The k pool ids to label among `candidate_ids` (ascending; None: every unlabelled id of `pool`)
        under `weights`, and what finding them cost."""

    def collect(self, weights: bytes, acquisition: Collects, candidate_ids: np.ndarray | None) -> Collector:
        """One pass of `acquisition` (needs, collector) over the prepared pool's `candidate_ids` (None:
        every row, labelled or not) under `weights`: the scorers' collectors, merged (a neighbour index's build)."""

    def hints(self, weights: bytes, pool_ids: np.ndarray, images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        """For people: the model's predicted label, its probability and the acquisition score, per id."""

    def close(self) -> None: ...


class Learner(Protocol):
    def start(self) -> None:
        """Start the worker group in the background, if it is not up yet."""

    def update(
        self,
        plan: UpdatePlan,
        labels: np.ndarray,
        rows_from: list[str] | None,
        seed: int,
        resume_from: bytes | None,
        round_index: int,
    ) -> UpdateResult:
        """Train as `plan` says on its train_ids with `labels` (aligned), the rows read by id from the
        Parquet files `rows_from` (None: the prepared pool), and evaluate on the test split."""

    def close(self) -> None: ...


class Oracle(Protocol):
    may_pause: bool  # whether ask() may return before the labels exist (people label)

    def asked(self, round_index: int) -> Selection | None:
        """The selection an earlier call asked people to label (external oracle), else None."""

    def ask(self, round_index: int, chosen: Selection, hints: Callable | None, elapsed_s: float) -> Answer:
        """Labels for `chosen`; `hints(pool_ids, images)` are the model's guesses for people (None in
        round 0); `elapsed_s`: the round's time so far."""

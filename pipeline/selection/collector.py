"""What a scoring pass gathers and selects from: the Collector contract, what it returns (Picked), and
the model output a scorer pushes into it. Pure numpy, no Ray; the acquisitions (acquisition.py) make them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeAlias, TypeVar

import numpy as np

# What the scorer pushes per batch, by `needs`: None, probs or embeddings (N, ...), or (probs, embeddings)
ModelOutput: TypeAlias = np.ndarray | tuple[np.ndarray, np.ndarray] | None
# candidate embeddings (N, D) -> (N,) float32 squared distance of each to its nearest labelled example (inf: none)
LabelledDistances: TypeAlias = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Picked:
    """What a collector selected."""

    pool_ids: np.ndarray  # (k,) int64, in pick order
    score_mean: float | None  # the chosen ids' mean acquisition score (None: set-based selection)


C = TypeVar("C", bound="Collector")


class Collector(ABC):
    """What one scorer gathers of its shard for one acquisition, and, merged, what the coordinator selects from."""

    k: int

    @property
    @abstractmethod
    def seen(self) -> int:
        """Candidates pushed so far, merged ones included."""

    @abstractmethod
    def push(self, pool_ids: np.ndarray, out: ModelOutput) -> None:
        """One batch's candidates: pool_ids (N,) and the model output `needs` asked for, aligned (batch_pos)."""

    @abstractmethod
    def merge(self: C, other: C) -> None:
        """Folds in the collector of a disjoint part of the pool (another scorer's shard)."""

    @abstractmethod
    def select(self, labelled_distances: LabelledDistances | None = None) -> Picked:
        """The k chosen pool ids; PoolExhaustedError when fewer candidates were seen than k needs."""


def one_array(out: ModelOutput) -> np.ndarray | None:
    if isinstance(out, tuple):
        raise ValueError("expected one model output, got a (probs, embeddings) pair")
    return out


class Collects(Protocol):
    """What a scoring pass runs: an acquisition (acquisition.Acquisition), or a neighbour index's
    embedding pass (neighbours.EmbeddingPass)."""

    needs: str | None

    def collector(self, k: int, seed: int) -> Collector: ...

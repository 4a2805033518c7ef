"""Episodic replay memories: which earlier labels the warm-start update replays. Pure numpy.

A memory sees every labelled example once, through `add`, and answers `sample(size)` with
pool ids. `random` and `class_balanced` draw from everything labelled so far; `reservoir`
keeps a fixed-capacity uniform sample of the label stream (Vitter's algorithm R), so its
footprint stays constant however long the run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from pipeline.errors import ConfigError
from pipeline.registry import Registry

MEMORIES: Registry[type[ReplayMemory]] = Registry("memory.policy")


def create_memory(name: str, capacity: int, with_replacement: bool = False) -> ReplayMemory:
    memory = MEMORIES.get(name)
    if capacity < 0:
        raise ConfigError(f"memory size {capacity} is negative: set memory.ratio or memory.count to 0 or more")
    return memory(capacity=capacity, with_replacement=with_replacement)


class ReplayMemory(ABC):
    name: str

    def __init__(self, capacity: int, with_replacement: bool = False):
        self.capacity = capacity
        self.with_replacement = with_replacement
        self.pool_ids = np.empty(0, dtype=np.int64)
        self.labels = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.pool_ids)

    def add(self, pool_ids: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> None:
        """Record newly labelled examples (pool ids with their labels)."""
        pool_ids = np.asarray(pool_ids, dtype=np.int64)
        labels = np.asarray(labels, dtype=np.int64)
        if pool_ids.shape != labels.shape:
            raise ValueError(f"pool_ids {pool_ids.shape} and labels {labels.shape} do not match")
        self._add(pool_ids, labels, rng)

    def _add(self, pool_ids, labels, rng) -> None:
        self.pool_ids = np.concatenate([self.pool_ids, pool_ids])
        self.labels = np.concatenate([self.labels, labels])

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """Up to `size` pool ids to replay (never more than the memory holds, as the authors cap it)."""
        size = min(size, len(self))
        if size <= 0:
            return np.empty(0, dtype=np.int64)
        return self._sample(size, rng)

    @abstractmethod
    def _sample(self, size: int, rng: np.random.Generator) -> np.ndarray: ...

    def _draw(self, pool_ids: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(pool_ids, size=size, replace=self.with_replacement)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"pool_ids": self.pool_ids, "labels": self.labels}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.pool_ids = np.asarray(state["pool_ids"], dtype=np.int64)
        self.labels = np.asarray(state["labels"], dtype=np.int64)


@MEMORIES.register("random")
class RandomMemory(ReplayMemory):
    """Uniform over everything labelled so far: the authors' policy."""

    def _sample(self, size, rng):
        return self._draw(self.pool_ids, size, rng)


@MEMORIES.register("class_balanced")
class ClassBalancedMemory(ReplayMemory):
    """As equal a share per class as the classes allow; rare classes give their slack to others."""

    def _sample(self, size, rng):
        classes, counts = np.unique(self.labels, return_counts=True)
        quota = balanced_quota(counts, size)
        parts = [self._draw(self.pool_ids[self.labels == c], q, rng) for c, q in zip(classes, quota) if q]
        return np.concatenate(parts)


def balanced_quota(counts: np.ndarray, size: int) -> np.ndarray:
    """How many to draw per class: counts (K,) available, `size` in all (<= counts.sum())."""
    quota = np.zeros(len(counts), dtype=np.int64)
    remaining = size
    order = np.argsort(counts, kind="stable")  # smallest first, so its slack flows to larger ones
    for n_left, k in zip(range(len(counts), 0, -1), order):
        quota[k] = min(counts[k], remaining // n_left)
        remaining -= quota[k]
    # integer division can leave a few; hand them out one per class with room, in class order
    for k in range(len(counts)):
        if remaining == 0:
            break
        extra = min(remaining, counts[k] - quota[k])
        quota[k] += extra
        remaining -= extra
    return quota


@MEMORIES.register("reservoir")
class ReservoirMemory(ReplayMemory):
    """A uniform sample of at most `capacity` labels of the whole stream, kept in place."""

    def __init__(self, capacity: int, with_replacement: bool = False):
        super().__init__(capacity, with_replacement)
        self.seen = 0

    def _add(self, pool_ids, labels, rng):
        for pool_id, label in zip(pool_ids, labels):
            self.seen += 1
            if len(self.pool_ids) < self.capacity:
                self.pool_ids = np.append(self.pool_ids, pool_id)
                self.labels = np.append(self.labels, label)
            else:
                slot = rng.integers(0, self.seen)
                if slot < self.capacity:
                    self.pool_ids[slot], self.labels[slot] = pool_id, label

    def _sample(self, size, rng):
        if size == len(self) and not self.with_replacement:
            return self.pool_ids.copy()
        return self._draw(self.pool_ids, size, rng)

    def state_dict(self):
        return {**super().state_dict(), "seen": np.int64(self.seen)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.seen = int(state["seen"])

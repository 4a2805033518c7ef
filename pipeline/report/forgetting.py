"""How a model is judged when classes arrive over the rounds. Pure numpy.

Evaluation there is on the classes seen so far; forgetting of a class is its best test accuracy in
any round so far minus its accuracy now, averaged over the classes seen before the current round (a
class that arrived this round cannot have been forgotten yet).
"""

from __future__ import annotations

import numpy as np


def per_class_accuracy(correct: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Accuracy per class; NaN for a class with no test examples."""
    correct, total = np.asarray(correct, dtype=np.float64), np.asarray(total, dtype=np.float64)
    return np.divide(correct, total, out=np.full(len(total), np.nan), where=total > 0)


def seen_accuracy(correct: np.ndarray, total: np.ndarray, seen: tuple[int, ...]) -> float:
    """Accuracy over the test examples whose class has arrived."""
    classes = list(seen)
    n = np.asarray(total)[classes].sum()
    return float(np.asarray(correct)[classes].sum() / n) if n else float("nan")


def forgetting(history: list[np.ndarray], seen_per_round: list[tuple[int, ...]]) -> float:
    """Mean forgetting at the last round of `history` (per-class accuracies, one array per round).

    Over the classes seen before the last round: best accuracy in any round in which the class
    was present, minus its accuracy in the last round. 0.0 when no class qualifies.
    """
    if len(history) != len(seen_per_round):
        raise ValueError(f"{len(history)} accuracy rounds but {len(seen_per_round)} seen-class rounds")
    if len(history) < 2:
        return 0.0
    earlier = set(seen_per_round[-2])
    drops = []
    for c in sorted(earlier):
        present = [acc[c] for acc, seen in zip(history, seen_per_round) if c in seen]
        drops.append(max(present) - history[-1][c])
    return float(np.mean(drops)) if drops else 0.0

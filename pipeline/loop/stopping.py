"""Stopping criteria: when an active-learning run may stop before its budget. Pure numpy, no Ray.

The budget (the end of the schedule) always stops a run; a criterion here can stop it earlier.
After each committed round the loop hands every criterion the round records so far (plain dicts,
round 0 first) and stops after the first one that holds; `check` answers with a one-sentence
reason carrying the figures it decided on, so the run directory says why it ended.

A criterion reads only these record fields, and one it needs but cannot find means "does not
hold" (None), never an error: round 0 is random, so it has no `selection_score_mean` or
`stop_set_kappa`, and acquisitions that do not score examples one by one never have the former.
  selection_val_acc     the selection model's validation accuracy after the round's update
  selection_score_mean  mean acquisition score of the batch chosen this round (higher = more uncertain)
  stop_set_kappa        Cohen's kappa of this round's and the previous round's selection-model
                        predictions on a fixed stop set (see `cohens_kappa`)
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from pipeline.config.run_config import StopConfig
from pipeline.registry import Registry

CRITERIA: Registry[type[StoppingCriterion]] = Registry("stopping criterion")


def create_criteria(configs: tuple[StopConfig, ...]) -> list[StoppingCriterion]:
    """One criterion per config, in config order (which is the order `first_stop` asks them in)."""
    classes = [CRITERIA.get(config.criterion) for config in configs]  # every name checked before any is built
    return [cls(config) for cls, config in zip(classes, configs)]


def first_stop(criteria: list[StoppingCriterion], records: list[dict]) -> dict | None:
    """{"criterion": name, "reason": sentence} of the first criterion that holds, else None."""
    for criterion in criteria:
        reason = criterion.check(records)
        if reason is not None:
            return {"criterion": criterion.name, "reason": reason}
    return None


class StoppingCriterion(ABC):
    """Keeps its StopConfig; subclasses read only the fields their comment in StopConfig names."""

    name: str
    reads_validation = False  # decides on validation accuracy: a run without a validation split cannot use it

    def __init__(self, config: StopConfig):
        self.config = config

    @abstractmethod
    def check(self, records: list[dict]) -> str | None:
        """Records of the committed rounds, round 0 first -> the reason to stop after the last one
        (one sentence with the figures), or None to go on."""


def _field(records: list[dict], key: str) -> list[float] | None:
    """`key` of every record, or None when any record lacks it (the criterion then does not hold)."""
    values = [float(v) for record in records if (v := record.get(key)) is not None]
    return values if len(values) == len(records) else None


@CRITERIA.register("accuracy_plateau")
class AccuracyPlateau(StoppingCriterion):
    """Each of the last `rounds` round-to-round changes of the selection model's validation accuracy is
    below `epsilon` (never its test accuracy: preflight asks for a validation split)."""

    reads_validation = True

    def check(self, records):
        n, epsilon = self.config.rounds, self.config.epsilon
        if len(records) < n + 1:  # n changes need n + 1 accuracies
            return None
        accs = _field(records[-(n + 1) :], "selection_val_acc")
        if accs is None or not all(abs(d) < epsilon for d in np.diff(accs)):
            return None
        figures = ", ".join(f"{a:.4f}" for a in accs)
        return f"validation accuracy moved less than {epsilon:g} over the last {n} rounds ({figures})"


@CRITERIA.register("uncertainty")
class Uncertainty(StoppingCriterion):
    """The batch just chosen is scored below `threshold` on average: the pool has little left to teach."""

    def check(self, records):
        if not records:
            return None
        score = _field(records[-1:], "selection_score_mean")
        if score is None or not score[0] < self.config.threshold:
            return None
        return (
            f"the chosen batch's mean acquisition score {score[0]:.4f} fell below "
            f"{self.config.threshold:g} in round {records[-1].get('round', len(records) - 1)}"
        )


@CRITERIA.register("stable_predictions")
class StablePredictions(StoppingCriterion):
    """Successive models agree on the stop set with kappa >= `kappa` over the last `rounds` rounds
    (Bloodgood & Vijay-Shanker 2009, "A method for stopping active learning based on stabilizing
    predictions"; they use kappa 0.99 over a window of 3)."""

    def check(self, records):
        n, threshold = self.config.rounds, self.config.kappa
        if len(records) < n:
            return None
        kappas = _field(records[-n:], "stop_set_kappa")
        if kappas is None or not all(k >= threshold for k in kappas):
            return None
        figures = ", ".join(f"{k:.4f}" for k in kappas)
        return (
            f"successive models agreed on the stop set with Cohen's kappa >= {threshold:g} "
            f"over the last {n} rounds ({figures})"
        )


def cohens_kappa(a: np.ndarray, b: np.ndarray, num_classes: int) -> float:
    """Cohen's kappa of two labelings a (N,), b (N,) of the same examples, ints in [0, num_classes).

    kappa = (p_o - p_e) / (1 - p_e), with p_o the observed agreement (the confusion matrix's
    diagonal) and p_e the agreement expected by chance from the two marginals.

    Degenerate case p_e = 1 (both put every example in the same one class), where the formula is
    0/0: we return 1.0 when the labelings agree everywhere and 0.0 otherwise. Two models that
    predict identically are stable, which is what `stable_predictions` asks; sklearn returns NaN
    here, which would never compare >= a threshold. (With exact counts p_e = 1 implies p_o = 1, so
    the 0.0 branch only guards the arithmetic.)
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"labelings {a.shape} and {b.shape} must be 1-D and of equal length")
    if len(a) == 0:
        raise ValueError("Cohen's kappa of empty labelings is undefined: the stop set is empty")
    if min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes})")
    n = len(a)
    confusion = np.bincount(a * num_classes + b, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes)  # (K, K): rows a, columns b
    agree = int(np.trace(confusion))
    # chance agreement in whole counts, so p_e == 1 is an exact test, not a float comparison
    chance = int(confusion.sum(axis=1) @ confusion.sum(axis=0))
    if chance == n * n:
        return 1.0 if agree == n else 0.0
    p_o, p_e = agree / n, chance / (n * n)
    return (p_o - p_e) / (1.0 - p_e)

"""Evaluating the model an update trained, with no Ray: accuracy on the validation split, which
every choice reads (stops, Tune's objective, the schedules), and on the test split, which only
reports; and a from-scratch fit's validation accuracy after each epoch, which says whether its
schedule had converged.

The Ray learner (actors/train_loop.py) and the in-process one (benchmarks/plain_loop.py) both
evaluate here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.data.base import PreparedData
from pipeline.update.training import predict


@dataclass(frozen=True)
class Split:
    """A whole split in memory: uint8 (N, C, H, W) images and int64 (N,) labels."""

    images: torch.Tensor
    labels: np.ndarray


def class_counts(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(correct, total) examples per true class."""
    correct = np.bincount(labels[predictions == labels], minlength=num_classes)
    return correct, np.bincount(labels, minlength=num_classes)


def predicted(model: torch.nn.Module, split: Split, data: PreparedData, device: torch.device) -> np.ndarray:
    return predict(model, split.images, mean=data.mean, std=data.std, device=device).argmax(axis=1)


def evaluate(
    model: torch.nn.Module,
    test: Split,
    validation: Split | None,
    data: PreparedData,
    device: torch.device,
    on_validation: np.ndarray | None = None,
) -> dict:
    """The UpdateResult's evaluation fields: test accuracy (overall and per class), validation accuracy
    (None without a validation split), and the stop set's predictions: the validation images where
    there are some, so that no decision depends on the test split at all. `on_validation`: the final
    model's validation predictions where an EpochCurve made them already (not predicted twice)."""
    on_test = predicted(model, test, data, device)
    correct, total = class_counts(on_test, test.labels, data.num_classes)
    figures = {
        "test_acc": float(correct.sum() / total.sum()) if total.sum() else float("nan"),
        "class_correct": correct.tolist(),
        "class_total": total.tolist(),
        "val_acc": None,
        "stop_predictions": on_test.astype(np.int32),
    }
    if validation is not None:
        if on_validation is None:
            on_validation = predicted(model, validation, data, device)
        figures["val_acc"] = float((on_validation == validation.labels).mean())
        figures["stop_predictions"] = on_validation.astype(np.int32)
    return figures


class EpochCurve:
    """An on_step hook for train_steps: after the last step of each epoch over `examples` rows
    (and after the last step), the model's validation accuracy; the model is put back in training
    mode, so the fit goes on exactly as it would have without the hook. `seconds`: the time the
    evaluations took, which is evaluation, not training, in the round's costs; `final`: the
    predictions after the last step, which the fit's evaluation reuses."""

    def __init__(
        self,
        model: torch.nn.Module,
        validation: Split,
        data: PreparedData,
        device: torch.device,
        examples: int,
        batch_size: int,
        steps: int,
    ):
        self.model, self.validation, self.data, self.device = model, validation, data, device
        self.steps_per_epoch, self.steps = math.ceil(examples / batch_size), steps
        self.accuracies: list[float] = []
        self.seconds = 0.0
        self.final: np.ndarray | None = None

    def __call__(self, taken: int) -> None:
        if taken % self.steps_per_epoch and taken != self.steps:
            return
        start = time.perf_counter()
        predictions = predicted(self.model, self.validation, self.data, self.device)
        if taken == self.steps:
            self.final = predictions
        self.accuracies.append(float((predictions == self.validation.labels).mean()))
        self.model.train()
        self.seconds += time.perf_counter() - start

"""Class-incremental pools and their evaluation, on hand-made numbers."""

import numpy as np
import pytest

from pipeline.data.growth import check_class_order, classes_at
from pipeline.errors import ConfigError
from pipeline.report.forgetting import forgetting, per_class_accuracy, seen_accuracy
from pipeline.update.evaluation import class_counts

ORDER = (3, 1, 4, 0, 2)


def test_classes_arrive_in_the_configured_order():
    assert [classes_at(ORDER, 2, 2, r) for r in range(4)] == [(3, 1), (3, 1, 4, 0), ORDER, ORDER]


@pytest.mark.parametrize(
    "order, message",
    [
        ((0, 1, 2, 3, 7), "names class 7, but the dataset's classes are 0..4"),
        ((0, 1, 1, 3, 4), "lists class 1 twice"),
        ((0, 1, 2, 3), "leaves out class 4"),
    ],
)
def test_bad_class_orders_are_refused(order, message):
    with pytest.raises(ConfigError, match=message):
        check_class_order(order, 5)


def test_per_class_and_seen_accuracy():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 0, 0])
    correct, total = class_counts(predictions, labels, 4)
    assert correct.tolist() == [1, 2, 0, 0] and total.tolist() == [2, 2, 2, 0]
    np.testing.assert_allclose(per_class_accuracy(correct, total), [0.5, 1.0, 0.0, np.nan])
    assert seen_accuracy(correct, total, (0, 1)) == 0.75
    assert np.isnan(seen_accuracy(correct, total, (3,)))


def test_forgetting_is_the_mean_drop_from_the_best_over_classes_seen_before_the_last_round():
    seen = [(0, 1), (0, 1, 2, 3), (0, 1, 2, 3, 4)]
    history = [
        np.array([0.9, 0.8, np.nan, np.nan, np.nan]),
        np.array([0.6, 0.9, 0.7, 0.9, np.nan]),
        np.array([0.5, 0.9, 0.7, 0.3, 0.95]),
    ]
    # class 0: 0.9 -> 0.5; class 1: best 0.9, now 0.9; class 2: 0.7 -> 0.7; class 3: 0.9 -> 0.3; class 4 just arrived
    assert forgetting(history, seen) == pytest.approx((0.4 + 0.0 + 0.0 + 0.6) / 4)
    assert forgetting(history[:1], seen[:1]) == 0.0
    with pytest.raises(ValueError, match="3 accuracy rounds but 2"):
        forgetting(history, seen[:2])

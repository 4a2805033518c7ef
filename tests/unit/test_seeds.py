"""The multi-seed compare's aggregation (benchmarks/seeds.py): per-seed values, mean and spread."""
import pytest

from benchmarks.seeds import compare_command, gather
from pipeline.report import summarize
from tests.unit.test_report import record


def report(full_acc: float, clactive_acc: float, random_acc: float, clactive_score: float) -> dict:
    """A compare's results.json as pipeline.report.summarize writes it: two rounds, budgets 20% and 50%."""
    target = lambda acc: {1: {"target_acc": acc, "round": 1}, 0: {"target_acc": acc - 0.02, "round": 0}}  # noqa: E731
    return summarize({
        "full": {"records": [record(0, 20, 0, 100, model="target", warm=False, acc=full_acc),
                             record(1, 50, 4, 300, model="target", warm=False, acc=full_acc)],
                 "targets": {}},
        "clactive": {"records": [record(0, 20, 0, 5, warm=False), record(1, 50, clactive_score, 2)],
                     "targets": target(clactive_acc)},
        "random": {"records": [record(0, 20, 0, 5, warm=False), record(1, 50, 0.0, 2)], "targets": target(random_acc)},
    }, {"20%": 0, "50%": 1}, pool_size=100)


def test_every_figure_has_its_seeds_values_mean_and_sample_std_and_missing_seeds_are_listed():
    out = gather({0: report(0.90, 0.91, 0.88, 1.0), 1: report(0.92, 0.91, 0.90, 3.0), 2: None})
    assert out["seeds_done"] == [0, 1] and out["seeds_missing"] == [2]
    figures = out["figures"]
    diff = figures["target_acc_clactive_minus_full_at_50"]
    assert diff["seeds"] == {0: pytest.approx(1.0), 1: pytest.approx(-1.0)}
    assert diff["mean"] == pytest.approx(0.0) and diff["std"] == pytest.approx(2 ** 0.5)
    assert figures["target_acc_clactive_minus_random_at_20"]["mean"] == pytest.approx(2.0)  # targets at 20% are 2 pt below those at 50%: 0.89 - 0.86, 0.89 - 0.88
    assert figures["target_acc_random_at_50"]["seeds"] == {0: 0.88, 1: 0.90}
    speedup = figures["speedup_vs_full_at_50"]["seeds"]
    assert speedup[0] > speedup[1] > 1  # clactive's longer scoring in seed 1 lowers its speed-up
    assert figures["speedup_vs_svp_at_50"]["mean"] is None  # no svp in this report: nothing made up


def test_each_protocol_and_seed_has_its_own_resumable_compare_directory():
    whole, subset = compare_command(1, None), compare_command(1, 10_000)
    assert "compare.dir=runs/compare-fashion_mnist-s1" in whole and "seed=1" in whole
    assert "compare.dir=runs/compare-fashion_mnist-s1-c10000" in subset and "scoring.candidates=10000" in subset
    assert not any(arg.startswith("scoring.candidates") for arg in whole)

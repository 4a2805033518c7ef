"""The multi-seed compare's aggregation (benchmarks/seeds.py): per-seed values, mean and spread."""

import pytest

from benchmarks.seeds import compare_command, gather
from pipeline.report.summary import summarize
from tests.unit.test_report import record


def report(
    full_acc: float,
    clactive_acc: float,
    random_acc: float,
    clactive_score: float,
    cluster_margin_acc: float | None = None,
) -> dict:
    """A compare's results.json as pipeline.report.summary.summarize writes it: two rounds, budgets 20% and 50%."""
    target = lambda acc: {1: {"target_acc": acc, "round": 1}, 0: {"target_acc": acc - 0.02, "round": 0}}  # noqa: E731
    extras = (
        {}
        if cluster_margin_acc is None
        else {
            "cluster_margin": {
                "records": [record(0, 20, 0, 5, warm=False), record(1, 50, 1.0, 2)],
                "targets": target(cluster_margin_acc),
            }
        }
    )
    return summarize(
        {
            "full": {
                "records": [
                    record(0, 20, 0, 100, model="target", warm=False, acc=full_acc),
                    record(1, 50, 4, 300, model="target", warm=False, acc=full_acc),
                ],
                "targets": {},
            },
            "clactive": {
                "records": [record(0, 20, 0, 5, warm=False), record(1, 50, clactive_score, 2)],
                "targets": target(clactive_acc),
            },
            "random": {
                "records": [record(0, 20, 0, 5, warm=False), record(1, 50, 0.0, 2)],
                "targets": target(random_acc),
            },
            **extras,
        },
        {"20%": 0, "50%": 1},
        pool_size=100,
    )


def test_every_figure_has_its_seeds_values_mean_and_sample_std_and_missing_seeds_are_listed():
    out = gather({0: report(0.90, 0.91, 0.88, 1.0), 1: report(0.92, 0.91, 0.90, 3.0), 2: None})
    assert out["seeds_done"] == [0, 1] and out["seeds_missing"] == [2]
    figures = out["figures"]
    diff = figures["target_acc_clactive_minus_full_at_50"]
    assert diff["seeds"] == {0: pytest.approx(1.0), 1: pytest.approx(-1.0)}
    assert diff["mean"] == pytest.approx(0.0) and diff["std"] == pytest.approx(2**0.5)
    assert figures["target_acc_clactive_minus_random_at_20"]["mean"] == pytest.approx(
        2.0
    )  # targets at 20% are 2 pt below those at 50%: 0.89 - 0.86, 0.89 - 0.88
    assert figures["target_acc_random_at_50"]["seeds"] == {0: 0.88, 1: 0.90}
    speedup = figures["speedup_vs_full_at_50"]["seeds"]
    assert speedup[0] > speedup[1] > 1  # clactive's longer scoring in seed 1 lowers its speed-up
    assert figures["speedup_vs_svp_at_50"]["mean"] is None  # no svp in this report: nothing made up


def test_each_protocol_and_seed_has_its_own_resumable_compare_directory():
    whole, subset = compare_command(1, None), compare_command(1, 10_000)
    assert "compare.dir=runs/compare-fashion_mnist-s1" in whole and "seed=1" in whole
    assert "compare.dir=runs/compare-fashion_mnist-s1-c10000" in subset and "scoring.candidates=10000" in subset
    assert not any(arg.startswith("scoring.candidates") for arg in whole)


def test_a_seed_kept_in_the_repository_one_strategy_at_a_time_is_summarized_only_when_complete(tmp_path, monkeypatch):
    """Kept strategies survive the machine (JSON in benchmarks/results/seeds, round keys as strings) and
    make the same report as the compare would; a seed with a strategy missing makes none."""
    import json

    import benchmarks.seeds as seeds

    monkeypatch.setattr(seeds, "KEPT", tmp_path)

    def six(model, warm, acc):
        return [record(r, 1200 + 6000 * r, 1.0, 10.0, model=model, warm=warm and r > 0, acc=acc) for r in range(6)]

    fits = {2: {"target_acc": 0.80}, 5: {"target_acc": 0.85}}
    entries = {
        "full": (six("target", False, 0.86), {}),
        "svp": (six("proxy", False, 0.5), fits),
        "clactive": (six("proxy", True, 0.5), fits),
        "random": (six("proxy", True, 0.5), fits),
    }
    for i, (name, (records, targets)) in enumerate(entries.items()):
        path = seeds.kept_path(0, 10_000, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"records": records, "targets": targets, "machine": "m", "date": "2026-12-03"}))
        if i < 3:
            assert set(seeds.kept(0, 10_000)) != set(seeds.STRATEGIES)
    summary = seeds.summary_of(seeds.kept(0, 10_000))
    assert summary["budgets"] == {"20%": 2, "50%": 5}
    assert summary["strategies"]["clactive"]["at"]["50%"]["target_acc"] == 0.85
    assert summary["strategies"]["full"]["at"]["20%"]["target_acc"] == 0.86  # full's own round-2 model
    assert gather({0: summary})["figures"]["target_acc_clactive_minus_full_at_50"]["mean"] == pytest.approx(-1.0)


def test_cluster_margin_figures_are_over_the_seeds_where_it_ran_and_the_others_over_all():
    out = gather(
        {
            0: report(0.90, 0.91, 0.88, 1.0, cluster_margin_acc=0.93),
            1: report(0.92, 0.91, 0.90, 3.0),
            2: report(0.92, 0.91, 0.90, 3.0, cluster_margin_acc=0.92),
        }
    )
    figures = out["figures"]
    against_lc = figures["target_acc_cluster_margin_minus_clactive_at_20"]
    assert against_lc["seeds"] == {0: pytest.approx(2.0), 1: None, 2: pytest.approx(1.0)}
    assert against_lc["mean"] == pytest.approx(1.5)  # seed 1 has no cluster_margin: left out, not zero
    assert figures["target_acc_cluster_margin_minus_random_at_20"]["mean"] == pytest.approx((5.0 + 2.0) / 2)
    assert figures["target_acc_clactive_minus_random_at_20"]["seeds"].keys() == {0, 1, 2}


def test_labels_random_needs_are_interpolated_on_its_curve_and_none_beyond_it():
    from benchmarks.seeds import curve_command, label_efficiency, labels_to_reach

    curve = [(12000, 0.90), (18000, 0.91), (24000, 0.92), (30000, 0.93)]
    assert labels_to_reach(curve, 0.915) == pytest.approx(21000)  # halfway from 18k to 24k
    assert labels_to_reach(curve, 0.93) == 30000
    assert labels_to_reach(curve, 0.95) is None  # random does not get there by 50%
    assert labels_to_reach(curve, 0.89) is None  # random is already past it at 20%: nothing measured
    strategies = {
        name: {"at": {"20%": {"labelled": 12000, "target_acc": acc}}}
        for name, acc in (("clactive", 0.915), ("svp", 0.93), ("full", 0.99))
    }
    saved = label_efficiency({"strategies": strategies}, curve)
    assert saved["labels_saved_vs_random_at_20"] == pytest.approx(0.75)  # 21k labels for clactive's 12k
    assert saved["labels_saved_vs_random_at_20_svp"] == pytest.approx(1.5)
    assert saved["labels_saved_vs_random_at_20_full"] is None
    command = curve_command(1)
    assert "compare.dir=runs/compare-fashion_mnist-s1-curve" in command and command[-1] == "compare.budgets=[0.3, 0.4]"

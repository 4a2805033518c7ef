"""The figures files: every key comes from a measured source, each target is judged on it, and the
committed READMEs and JSON are exactly what `python -m benchmarks.figures` writes from benchmarks/results/."""

import difflib
import json

import pytest

from benchmarks import figures, figures_bench, figures_text
from pipeline.report.summary import summarize
from tests.unit.test_report import record


def write(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "RESULTS", tmp_path / "results")
    return tmp_path / "results"


def compare_report() -> dict:
    return summarize(
        {
            "full": {
                "records": [
                    record(0, 10, 0, 101, model="target", warm=False, acc=0.90),
                    record(1, 50, 4, 201, model="target", warm=False, acc=0.92),
                ],
                "targets": {},
            },
            "svp": {
                "records": [record(0, 10, 0, 5, warm=False), record(1, 50, 2, 17, warm=False)],
                "targets": {1: {"target_acc": 0.915}},
            },
            "clactive": {
                "records": [record(0, 10, 0, 5, warm=False), record(1, 50, 2, 2)],
                "targets": {1: {"target_acc": 0.918}},
            },
        },
        {"50%": 1},
        pool_size=100,
    )


def horizon_report() -> dict:
    return summarize(
        {
            "svp": {
                "records": [record(0, 10, 0, 5, warm=False), record(1, 11, 2, 41, warm=False, acc=0.80)],
                "targets": {},
            },
            "clactive": {"records": [record(0, 10, 0, 5, warm=False), record(1, 11, 2, 2, acc=0.795)], "targets": {}},
        },
        {},
        pool_size=100,
    )


@pytest.fixture
def sources(tmp_path, results_dir):
    """A compare and a long horizon in their run directories, and three benchmark scripts' JSON."""
    compare = compare_report()
    write(tmp_path / "compare" / "results.json", {**compare, "command": "clactive compare", "date": "2026-11-24"})
    write(tmp_path / "long" / "results.json", horizon_report())
    write(results_dir / "scoring_throughput.json", {"throughput_ratio_at_config": 0.95, "command": "a"})
    write(results_dir / "round_costs.json", {"update_time_ratio_last_first": 1.3, "overhead_share": 0.1})
    scale = {"cluster_margin_scorer_rss_ratio": 1.02, "cluster_margin_coordinator_rss_ratio": 1.3}
    write(results_dir / "scale.json", {**scale, "command": "python -m benchmarks.scale", "date": "2026-12-06"})
    figures.copy_outputs(tmp_path / "compare", "compare")
    figures.copy_outputs(tmp_path / "long", "long_horizon")
    return compare


def test_figures_are_ratios_of_the_sources(sources, results_dir):
    summary = figures.gather(results_dir)

    at = {name: sources["strategies"][name]["at"]["50%"] for name in ("full", "svp", "clactive")}
    assert summary["speedup_vs_full_at_50"] == at["full"]["selection_s"] / at["clactive"]["selection_s"]
    assert summary["update_speedup_vs_svp_at_50"] == at["svp"]["update_s"] / at["clactive"]["update_s"]
    assert summary["target_acc_at_50"] == {"full": 0.92, "svp": 0.915, "clactive": 0.918}
    assert summary["update_speedup_vs_svp_long_horizon"] == (4 + 40) / (4 + 1)
    assert summary["driver_rss_ratio_600k_60k"] is None
    assert "python -m benchmarks.scale" in summary["command"]
    assert summary["date"] == "2026-12-06"  # the newest measurement's, never today's
    assert (results_dir / "compare" / "results.json").is_file()  # the sources are copied beside the figures


def test_each_target_is_judged_on_its_figure(sources, results_dir):
    summary = figures.gather(results_dir)

    verdicts = {t["key"]: t["verdict"] for t in summary["targets"]}
    assert verdicts == {
        "speedup_vs_full_at_50": "missed",  # (100.5 + 204.5) / (4.5 + 3.5) = 38.1
        "target_acc_clactive_minus_full_at_50": "met",  # -0.2 pt
        "update_speedup_vs_svp_at_50": "met",  # (4 + 16) / (4 + 1)
        "update_speedup_vs_svp_long_horizon": "missed",  # 8.8x, although the proxies are 0.5 pt apart
        "speedup_vs_svp_at_50": "reported",
        "update_time_ratio_last_first": "missed",
        "scoring_throughput_ratio": "met",
        "driver_rss_ratio_600k_60k": "not measured",
        "overhead_share": "met",
        "selection_ratio_vs_plain": "not measured",
        "clactive_scoring_share_at_50_candidates": "not measured",  # no seeds.json
        "target_acc_candidates_minus_whole_at_20": "not measured",
        "target_acc_candidates_minus_whole_at_50": "not measured",
        "target_acc_clactive_minus_random_at_20": "not measured",
        "labels_saved_vs_random_at_20": "not measured",
        "target_acc_cluster_margin_minus_clactive_at_20": "not measured",
        "target_acc_cluster_margin_minus_random_at_20": "not measured",
        "cluster_margin_scorer_rss_ratio": "met",
        "cluster_margin_coordinator_rss_ratio": "missed",
    }
    row = "| Ray Data scoring throughput / plain torch loop | >= 0.9 | 0.95 | met |"
    assert row in figures_text.target_table(summary["targets"])


def test_class_incremental_figures_and_report(tmp_path):
    from pipeline.report.summary import table, write

    def rounds(forgetting, acc_seen, model="proxy", warm=True):
        return [
            {**record(r, 10 * (r + 1), 1, 3, model=model, warm=warm if r else False), "acc_seen": acc, "forgetting": f}
            for r, (f, acc) in enumerate(zip(forgetting, acc_seen))
        ]

    entries = {
        "full": {"records": rounds([0.0, 0.01], [0.95, 0.90], model="target", warm=False), "targets": {}},
        "clactive": {
            "records": rounds([0.0, 0.04], [0.93, 0.85]),
            "targets": {1: {"target_acc": 0.9, "acc_seen": 0.895}},
        },
        "finetune": {
            "records": rounds([0.0, 0.20], [0.93, 0.60]),
            "targets": {1: {"target_acc": 0.8, "acc_seen": 0.80}},
        },
    }
    summary = summarize(entries, {"20%": 1}, pool_size=100)
    assert "| finetune | 1 | 0.6000 | 0.2000 |" in table(summary)
    names = {path.name for path in write(summary, tmp_path, {"command": "clactive compare x"})}
    assert {"acc_seen.png", "forgetting.png"} <= names

    figures_ = figures.class_incremental(json.loads((tmp_path / "results.json").read_text()))
    assert figures_["forgetting"] == {"full": 0.01, "clactive": 0.04, "finetune": 0.20}
    assert figures_["target_acc_seen_last"] == {"full": 0.90, "clactive": 0.895, "finetune": 0.80}
    assert [(c["measured"], c["verdict"]) for c in figures_["targets"]] == [
        (pytest.approx(0.2), "met"),
        (pytest.approx(-0.5), "met"),
        (pytest.approx(-5.0), "missed"),
    ]


def test_the_tune_search_is_copied_and_reported_with_its_choice(tmp_path, results_dir):
    from tune.report import write as write_search

    def trial(name, status, acc, seconds, steps):
        return {
            "trial": name,
            "params": {"update.steps": steps, "memory.policy": "random"},
            "status": status,
            "rounds": 4 if status == "finished" else 2,
            "accuracy": acc,
            "selection_s": seconds,
        }

    trials = [
        trial("a", "finished", 0.86, 120.0, 300),
        trial("b", "finished", 0.858, 60.0, 100),
        trial("c", "stopped", 0.70, 20.0, 50),
    ]
    base = {"schedule": {"initial": 40, "round_ends": [70]}}
    meta = {"date": "2026-11-25T01:00:00+00:00", "command": "clactive tune --config x.yaml"}
    meta = {**meta, "rounds": 4, "dataset": "fashion_mnist", "reference": {"val_acc": 0.861}}
    write_search(trials, base, tmp_path / "tune", "proxy_val_acc", 0.5, meta)

    search = figures.copy_outputs(tmp_path / "tune", "tune", "trials.json", figures.TUNE_COPIED)
    assert sorted(p.name for p in (results_dir / "tune").iterdir()) == sorted(figures.TUNE_COPIED)
    text = "\n".join(figures_bench.tune_section(search, results_dir))
    assert "3 trials of 4 rounds on fashion_mnist: 2 finished, 1 stopped early by ASHA, 0 failed" in text
    assert "| b | random | 100 | finished | 4 | 0.8580 | n/a | 60.0 | yes |" in text
    assert (
        "Chosen (the fastest finished trial within 0.5 pt of full's validation accuracy 0.8610): b, "
        "memory.policy = random, update.steps = 100; proxy_val_acc 0.8580 in 60.0 s" in text
    )
    # on a machine without the run: the copy kept here stands; nothing kept, nothing made up
    assert figures.copy_outputs(tmp_path / "nothing", "tune", "trials.json", figures.TUNE_COPIED) == search
    assert figures.copy_outputs(tmp_path / "nothing", "other", "trials.json", figures.TUNE_COPIED) is None


def spread(mean, std, seeds=(0, 1, 2)):  # as seeds.json holds it: per-seed values keyed by the seed, as text
    return {"seeds": {str(seed): mean for seed in seeds}, "mean": mean, "std": std}


def seeds_json() -> dict:
    whole = {
        "speedup_vs_full_at_50": spread(30.0, 2.0),
        "target_acc_clactive_at_20": spread(0.900, 0.001),
        "target_acc_clactive_at_50": spread(0.930, 0.002),
        "target_acc_clactive_minus_random_at_20": spread(1.2, 0.3),
        "target_acc_cluster_margin_minus_clactive_at_20": spread(0.4, 0.1, seeds=(0, 2)),  # not its protocol
    }
    candidates = {
        "clactive_scoring_share_at_50": spread(0.15, None, (0,)),
        "target_acc_clactive_at_20": spread(0.898, None, (0,)),
        "target_acc_clactive_at_50": spread(0.926, None, (0,)),
        "target_acc_cluster_margin_minus_clactive_at_20": spread(-0.6, None, (0,)),
    }
    return {
        "date": "2026-12-03T09:00:00+00:00",
        "protocols": {
            "whole": {"seeds_done": [0, 1, 2], "seeds_missing": [], "candidates": None, "figures": whole},
            "candidates": {"seeds_done": [0], "seeds_missing": [1, 2], "candidates": 10000, "figures": candidates},
        },
    }


def test_with_seeds_json_the_compare_figures_are_the_seeds_means_and_candidates_are_judged_against_whole(
    results_dir,
):
    write(results_dir / "seeds.json", seeds_json())
    summary = figures.gather(results_dir)
    assert (summary["seeds"], summary["seeds_candidates"]) == ([0, 1, 2], [0])
    assert (summary["speedup_vs_full_at_50"], summary["speedup_vs_full_at_50_std"]) == (30.0, 2.0)
    assert summary["target_acc_candidates_minus_whole_at_20"] == pytest.approx(-0.2)
    assert summary["target_acc_candidates_minus_whole_at_50"] == pytest.approx(-0.4)
    verdicts = {t["key"]: t["verdict"] for t in summary["targets"]}
    assert (
        verdicts["speedup_vs_full_at_50"] == "missed"
        and verdicts["clactive_scoring_share_at_50_candidates"] == "met, 1 of 3 seeds"
    )
    assert verdicts["target_acc_candidates_minus_whole_at_20"] == "met, 1 of 3 seeds"  # the seeds both protocols have
    assert verdicts["target_acc_candidates_minus_whole_at_50"] == "missed, 1 of 3 seeds"
    assert verdicts["target_acc_clactive_minus_random_at_20"] == "met"
    assert verdicts["target_acc_cluster_margin_minus_clactive_at_20"] == "reported, 1 of 3 seeds"
    assert summary["target_acc_cluster_margin_minus_clactive_at_20"] == -0.6  # the candidates protocol's


def test_the_seed_table_gives_each_figure_per_protocol_with_its_seeds():
    lines = figures_bench.seed_lines(seeds_json())
    assert "| figure | whole (seeds 0, 1, 2) | candidates (seeds 0) |" in lines
    assert "| speedup_vs_full_at_50 | 30 ± 2 | - |" in lines and "missing: whole: none; candidates: 1, 2." in lines[0]
    assert "| target_acc_cluster_margin_minus_clactive_at_20 | 0.4 ± 0.1 (seeds 0, 2) | -0.6 |" in lines


def test_a_section_is_replaced_between_its_markers_only():
    begin, end = figures_text.markers("x")
    text = f"prose 1\n{begin}\nold 2\n{end}\nprose 3\n"
    assert figures_text.fill(text, "x", ["new 4"]) == f"prose 1\n{begin}\n\nnew 4\n\n{end}\nprose 3\n"
    with pytest.raises(ValueError, match="markers"):
        figures_text.fill("no markers here", "x", ["new"])


def test_the_committed_readmes_and_figures_are_what_figures_writes_from_the_results():
    """Regenerates README.md, benchmarks/README.md and the JSON figures.py owns from benchmarks/results/,
    in memory, and compares them with the committed files: a figure typed by hand, or a result JSON
    changed without `python -m benchmarks.figures`, fails here."""
    written = figures.outputs()
    assert {figures.README, figures.BENCH_README, figures.RESULTS / "fashion_mnist.json"} <= set(written)
    for path, text in written.items():
        committed = path.read_text()
        diff = "".join(
            list(difflib.unified_diff(committed.splitlines(True), text.splitlines(True), "committed", "regenerated"))[
                :40
            ]
        )
        assert committed == text, f"{path} is not what `python -m benchmarks.figures` writes:\n{diff}"


def test_the_class_incremental_seeds_are_summarized_with_each_strategys_labels_per_class(tmp_path, monkeypatch):
    from benchmarks import class_incremental_seeds

    monkeypatch.setattr(class_incremental_seeds, "KEPT", tmp_path)

    def kept(seed, full_acc, forgetting):
        strategies = {
            name: {"per_round": [{"acc_seen": acc, "forgetting": f}], "at": {"10%": {"target_acc": acc}}}
            for name, acc, f in (("full", full_acc, 0.01), ("clactive", 0.85, forgetting), ("finetune", 0.78, 0.4))
        }
        classes = {
            name: {"labels_per_class": [10 + seed, 0], "target_per_class_acc": [0.9, 0.0]}
            for name in ("full", "clactive", "finetune")
        }
        (tmp_path / f"s{seed}.json").write_text(
            json.dumps(
                {"machine": "m", "date": "2026-12-07", "results": {"strategies": strategies}, "classes": classes}
            )
        )

    kept(0, 0.67, 0.02)
    kept(1, 0.69, 0.04)
    seeded = json.loads(json.dumps(class_incremental_seeds.gather([0, 1, 2])))  # as the JSON file holds it
    assert seeded["seeds_done"] == [0, 1] and seeded["seeds_missing"] == [2]
    assert seeded["figures"]["target_acc_full"]["mean"] == pytest.approx(0.68)
    assert seeded["figures"]["forgetting_clactive_over_finetune"]["mean"] == pytest.approx(0.075)
    lines = figures_text.incremental_seed_lines(seeded)
    assert "the target's accuracy at 10% full 0.6800 ± 0.0141, clactive 0.8500 ± 0.0000" in lines[1]
    assert lines[-3:] == [
        "| full | 10 (0.90) | 0 (0.00) |",
        "| clactive | 10 (0.90) | 0 (0.00) |",
        "| finetune | 10 (0.90) | 0 (0.00) |",
    ]

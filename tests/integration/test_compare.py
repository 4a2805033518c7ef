"""`clactive compare` end to end on small generated data: a consistent report, and a resumed compare.
It runs in this process, on the session's Ray, through the command line's entry point."""

import json

import pytest

from pipeline.loop.run_store import RunStore
from pipeline.report.summary import round_costs
from tests.helpers import tiny_overrides
from tests.integration.test_cli import in_process, with_sets

pytestmark = pytest.mark.ray


def test_compare_reports_consistent_figures_and_a_rerun_skips_a_finished_strategy(
    ray_cluster, tiny_data_dir, tmp_path, capsys
):
    out = tmp_path / "cmp"
    sets = tiny_overrides(tiny_data_dir, tmp_path) + [
        f"compare.dir={out}",
        "schedule.round_ends=[70]",
        "compare.budgets=[40, 70]",
    ]
    code, _, err = in_process(capsys, "compare", *with_sets(sets + ["compare.strategies=[svp]"]))
    assert code == 0, err[-3000:]
    stamps = {p: p.stat().st_mtime_ns for p in (out / "svp").rglob("*") if p.is_file()}

    # the same compare with one more strategy: svp is read back, not run again
    code, printed, err = in_process(capsys, "compare", *with_sets(sets + ["compare.strategies=[svp, clactive]"]))
    assert code == 0, err[-3000:]
    assert "== svp: done earlier" in printed and "== clactive (clactive / least_confidence)" in printed
    assert {p: p.stat().st_mtime_ns for p in (out / "svp").rglob("*") if p.is_file()} == stamps

    results = json.loads((out / "results.json").read_text())
    assert results["budgets"] == {"40 labels": 0, "70 labels": 1}  # as compare.budgets writes them
    for name in ("svp", "clactive"):
        store = RunStore(out / name)
        records = store.records()
        for label, k in results["budgets"].items():
            at = results["strategies"][name]["at"][label]
            assert at["selection_s"] == pytest.approx(sum(round_costs(r)["selection_s"] for r in records[: k + 1]))
            assert at["update_s"] == pytest.approx(sum(round_costs(r)["update_s"] for r in records[: k + 1]))
            fit = store.read_json(f"targets/{k:04d}.json")
            assert at["target_acc"] == fit["target_acc"] and fit["labelled"] == records[k]["labelled"]
    for label in results["budgets"]:
        svp, ours = (results["strategies"][n]["at"][label] for n in ("svp", "clactive"))
        figures = results["speedups"][label]
        assert figures["selection_vs_svp"] == pytest.approx(svp["selection_s"] / ours["selection_s"])
        assert figures["update_vs_svp"] == pytest.approx(svp["update_s"] / ours["update_s"])
    for png in ("target_accuracy.png", "selection_time.png", "update_per_round.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| clactive | 70 labels | 70 |" in (out / "table.md").read_text()
    assert results["date"] and results["machine"] and results["command"].startswith("clactive compare --set ")

"""The `clactive` command as a user runs it: a subprocess, exit codes, what it prints."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import pipeline.cli
from pipeline.run_store import RunStore
from tests.helpers import IDX_NAMES, tiny_overrides, write_fashion_like

REPO = Path(__file__).resolve().parents[2]


def clactive(*args, env=None, timeout=240):
    return subprocess.run([sys.executable, "-m", "pipeline", "run", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def in_process(capsys, *argv) -> tuple[int, str, str]:
    """`clactive ARGV` through its entry point in this process, on the session's Ray (a process per
    command costs seconds of imports): (exit status, stdout, stderr)."""
    code = pipeline.cli.main([str(arg) for arg in argv])
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def with_sets(overrides):
    return [arg for item in overrides for arg in ("--set", item)]


def truncate(data_dir: Path) -> None:
    path = data_dir / IDX_NAMES["pool"][0]
    path.write_bytes(path.read_bytes()[:2000])


# The full table of bad inputs is tests/unit/test_bad_input.py (in-process); these two check the
# real process: exit status 2 and one line on stderr, from a config error and from a data error.
@pytest.mark.parametrize("extra, damage, message", [
    (["--strategy", "coreset"], None, "unknown strategy 'coreset': choose one of clactive, finetune, full, svp"),
    ([], truncate, "not a readable gzip file"),
])
def test_user_errors_print_one_line_exit_2_and_write_nothing(tmp_path, extra, damage, message):
    data_dir = write_fashion_like(tmp_path / "raw")
    if damage:
        damage(data_dir)
    done = clactive(*with_sets(tiny_overrides(data_dir, tmp_path)), *extra)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == done.stderr.strip().splitlines()[0]  # one line, no traceback
    assert done.stderr.startswith("clactive: error: ") and message in done.stderr
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.rglob(".*.tmp"))  # a prepared data cache may stay; a partial one may not


SECONDS = {"score", "score_compute", "select", "label", "update", "train", "eval", "learner_overhead", "round"}


@pytest.mark.ray
def test_a_run_grows_the_labelled_set_by_the_round_sizes_and_prints_a_row_per_round(ray_cluster, tmp_path,
                                                                                     tiny_data_dir):
    done = clactive(*with_sets(tiny_overrides(tiny_data_dir, tmp_path)), env={"RAY_ADDRESS": ray_cluster})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()  # Ray may interleave its own log lines
    assert sum(line.split()[:2] == ["round", "labelled"] for line in lines) == 1
    rows = [line.split() for line in lines if line.split()[:1] and line.split()[0].isdigit()]
    assert [(row[0], row[1], row[2]) for row in rows] == [("0", "40", "40"), ("1", "70", "30"), ("2", "100", "30")]
    assert any(line.startswith("target small_cnn trained from scratch on 100 labels: test accuracy") for line in lines)

    run_dir = tmp_path / "run"
    store = RunStore(run_dir)
    rounds = [pq.read_table(run_dir / "rounds" / f"{r:04d}" / "labels.parquet") for r in store.committed_rounds()]
    assert [t.num_rows for t in rounds] == [40, 30, 30]
    ids = np.concatenate([t.column("id").to_numpy() for t in rounds])
    assert len(set(ids.tolist())) == len(ids)  # no id labelled twice, so each was unlabelled when chosen
    assert set(ids.tolist()) <= set(range(400))
    records = store.records()
    assert [r["labelled"] for r in records] == [40, 70, 100] and [r["acquired"] for r in records] == [40, 30, 30]
    for record in records:
        assert SECONDS <= set(record["seconds"]) and all(v >= 0 for v in record["seconds"].values())
        assert 0.0 <= record["selection_acc"] <= 1.0 and record["selection_model"] == "proxy"
    assert [r["warm_start"] for r in records] == [False, True, True]
    assert [r["steps"] for r in records[1:]] == [7, 7]             # update.steps, counted by the worker
    assert [r["train_examples"] for r in records[1:]] == [60, 60]  # 30 new + 30 replayed
    target = store.read_json("targets/0002.json")
    assert target["labelled"] == 100 and 0.0 <= target["target_acc"] <= 1.0
    assert len(list(run_dir.glob("rounds/*/checkpoint.pt"))) == 3

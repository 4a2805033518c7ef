"""The `clactive` command as a user runs it: a subprocess, exit codes, what it prints. The whole run as a
process is the submitted job of tests/integration/test_cluster.py: `ray job submit` runs this command."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline.cli
from tests.helpers import IDX_NAMES, tiny_overrides, write_fashion_like

REPO = Path(__file__).resolve().parents[2]


def clactive(*args, env=None, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


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
@pytest.mark.parametrize(
    "extra, damage, message",
    [
        (["--strategy", "coreset"], None, "unknown strategy 'coreset': choose one of clactive, finetune, full, svp"),
        ([], truncate, "not a readable gzip file"),
    ],
)
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


def test_a_relative_cache_dir_on_a_cluster_of_two_nodes_is_one_line_and_no_run_directory(
    ray_cluster, tiny_data_dir, tmp_path, capsys, monkeypatch
):
    """Every node reads the prepared pool: a path relative to one process's working directory names a
    different place on each node (under `ray job submit`, each node's own copy of the working dir)."""
    monkeypatch.chdir(tmp_path)
    code, _, err = in_process(
        capsys,
        "run",
        *with_sets(tiny_overrides(tiny_data_dir, tmp_path) + ["data.cache_dir=cache", f"run_dir={tmp_path / 'run'}"]),
    )
    assert code == 2
    assert err.strip().splitlines() == [
        "clactive: error: data.cache_dir cache is a relative path, and this cluster "
        "has 2 nodes: each node would look for the prepared pool in its own working "
        "directory; set data.cache_dir to a path every node shares (e.g. an NFS mount)"
    ]
    assert not (tmp_path / "run").exists()

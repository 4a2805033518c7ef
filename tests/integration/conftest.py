"""Fixtures shared by the integration tests."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.loop.run_store import RunStore
from tests.helpers import tiny_overrides
from tests.integration.test_cli import REPO, with_sets
from tests.ray_head import RAY

NO_TARGET = ["train_target_at_end=false"]
# Two rounds: the initial random set, then one scored round. Every fault and kill point of a run is
# in these two, and the first rounds' choices do not depend on how many rounds follow. Round 1
# scores a random 200 of the 360 unlabelled examples (scoring.candidates), so every resume, kill
# and fault test also checks that a redone round draws the same subset.
TWO_ROUNDS = ["schedule.round_ends=[70]", "scoring.candidates=200"]


def two_round_args(data_dir: Path, work_dir: Path, *extra: str) -> list[str]:
    """`clactive run` arguments of the tiny two-round run that the resume, fault and oracle tests
    compare with `unbroken`."""
    return with_sets(tiny_overrides(data_dir, work_dir) + NO_TARGET + TWO_ROUNDS + list(extra))


def selection(run_dir: Path) -> list[list[int]]:
    """The ids each committed round acquired, in order."""
    store = RunStore(run_dir)
    ids, _ = store.load_labels()
    sizes = [r["acquired"] for r in store.records()]
    return [part.tolist() for part in np.split(ids, np.cumsum(sizes)[:-1])]


@pytest.fixture(scope="session")
def submitted(ray_head_node, ray_cluster, tiny_data_dir, tmp_path_factory) -> tuple[subprocess.CompletedProcess, str]:
    """The two-round run, unbroken, with the simulated oracle, as a `ray job submit` job: `clactive run`
    as a process, the job's driver. Returns (what `ray job submit` printed, the run directory's URI).
    Its run directory is a file:// URI, so the pyarrow-filesystem path is used."""
    _, dashboard = ray_head_node
    uri = (tmp_path_factory.mktemp("submitted") / "run").as_uri()
    done = submit(dashboard, *two_round_args(tiny_data_dir, tmp_path_factory.mktemp("work"), f"run_dir={uri}"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done, uri


@pytest.fixture(scope="session")
def unbroken(submitted) -> list[list[int]]:
    """The submitted run's selection: the reference of the resume, fault and external-oracle tests."""
    return selection(submitted[1])


def submit(dashboard_url: str, *pipeline_args: str, timeout: float = 280) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            RAY,
            "job",
            "submit",
            "--address",
            dashboard_url,
            "--working-dir",
            str(REPO),
            "--",
            "python",
            "-m",
            "pipeline",
            "run",
            *pipeline_args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )

"""Fixtures shared by the integration tests."""
from pathlib import Path

import numpy as np
import pytest

import pipeline.cli
from pipeline.run_store import RunStore
from tests.helpers import tiny_overrides
from tests.integration.test_cli import with_sets

NO_TARGET = ["train_target_at_end=false"]


def selection(run_dir: Path) -> list[list[int]]:
    """The ids each committed round acquired, in order."""
    store = RunStore(run_dir)
    ids, _, _ = store.load_labels()
    sizes = [r["acquired"] for r in store.records()]
    return [part.tolist() for part in np.split(ids, np.cumsum(sizes)[:-1])]


@pytest.fixture(scope="session")
def unbroken(ray_cluster, tiny_data_dir, tmp_path_factory):
    """The tiny config's selection, unbroken, with the simulated oracle: the reference of the resume and
    external-oracle tests. Its run directory is a file:// URI, so the pyarrow-filesystem path is used.
    It runs in this process, on the session's Ray."""
    work = tmp_path_factory.mktemp("unbroken")
    uri = (work / "run").as_uri()
    overrides = tiny_overrides(tiny_data_dir, work) + NO_TARGET + [f"run_dir={uri}"]
    assert pipeline.cli.main(["run", *with_sets(overrides)]) == 0
    return selection(uri)

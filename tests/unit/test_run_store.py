import numpy as np
import pytest

from pipeline.config import RunConfig, load_config
from pipeline.errors import RunDirError
from pipeline.run_store import RunStore


def test_labels_are_append_only_and_load_in_acquisition_order(tmp_path):
    store = RunStore.create(tmp_path / "run", RunConfig())
    images = np.arange(3 * 784, dtype=np.uint8).reshape(3, 1, 28, 28)
    store.append_labels(0, np.array([5, 1]), np.array([2, 3]), images[:2])
    store.append_labels(1, np.array([9]), np.array([7]), images[2:])
    ids, labels, loaded = store.load_labels()
    np.testing.assert_array_equal(ids, [5, 1, 9])
    np.testing.assert_array_equal(labels, [2, 3, 7])
    np.testing.assert_array_equal(loaded, images)
    with pytest.raises(RunDirError, match="append-only"):
        store.append_labels(1, np.array([4]), np.array([0]), images[:1])


def test_records_append_and_the_config_is_saved(tmp_path):
    config = load_config(None, ["seed=7"])
    store = RunStore.create(tmp_path / "run", config)
    store.append_record({"round": 0})
    store.append_record({"round": 1})
    assert store.records() == [{"round": 0}, {"round": 1}]
    assert load_config(tmp_path / "run" / "config.yaml") == config
    assert not list((tmp_path / "run").rglob(".*.tmp"))


def test_an_occupied_run_directory_is_refused(tmp_path):
    RunStore.create(tmp_path / "run", RunConfig())
    with pytest.raises(RunDirError, match="already holds files; pass a new --run-dir"):
        RunStore.create(tmp_path / "run", RunConfig())

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.config.run_config import RunConfig, load_config
from pipeline.data.rows import arrow_table, pool_schema
from pipeline.errors import RunDirError
from pipeline.loop.run_store import RunStore


@pytest.fixture(params=["path", "uri"])
def run_dir(request, tmp_path):
    """The same run directory as a local path and as a file:// URI (the pyarrow filesystem route)."""
    return str(tmp_path / "run") if request.param == "path" else (tmp_path / "run").as_uri()


def commit_round(store, r, ids, labels, record=None):
    writer = store.begin_round(r)
    writer.labels(np.array(ids), np.array(labels))
    writer.state({"pool_ids": np.array(ids)}, {"round": r}, b"weights-%d" % r)
    writer.commit(record or {"round": r})


def test_committed_rounds_load_in_acquisition_order(tmp_path, run_dir):
    store = RunStore.create(run_dir, RunConfig())
    commit_round(store, 0, [5, 1], [2, 3])
    commit_round(store, 1, [9], [7])
    ids, labels = store.load_labels()
    np.testing.assert_array_equal(ids, [5, 1, 9])
    np.testing.assert_array_equal(labels, [2, 3, 7])
    # bytes per label: the pixels stay in the pool
    assert pq.read_schema(tmp_path / "run" / "rounds" / "0000" / "labels.parquet").names == ["id", "label"]
    assert store.records() == [{"round": 0}, {"round": 1}]
    assert (tmp_path / "run" / "rounds.jsonl").read_text().splitlines() == ['{"round": 0}', '{"round": 1}']
    saved = store.load_round_state(1)
    assert saved["checkpoint"] == b"weights-1" and saved["rng"] == {"round": 1}
    np.testing.assert_array_equal(saved["strategy"]["pool_ids"], [9])


def test_a_round_is_invisible_until_it_commits_and_a_crash_leaves_nothing(tmp_path, run_dir):
    store = RunStore.create(run_dir, RunConfig())
    commit_round(store, 0, [5, 1], [2, 3])
    writer = store.begin_round(1)
    writer.labels(np.array([9]), np.array([7]))
    writer.state({}, {}, b"weights-1")  # ... and the process dies here, before the record
    assert store.committed_rounds() == [0] and len(store.load_labels()[0]) == 2
    assert RunStore(run_dir).discard_uncommitted() == ["0001"]
    assert sorted(p.name for p in (tmp_path / "run" / "rounds").iterdir()) == ["0000"]


def test_a_round_redone_after_a_crash_replaces_what_the_crash_left(run_dir):
    store = RunStore.create(run_dir, RunConfig())
    store.begin_round(0).labels(np.array([9]), np.array([7]))  # the crashed attempt
    commit_round(store, 0, [5, 1], [2, 3])
    np.testing.assert_array_equal(store.load_labels()[0], [5, 1])


def test_a_damaged_committed_round_is_refused(tmp_path, run_dir):
    store = RunStore.create(run_dir, RunConfig())
    commit_round(store, 0, [5], [2])
    (tmp_path / "run" / "rounds" / "0000" / "state.npz").unlink()
    with pytest.raises(RunDirError, match="round 0 in .* is missing state.npz"):
        RunStore.open(run_dir, RunConfig())


def test_a_committed_round_is_never_written_again(run_dir):
    store = RunStore.create(run_dir, RunConfig())
    commit_round(store, 0, [5], [2])
    with pytest.raises(RunDirError, match="round 0 is already committed"):
        store.begin_round(0)


def test_the_config_is_saved_and_a_different_one_is_refused(tmp_path, run_dir):
    config = load_config(None, ["seed=7"])
    RunStore.create(run_dir, config)
    assert RunStore.open(run_dir, config).saved_config() == config
    with pytest.raises(RunDirError, match="holds a run with update.steps = 200, not 300"):
        RunStore.open(run_dir, load_config(None, ["seed=7", "update.steps=300"]))
    with pytest.raises(RunDirError, match="holds no clactive run"):
        RunStore.open(tmp_path / "elsewhere")


def test_an_occupied_directory_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="already holds files; pass a new --run-dir"):
        RunStore.create(tmp_path / "run", RunConfig())


def test_a_uri_pyarrow_cannot_open_is_refused_in_one_line():
    with pytest.raises(RunDirError, match="cannot open nosuchfs://bucket/run"):
        RunStore("nosuchfs://bucket/run")


def test_a_label_store_written_with_its_images_still_loads(tmp_path):
    """Run directories from before the label store dropped its copy of the pixels resume as they are."""
    store = RunStore.create(tmp_path / "run", RunConfig())
    commit_round(store, 0, [5], [2])
    images = np.zeros((2, 1, 28, 28), np.uint8)
    old = arrow_table(np.array([5, 1]), images, np.array([2, 3]), pool_schema((1, 28, 28)))
    pq.write_table(old, tmp_path / "run" / "rounds" / "0000" / "labels.parquet")
    ids, labels = store.load_labels()
    np.testing.assert_array_equal(ids, [5, 1])
    np.testing.assert_array_equal(labels, [2, 3])

"""The sources end to end: rounds on generated CIFAR-layout and text-CSV data, ImageFolder decoding on Ray Data.
They run in this process, on the session's Ray (`clactive` as a process: tests/integration/test_cli.py)."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from actors.decode import ray_data_map
from pipeline.config.run_config import DataConfig
from pipeline.data import get_source, images_from_arrow, prepare_dataset
from pipeline.data.image_folder import decode_batch
from pipeline.loop.run_store import RunStore
from tests.helpers import tiny_overrides, write_cifar10_like, write_image_folder
from tests.integration.test_cli import in_process, with_sets
from tests.unit.test_text_sources import GENRES, write_text_csv

pytestmark = pytest.mark.ray


def test_full_with_k_center_runs_on_cifar_layout_data(ray_cluster, tmp_path, capsys):
    """`full` retrains the CIFAR target from scratch every round and selects with it, by k-center
    on its embeddings of 3x32x32 images."""
    raw = write_cifar10_like(tmp_path / "raw", per_batch=40, test=60)
    sets = [s for s in tiny_overrides(raw, tmp_path) if not s.startswith(("data.data_dir=", "target.name="))]
    code, printed, _ = in_process(
        capsys,
        "run",
        "--dataset",
        "cifar10",
        "--data-dir",
        raw,
        "--strategy",
        "full",
        "--acquisition",
        "k_center",
        *with_sets(sets + ["target.name=preact_resnet20", "schedule.round_ends=[70]"]),
    )
    assert code == 0
    assert "on cifar10 (200 pool, 60 test)" in printed
    store = RunStore(tmp_path / "run")
    records = store.records()
    assert [r["labelled"] for r in records] == [40, 70]  # the initial set, then a scored round
    assert [r["warm_start"] for r in records] == [False, False]
    assert {r["selection_model"] for r in records} == {"target"}
    assert [r["steps"] for r in records] == [4, 6]  # target.epochs=2 over 40, 70 at batch 32
    assert all(0.0 <= r["selection_acc"] <= 1.0 for r in records)
    ids, _ = store.load_labels()
    assert len(set(ids.tolist())) == 70 and set(ids.tolist()) <= set(range(200))
    assert 0.0 <= store.read_json("targets/0001.json")["target_acc"] <= 1.0  # the target, on the final labels


def test_image_folder_decodes_on_ray_data_as_it_does_in_process(ray_cluster, tmp_path):
    raw = write_image_folder(tmp_path / "raw", per_class=5, val_per_class=2, size=(30, 20))
    (raw / "train" / "dog" / "dog_002.JPEG").write_bytes(b"\xff\xd8\xff not a jpeg")
    options = DataConfig(dataset="imagefolder", data_dir=str(raw), image_size=16, skip_corrupt=True)
    source = get_source("imagefolder", raw, options)
    source.parallel_map = ray_data_map()  # on the session's Ray
    prepared = prepare_dataset(source, tmp_path / "cache", shard_rows=4)
    paths, labels = source.listing("pool")
    direct = decode_batch({"path": np.array([str(raw / p) for p in paths], dtype=object)}, size=16)
    table = pq.read_table(prepared.split_dir("pool"))
    ids = table.column("id").to_numpy()
    assert ids.tolist() == sorted(ids.tolist()) == [i for i in range(15) if i != 7]  # dog_002 skipped
    images = images_from_arrow(table.column("image"), (3, 16, 16))
    np.testing.assert_array_equal(images, direct["image"][ids])
    np.testing.assert_array_equal(table.column("label").to_numpy(), labels[ids])


def test_a_text_csv_with_8_named_classes_runs_with_cluster_margin_stops_early_and_tracks_to_tensorboard(
    ray_cluster, tmp_path, capsys
):
    """Your own text data (a header, string labels) through the text models (fastText selects on
    int32 token rows, the word CNN is the target), Cluster-Margin on fastText's embeddings, a stopping
    criterion that holds after the first scored round of three, TensorBoard read back through its own
    API, and a --resume that says the run is finished. The Amazon Review layout shares this token path
    (pipeline.data.amazon's TokenSource); its own parsing: tests/unit/test_text.py, test_sources.py."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    raw = write_text_csv(tmp_path / "raw", pool=240, test=80)
    sets = [s for s in tiny_overrides(raw, tmp_path) if not s.startswith("target.name=")]
    code, printed, err = in_process(
        capsys,
        "run",
        "--dataset",
        "text_csv",
        "--acquisition",
        "cluster_margin",
        *with_sets(
            sets
            + [
                "data.max_tokens=16",
                "proxy.name=fasttext",
                "target.name=text_cnn",
                "proxy.epochs=40",
                "update.steps=40",
                "tracking=tensorboard",
                "stopping=[{criterion: uncertainty, threshold: 1.0}]",
            ]
        ),
    )
    assert code == 0, err
    run_dir = tmp_path / "run"
    records = RunStore(run_dir).records()
    assert [r["labelled"] for r in records] == [40, 70]  # three rounds planned: stopped after round 1
    assert records[1]["stopped"]["criterion"] == "uncertainty" and records[1]["acquisition"] == "cluster_margin"
    assert "stopped after round 1 by uncertainty" in printed and "the run is finished" in printed
    assert "trained from scratch on 70 labels" in printed  # the target, on the labels the run ended with
    assert json.loads((run_dir / "classes.json").read_text())["class_names"] == sorted(GENRES)
    ids, labels = RunStore(run_dir).load_labels()
    assert len(set(ids.tolist())) == 70
    assert set(labels.tolist()) <= set(range(8))
    assert records[-1]["selection_acc"] >= 0.5  # fastText tells the genres' words apart (chance: 0.125)
    assert "\r" not in err  # not a terminal: plain progress lines, no carriage returns

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("labelled")] == [0, 1]
    assert [e.value for e in events.Scalars("selection_acc")] == pytest.approx([r["selection_acc"] for r in records])
    assert [e.step for e in events.Scalars("target_acc")] == [1]

    code, printed, _ = in_process(capsys, "run", "--resume", run_dir)
    assert code == 0 and "stopped after round 1 by uncertainty" in printed and "the run is finished" in printed
    assert len(RunStore(run_dir).records()) == 2

"""The validation split, and that every choice reads it rather than the test split.

Held out of the pool by every source (a seeded fraction or count, data.validation) or read from a
source's own file (parquet); what decides on accuracy (the plateau stop, Tune) refuses data without
one; a from-scratch fit records its validation accuracy per epoch without its training changing; and
a run whose test labels are shuffled makes every choice the unshuffled run makes (in this process,
real torch training: benchmarks/plain_loop.py's learner and scorers)."""

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from benchmarks.plain_loop import PlainLearner, PlainScorers
from pipeline.config.run_config import DataConfig
from pipeline.data import SOURCES, get_source, prepare_dataset
from pipeline.errors import ConfigError, DataError
from pipeline.labels.labelling import make_oracle
from pipeline.loop.preflight import plan_run
from pipeline.loop.rounds import Rounds
from pipeline.loop.run_store import RunStore
from pipeline.report.summary import late_gain, summarize, table, unconverged
from pipeline.update.evaluation import EpochCurve, Split
from pipeline.update.models import create_model
from pipeline.update.training import make_optimizer, train_steps
from tests.helpers import tiny_config, write_fashion_like
from tests.unit.test_contracts import SHARD_ROWS, WRITERS
from tests.unit.test_sources import pixel_table


@pytest.mark.parametrize("name", SOURCES.names())
def test_every_source_holds_data_validation_out_of_its_pool_by_a_seed_of_its_own(name, tmp_path):
    data_dir, options, sizes = WRITERS[name](tmp_path / "raw")

    def prepared(validation, seed=0):
        config = DataConfig(
            dataset=name, data_dir=str(data_dir), validation=validation, validation_seed=seed, **options
        )
        return prepare_dataset(get_source(name, data_dir, config), tmp_path / "cache", shard_rows=SHARD_ROWS)

    def ids(data, split):
        return set(pq.read_table(data.split_dir(split), columns=["id"]).column("id").to_numpy().tolist())

    whole, held = prepared(0), prepared(0.2)
    count = round(0.2 * sizes["pool"])
    assert held.sizes == {"pool": sizes["pool"] - count, "validation": count, "test": sizes["test"]}
    assert ids(held, "pool") | ids(held, "validation") == ids(whole, "pool")
    assert not ids(held, "pool") & ids(held, "validation")
    assert ids(held, "test") == ids(whole, "test")
    assert not (Path(held.root) / "pool-unsplit").exists()
    assert held.validation_size == count and whole.validation_size == 0
    shards = sorted(Path(held.root).glob("validation/*.parquet"))
    assert all(pq.read_metadata(shard).num_rows <= SHARD_ROWS for shard in shards)
    assert ids(prepared(count), "validation") == ids(held, "validation")  # a count and its fraction agree
    assert ids(prepared(0.2, seed=1), "validation") != ids(held, "validation")


def test_a_parquet_validation_file_is_the_validation_split_and_holding_out_another_is_refused(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, n, seed in (("train", 30, 0), ("validation", 9, 1), ("test", 7, 2)):
        pq.write_table(pixel_table(n, seed=seed)[0], raw / f"{name}.parquet")
    options = dict(dataset="parquet", data_dir=str(raw), feature_column="pixels", label_column="y")
    options["image_shape"] = (3, 4, 5)

    def prepare(**extra):
        config = DataConfig(**options, **extra)
        return prepare_dataset(get_source("parquet", raw, config), tmp_path / "cache", shard_rows=SHARD_ROWS)

    assert prepare().sizes == {"pool": 30, "validation": 9, "test": 7}
    with pytest.raises(DataError, match="holds a validation split of its own and data.validation = 0.2"):
        prepare(validation=0.2)


def test_holding_out_all_of_a_pool_or_none_of_it_is_one_line(tmp_path):
    data_dir = write_fashion_like(tmp_path / "raw", pool=20, test=10)
    for validation in (20, 0.01):
        config = DataConfig(data_dir=str(data_dir), validation=validation)
        with pytest.raises(DataError, match="hold out at least one and leave at least one"):
            prepare_dataset(get_source("fashion_mnist", data_dir, config), tmp_path / "cache", shard_rows=SHARD_ROWS)
    with pytest.raises(ConfigError, match="holds out the whole pool"):
        tiny_config(data_dir, tmp_path, "data.validation=1.0")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("validation")
    data_dir = write_fashion_like(work / "raw")
    config = tiny_config(data_dir, work, "data.validation=60", "schedule.round_ends=[70, 100, 130]")
    data = prepare_dataset(source_for(config), config.data.cache_dir, config.data.shard_rows)
    return config, data, work


def source_for(config):
    return get_source(config.data.dataset, config.data.data_dir, config.data)


def test_a_plateau_stop_on_data_without_a_validation_split_is_refused_in_one_line(tmp_path):
    data_dir = write_fashion_like(tmp_path / "raw")
    config = tiny_config(data_dir, tmp_path, "stopping=[{criterion: accuracy_plateau}]")
    data = prepare_dataset(source_for(config), config.data.cache_dir, config.data.shard_rows)
    with pytest.raises(ConfigError, match="accuracy_plateau decides on validation accuracy.*set data.validation"):
        plan_run(config, data)


def with_shuffled_test_labels(data, where: Path):
    """A copy of the prepared data whose test split has its labels permuted (images and ids kept)."""
    shutil.copytree(data.root, where)
    for shard in sorted((where / "test").glob("*.parquet")):
        table = pq.read_table(shard)
        labels = np.random.default_rng(7).permutation(table.column("label").to_numpy())
        pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels)), shard)
    return replace(data, root=str(where))


def run_to_the_end(config, data):
    """(records, the target fit on the last committed round, the labelled ids) of a whole run in this process."""
    store = RunStore.create(config.run_dir, config)
    plan = plan_run(config, data)
    rounds = Rounds(plan, store, PlainScorers(config, data), PlainLearner(config, data), make_oracle(plan, store))
    records = []
    while rounds.round < plan.num_rounds and not rounds.stopped:
        records.append(rounds.run_round(rounds.round))
    return records, rounds.train_target(rounds.round - 1), store.load_labels()[0]


def test_a_run_whose_test_labels_are_shuffled_makes_every_choice_the_unshuffled_run_makes(tiny):
    config, data, work = tiny
    stops = "stopping=[{criterion: accuracy_plateau, rounds: 1, epsilon: 0.03}, {criterion: stable_predictions}]"
    config = tiny_config(config.data.data_dir, work, "data.validation=60", "schedule.round_ends=[70, 100, 130]", stops)
    shuffled = with_shuffled_test_labels(data, work / "shuffled")
    runs = [run_to_the_end(replace(config, run_dir=str(work / name)), d) for name, d in (("a", data), ("b", shuffled))]
    (records, fit, ids), (records_b, fit_b, ids_b) = runs
    np.testing.assert_array_equal(ids, ids_b)  # the same selections, round by round
    decided = ("selection_val_acc", "stop_set_kappa", "stopped", "val_acc_per_epoch")
    assert [[r.get(k) for k in decided] for r in records] == [[r.get(k) for k in decided] for r in records_b]
    assert (fit["target_val_acc"], fit["val_acc_per_epoch"]) == (fit_b["target_val_acc"], fit_b["val_acc_per_epoch"])
    # and the shuffle was real: the test accuracies it reports differ
    assert [r["selection_acc"] for r in records] + [fit["target_acc"]] != [r["selection_acc"] for r in records_b] + [
        fit_b["target_acc"]
    ]
    assert len(fit["val_acc_per_epoch"]) == config.target.epochs and records[0]["val_acc_per_epoch"]
    assert "val_acc_per_epoch" not in records[1]  # a warm update is no from-scratch fit


def test_the_per_epoch_validation_curve_leaves_the_fit_exactly_as_it_was(tiny):
    _, data, _ = tiny
    pool = pq.read_table(data.split_dir("pool"))
    images = torch.from_numpy(
        np.frombuffer(b"".join(pool.column("image").to_pylist()), np.uint8).reshape(-1, *data.image_shape).copy()
    )
    labels = torch.from_numpy(pool.column("label").to_numpy())
    validation = pq.read_table(data.split_dir("validation"))
    held = Split(
        torch.from_numpy(
            np.frombuffer(b"".join(validation.column("image").to_pylist()), np.uint8)
            .reshape(-1, *data.image_shape)
            .copy()
        ),
        validation.column("label").to_numpy(),
    )

    def fit(with_curve: bool):
        torch.manual_seed(0)
        model = create_model("small_cnn", 1, data.num_classes)
        curve = EpochCurve(model, held, data, torch.device("cpu"), len(labels), 64, steps=3 * 6)
        train_steps(
            model,
            make_optimizer(model, replace(tiny[0].proxy), lr=0.05),
            images,
            labels,
            steps=3 * 6,
            batch_size=64,
            lr=0.05,
            mean=data.mean,
            std=data.std,
            generator=torch.Generator().manual_seed(0),
            device=torch.device("cpu"),
            on_step=curve if with_curve else None,
        )
        return model.state_dict(), curve.accuracies

    (plain, _), (curved, accuracies) = fit(False), fit(True)
    assert len(accuracies) == 3 and all(0 <= a <= 1 for a in accuracies)  # 340 rows, batch 64: 6 steps an epoch
    assert all(torch.equal(plain[k], curved[k]) for k in plain)


def fits(curve):
    return {
        "records": [
            {
                "round": 0,
                "labelled": 10,
                "seconds": {"score": 0, "select": 0, "update": 1, "eval": 0},
                "selection_model": "proxy",
                "warm_start": False,
                "selection_acc": 0.5,
            },
        ],
        "targets": {0: {"target_acc": 0.8, "target_val_acc": curve[-1], "val_acc_per_epoch": curve}},
    }


def test_a_target_fit_still_gaining_over_its_last_fifth_of_epochs_is_named_in_one_warning_line():
    assert late_gain([0.5]) is None and late_gain([0.5, 0.6]) == pytest.approx(0.1)
    assert late_gain([0.1] * 8 + [0.80, 0.81]) == pytest.approx(0.71)  # 10 epochs: the last two
    rising, flat = [0.5, 0.6, 0.7, 0.8, 0.9], [0.80, 0.85, 0.86, 0.860, 0.864]
    summary = summarize({"random": fits(rising), "clactive": fits(flat)}, {"1%": 0}, pool_size=1000)
    assert unconverged(summary) == [{"strategy": "random", "budget": "1%", "epochs": 5, "gain": pytest.approx(0.1)}]
    warnings = [line for line in table(summary).splitlines() if line.startswith("warning")]
    assert warnings == [
        "warning: random's target at 1% gained 10.0 pt of validation accuracy over its last fifth of "
        "target.epochs = 5: it had not converged; find a schedule that does with benchmarks/convergence.py"
    ]
    assert "| random | 1% | 10 | 0.8000 | 0.9000 |" in table(summary)  # test, then validation accuracy

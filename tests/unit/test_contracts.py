"""Contract tests over every registry: acquisitions, replay memories, update strategies, data sources.

Each test is parametrized by the registry itself, so a newly registered entry is tested by
registering it. Where a contract needs per-entry knowledge the code does not expose (which
acquisitions are seeded, which memories are bounded, how to write a source's files), it is a
table below; an entry missing from a table fails with a message naming it. No Ray.
"""

import io
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config.run_config import DataConfig, load_config
from pipeline.data import SOURCES, get_source, prepare_dataset
from pipeline.data.rows import FEATURE_TYPES
from pipeline.errors import PoolExhaustedError
from pipeline.selection.acquisition import (
    ACQUISITIONS,
    Collector,
    PerExampleAcquisition,
    SetAcquisition,
    ShortlistAcquisition,
    get_acquisition,
)
from pipeline.selection.k_center import min_sq_distances
from pipeline.update.memory import MEMORIES, create_memory
from pipeline.update.strategies import STRATEGIES, create_strategy, steps_for_epochs
from tests.helpers import (
    write_amazon_like,
    write_cifar10_like,
    write_cifar100_like,
    write_fashion_like,
    write_image_folder,
)
from tests.unit.test_sources import pixel_table
from tests.unit.test_text_sources import write_text_csv


def through_npz(state: dict) -> dict:
    """A state dict as a resumed run reads it back: saved with np.savez, as RunStore does."""
    buffer = io.BytesIO()
    np.savez(buffer, **state)
    buffer.seek(0)
    with np.load(buffer) as saved:
        return {key: saved[key] for key in saved.files}


# --- acquisitions ---------------------------------------------------------------------------

SEEDED_ACQUISITIONS = {"random"}  # per-example scores that change with the seed; every other one must not


def of_kind(kind) -> list[str]:
    return [name for name in ACQUISITIONS.names() if isinstance(get_acquisition(name), kind)]


def softmax_rows(n: int, k: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(probs (n, k) float32, as the model returns them; pool ids (n,), unordered and sparse)."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, 0.5), size=n).astype(np.float32)
    probs[:3] = np.eye(k, dtype=np.float32)[:3]  # certain rows
    probs[3] = 1.0 / k  # a uniform row
    pool_ids = rng.choice(10 * n, size=n, replace=False).astype(np.int64)
    return probs, pool_ids


@pytest.mark.parametrize("name", ACQUISITIONS.names())
def test_every_acquisition_follows_exactly_one_contract(name):
    acquisition = get_acquisition(name)  # instantiating proves no abstract method is left
    assert isinstance(acquisition, PerExampleAcquisition) != isinstance(acquisition, SetAcquisition), (
        f"acquisition '{name}' must subclass exactly one of PerExampleAcquisition and SetAcquisition"
    )
    assert acquisition.name == name
    if isinstance(acquisition, ShortlistAcquisition):
        assert acquisition.needs == "probs+embeddings" and acquisition.shortlist(5) >= 5
    elif isinstance(acquisition, PerExampleAcquisition):
        assert acquisition.needs in ("probs", None)
    else:
        assert acquisition.needs == "embeddings"


@pytest.mark.parametrize("name", ACQUISITIONS.names())
def test_every_acquisition_gives_the_scorer_a_picklable_collector_and_annotators_one_score_per_example(name):
    """What actors/ asks of any acquisition, whatever its kind (pipeline.selection.acquisition)."""
    acquisition = get_acquisition(name)
    collector = acquisition.collector(5, seed=0)
    assert isinstance(collector, Collector) and collector.seen == 0
    assert type(pickle.loads(pickle.dumps(collector))) is type(collector)  # it travels back from a Ray actor
    probs, pool_ids = softmax_rows(30)
    hints = acquisition.hint_scores(probs, pool_ids, seed=3)
    assert hints.dtype == np.float64 and hints.shape == (30,)
    assert np.isfinite(hints).all() or np.isnan(hints).all()  # NaN: the acquisition scores sets


@pytest.mark.parametrize("name", of_kind(ShortlistAcquisition))
def test_a_shortlist_selection_returns_k_distinct_positions_of_the_shortlist(name):
    rng = np.random.default_rng(4)
    acquisition = get_acquisition(name)
    probs, pool_ids = softmax_rows(60)
    scores = acquisition.score(probs, pool_ids, seed=0)
    embeddings = rng.normal(size=(60, 8)).astype(np.float32)
    for k in (0, 1, 6):
        picks = np.asarray(acquisition.select(scores, embeddings, k, seed=0))
        assert picks.shape == (k,) and len(set(picks.tolist())) == k and ((picks >= 0) & (picks < 60)).all()
    with pytest.raises(PoolExhaustedError):
        acquisition.select(scores, embeddings, 61, seed=0)


@pytest.mark.parametrize("name", of_kind(PerExampleAcquisition))
def test_per_example_scores_are_finite_float64_one_per_row(name):
    probs, pool_ids = softmax_rows(200)
    scores = get_acquisition(name).score(probs, pool_ids, seed=3)
    assert scores.dtype == np.float64 and scores.shape == (200,)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("name", of_kind(PerExampleAcquisition))
def test_per_example_scores_do_not_depend_on_order_or_batching(name):
    """What lets the pool be ranked in a stream: a row's score is the same in any batch."""
    acquisition = get_acquisition(name)
    probs, pool_ids = softmax_rows(200)
    whole = acquisition.score(probs, pool_ids, seed=3)
    order = np.random.default_rng(1).permutation(200)
    first, second = order[:77], order[77:]
    parts = np.concatenate(
        [
            acquisition.score(probs[second], pool_ids[second], seed=3),
            acquisition.score(probs[first], pool_ids[first], seed=3),
        ]
    )
    np.testing.assert_array_equal(parts, whole[np.concatenate([second, first])])
    one_by_one = np.concatenate([acquisition.score(probs[i : i + 1], pool_ids[i : i + 1], seed=3) for i in range(5)])
    np.testing.assert_array_equal(one_by_one, whole[:5])


@pytest.mark.parametrize("name", of_kind(PerExampleAcquisition))
def test_per_example_scores_depend_on_the_seed_only_when_random(name):
    acquisition = get_acquisition(name)
    probs, pool_ids = softmax_rows(200)
    same = np.array_equal(acquisition.score(probs, pool_ids, seed=3), acquisition.score(probs, pool_ids, seed=4))
    if name in SEEDED_ACQUISITIONS:
        assert not same, f"'{name}' is listed in SEEDED_ACQUISITIONS but ignores the seed"
    else:
        assert same, f"'{name}' changes with the seed: add it to SEEDED_ACQUISITIONS if that is intended"


@pytest.mark.parametrize("name", [n for n in of_kind(PerExampleAcquisition) if get_acquisition(n).needs is None])
def test_per_example_scores_without_model_output_accept_none(name):
    """The scorer skips the forward pass for these and hands them probs=None."""
    acquisition = get_acquisition(name)
    probs, pool_ids = softmax_rows(50)
    np.testing.assert_array_equal(acquisition.score(None, pool_ids, seed=3), acquisition.score(probs, pool_ids, seed=3))


@pytest.mark.parametrize("name", of_kind(SetAcquisition))
@pytest.mark.parametrize("labelled", [0, 6])
def test_set_based_selection_returns_k_distinct_positions_in_range(name, labelled):
    rng = np.random.default_rng(2)
    candidates = rng.normal(size=(40, 8)).astype(np.float32)
    labelled_emb = rng.normal(size=(labelled, 8)).astype(np.float32)
    acquisition = get_acquisition(name)
    for k in (0, 1, 10, 40):
        picks = np.asarray(acquisition.select(candidates, min_sq_distances(candidates, labelled_emb), k))
        assert picks.shape == (k,) and np.issubdtype(picks.dtype, np.integer)
        assert len(set(picks.tolist())) == k and ((picks >= 0) & (picks < 40)).all()
    with pytest.raises(PoolExhaustedError, match="40 unlabelled available / 41 requested"):
        acquisition.select(candidates, min_sq_distances(candidates, labelled_emb), 41)


# --- replay memories ------------------------------------------------------------------------

BOUNDED_MEMORIES = {"reservoir"}  # hold at most `capacity` labels; every other memory keeps all it is given


def fill(memory, chunks=(30, 45, 25), seed=0):
    rng, start = np.random.default_rng(seed), 0
    for n in chunks:
        memory.add(np.arange(start, start + n), np.arange(start, start + n) % 7, rng)
        start += n
    return start


@pytest.mark.parametrize("name", MEMORIES.names())
def test_every_memory_respects_its_capacity(name):
    memory = create_memory(name, capacity=40)
    added = fill(memory)
    expected = min(added, 40) if name in BOUNDED_MEMORIES else added
    assert len(memory) == expected, (
        f"memory '{name}' holds {len(memory)} of {added} labels with capacity 40; "
        "list it in BOUNDED_MEMORIES if it keeps at most its capacity"
    )
    for size in (0, 10, len(memory), len(memory) + 50):
        assert len(memory.sample(size, np.random.default_rng(1))) == min(size, len(memory))


@pytest.mark.parametrize("name", MEMORIES.names())
@pytest.mark.parametrize("with_replacement", [False, True])
def test_every_memory_samples_ids_that_were_added(name, with_replacement):
    memory = create_memory(name, capacity=40, with_replacement=with_replacement)
    added = fill(memory)
    ids = memory.sample(30, np.random.default_rng(1))
    assert ids.dtype == np.int64 and set(ids.tolist()) <= set(range(added))
    assert set(ids.tolist()) <= set(memory.pool_ids.tolist())
    if not with_replacement:
        assert len(set(ids.tolist())) == len(ids)


@pytest.mark.parametrize("name", MEMORIES.names())
def test_every_memory_state_round_trip_gives_the_same_future_samples(name):
    memory = create_memory(name, capacity=40)
    fill(memory)
    copy = create_memory(name, capacity=40)
    copy.load_state_dict(through_npz(memory.state_dict()))
    for twin in (memory, copy):  # the same labels arrive after the resume, with the same rng
        fill(twin, chunks=(20, 20), seed=9)
    assert len(copy) == len(memory)
    np.testing.assert_array_equal(
        copy.sample(25, np.random.default_rng(5)), memory.sample(25, np.random.default_rng(5))
    )


# --- update strategies ----------------------------------------------------------------------

ROUND_SIZES = (100, 50, 30, 80, 50)  # round 0 is the initial set; uneven rounds, so labelled counts vary
SETS = ["proxy.epochs=3", "proxy.batch_size=10", "target.epochs=2", "target.batch_size=20", "update.steps=17"]


def new_strategy(name):
    config = load_config(None, [f"strategy={name}", *SETS])
    return config, create_strategy(config, max_round_size=max(ROUND_SIZES[1:]))


def drive(strategy, sizes=ROUND_SIZES, seed=0, first_round=0, labelled=None):
    """(new ids, all labelled ids, plan) per round."""
    rng = np.random.default_rng(seed)
    labelled = np.empty(0, dtype=np.int64) if labelled is None else labelled
    out = []
    for r, size in enumerate(sizes, start=first_round):
        new = np.arange(len(labelled), len(labelled) + size, dtype=np.int64)
        labelled = np.concatenate([labelled, new])
        out.append((new, labelled, strategy.plan(r, new, new % 10, labelled, rng)))
    return out


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_round_zero_trains_the_selection_model_from_scratch_on_every_label(name):
    config, strategy = new_strategy(name)
    _, labelled, plan = drive(strategy, sizes=ROUND_SIZES[:1])[0]
    model = getattr(config, strategy.selection_role)
    assert plan.role == strategy.selection_role and not plan.warm_start
    np.testing.assert_array_equal(plan.train_ids, labelled)
    assert plan.steps == steps_for_epochs(len(labelled), model.epochs, model.batch_size)
    assert (plan.batch_size, plan.lr) == (model.batch_size, model.lr)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_later_rounds_are_warm_with_constant_steps_or_from_scratch_with_growing_steps(name):
    config, strategy = new_strategy(name)
    later = drive(strategy)[1:]
    warm = {plan.warm_start for _, _, plan in later}
    assert len(warm) == 1, f"strategy '{name}' mixes warm and from-scratch updates after round 0"
    if warm == {True}:  # the proxy continues: the same step budget whatever the labelled count
        for new, labelled, plan in later:
            assert plan.role == "proxy" and plan.steps == config.update.steps
            assert (plan.batch_size, plan.lr) == (config.proxy.batch_size, config.update.lr)
            assert set(new.tolist()) <= set(plan.train_ids.tolist()) <= set(labelled.tolist())
    else:  # retrained on every label: the cost grows with them
        for _, labelled, plan in later:
            model = getattr(config, plan.role)
            np.testing.assert_array_equal(plan.train_ids, labelled)
            assert plan.steps == steps_for_epochs(len(labelled), model.epochs, model.batch_size)
        steps = [plan.steps for _, _, plan in later]
        assert steps == sorted(steps) and steps[-1] > steps[0]


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_strategy_state_round_trip_gives_the_same_later_plans(name):
    _, strategy = new_strategy(name)
    done = drive(strategy, sizes=ROUND_SIZES[:3])
    _, resumed = new_strategy(name)
    resumed.load_state_dict(through_npz(strategy.state_dict()))
    labelled = done[-1][1]
    later = [
        drive(twin, sizes=ROUND_SIZES[3:], seed=7, first_round=3, labelled=labelled) for twin in (strategy, resumed)
    ]  # the same labels arrive after the resume, with the same rng
    for (_, _, a), (_, _, b) in zip(*later):
        np.testing.assert_array_equal(a.train_ids, b.train_ids)
        assert (a.role, a.warm_start, a.steps, a.batch_size, a.lr) == (
            b.role,
            b.warm_start,
            b.steps,
            b.batch_size,
            b.lr,
        )


# --- data sources ---------------------------------------------------------------------------
# A writer puts a tiny dataset in the source's own on-disk format under `raw` and returns
# (the data_dir to give the source, its data options, {split: rows written}).


def fashion(raw):
    return write_fashion_like(raw, pool=40, test=20), {}, {"pool": 40, "test": 20}


def cifar10(raw):
    return write_cifar10_like(raw, per_batch=8, test=10), {}, {"pool": 40, "test": 10}


def cifar100(raw):
    return write_cifar100_like(raw, train=30, test=20), {}, {"pool": 30, "test": 20}


def image_folder(raw):
    write_image_folder(raw, per_class=3, val_per_class=2, size=(12, 10), suffix=".png")
    return raw, {"image_size": 8}, {"pool": 9, "test": 6}


def parquet(raw):
    raw.mkdir(parents=True)
    pq.write_table(pixel_table(30, ids=np.arange(529, 499, -1))[0], raw / "train.parquet")
    pq.write_table(pixel_table(12, seed=1)[0], raw / "test.parquet")
    return (
        raw,
        {"feature_column": "pixels", "label_column": "y", "id_column": "key", "image_shape": (3, 4, 5)},
        {"pool": 30, "test": 12},
    )


def amazon(num_classes):
    def write(raw):
        return (
            write_amazon_like(raw, pool=30, test=10, num_classes=num_classes),
            {"max_tokens": 16},
            {"pool": 30, "test": 10},
        )

    return write


def text_csv(raw):
    return write_text_csv(raw, pool=30, test=10), {"max_tokens": 16}, {"pool": 30, "test": 10}


WRITERS = {
    "fashion_mnist": fashion,
    "cifar10": cifar10,
    "cifar100": cifar100,
    "imagefolder": image_folder,
    "parquet": parquet,
    "amazon_review_polarity": amazon(2),
    "amazon_review_full": amazon(5),
    "text_csv": text_csv,
}
SHARD_ROWS = 16


def test_every_writer_belongs_to_a_registered_source():
    assert set(WRITERS) <= set(SOURCES.names())


@pytest.mark.parametrize("name", SOURCES.names())
def test_every_source_prepares_a_tiny_dataset_into_parquet_shards(name, tmp_path):
    if name not in WRITERS:
        pytest.fail(
            f"source '{name}' has no writer: add one to WRITERS in tests/unit/test_contracts.py that writes "
            "a tiny dataset in its on-disk format"
        )
    data_dir, options, sizes = WRITERS[name](tmp_path / "raw")
    source = get_source(name, data_dir, DataConfig(dataset=name, data_dir=str(data_dir), **options))
    prepared = prepare_dataset(source, tmp_path / "cache", shard_rows=SHARD_ROWS)
    assert prepared.dataset == name and prepared.sizes == sizes
    assert prepared.feature_dtype in FEATURE_TYPES and prepared.num_classes >= 2
    for split, count in sizes.items():
        shards = sorted((tmp_path / "cache").glob(f"{name}-*/{split}/*.parquet"))
        assert len(shards) == -(-count // SHARD_ROWS)
        assert all(pq.read_metadata(shard).num_rows <= SHARD_ROWS for shard in shards)
        table = pq.read_table(prepared.split_dir(split))
        assert table.schema.names == ["id", "image", "label"] and table.num_rows == count
        ids, labels = table.column("id").to_numpy(), table.column("label").to_numpy()
        assert len(np.unique(ids)) == count and ids.min() >= 0
        assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < prepared.num_classes
        width = int(np.prod(prepared.image_shape)) * FEATURE_TYPES[prepared.feature_dtype].byte_width
        assert table.schema.field("image").type == pa.binary(width)  # pool format 2: fixed_size_binary

"""The collector interface every scoring pass goes through (pipeline.selection.acquisition): streamed
and merged equals all at once for every registered acquisition, the memory bounds, and a kind
registered here scored by actors/scorer.py's own code in this process. No Ray started."""

import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from threadpoolctl import threadpool_limits

import pipeline.selection.acquisition
from pipeline.errors import ConfigError
from pipeline.selection.acquisition import (
    ACQUISITIONS,
    Acquisition,
    Collector,
    LabelledDistances,
    ModelOutput,
    PerExampleAcquisition,
    Picked,
    get_acquisition,
)
from pipeline.selection.k_center import min_sq_distances

N, CLASSES, WIDTH = 300, 7, 8


def model_outputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """pool ids (N,), sparse and shuffled; probs (N, CLASSES) and embeddings (N, WIDTH) float32 as the
    model returns them, aligned with the ids; labelled embeddings (40, WIDTH)."""
    rng = np.random.default_rng(seed)
    pool_ids = rng.choice(10 * N, size=N, replace=False).astype(np.int64)
    probs = rng.dirichlet(np.full(CLASSES, 0.5), size=N).astype(np.float32)
    embeddings = rng.normal(size=(N, WIDTH)).astype(np.float32)
    return pool_ids, probs, embeddings, rng.normal(size=(40, WIDTH)).astype(np.float32)


def output_of(needs: str | None, probs: np.ndarray, embeddings: np.ndarray, rows) -> ModelOutput:
    """What a scorer hands `push` for these rows, by the acquisition's `needs`."""
    return {
        None: None,
        "probs": probs[rows],
        "embeddings": embeddings[rows],
        "probs+embeddings": (probs[rows], embeddings[rows]),
    }[needs]


@pytest.mark.parametrize("name", ACQUISITIONS.names())
@pytest.mark.parametrize("k", [1, 12])
def test_every_acquisition_streamed_in_chunks_by_scorers_and_merged_selects_what_it_selects_all_at_once(name, k):
    """baal's check, for the interface the scorers use: three scorers push their shards in uneven
    batches, their collectors travel through pickle (as back from a Ray actor) and are merged into
    a fresh one; it selects the same ids, in the same order, with the same mean score, as one
    collector given the whole pool in one push."""
    acquisition = get_acquisition(name)
    pool_ids, probs, embeddings, labelled = model_outputs()
    distances: LabelledDistances = lambda emb: min_sq_distances(emb, labelled)  # noqa: E731

    whole = acquisition.collector(k, seed=5)
    whole.push(pool_ids, output_of(acquisition.needs, probs, embeddings, slice(None)))
    merged = acquisition.collector(k, seed=5)
    for shard in np.array_split(np.arange(N), [40, 41]):  # a big shard, a one-row shard, the rest
        part = acquisition.collector(k, seed=5)
        for rows in np.array_split(shard, [3, 50]) if len(shard) > 50 else [shard]:
            if len(rows):
                part.push(pool_ids[rows], output_of(acquisition.needs, probs, embeddings, rows))
        merged.merge(pickle.loads(pickle.dumps(part)))

    with threadpool_limits(1):  # cluster_margin's k-means on one thread: fast and steady
        want, got = whole.select(distances), merged.select(distances)
    assert merged.seen == whole.seen == N
    assert got.pool_ids.dtype == np.int64 and len(set(got.pool_ids.tolist())) == k
    np.testing.assert_array_equal(got.pool_ids, want.pool_ids)
    assert got.score_mean == want.score_mean


@pytest.mark.parametrize("name", ACQUISITIONS.names())
def test_a_streamed_collector_holds_its_top_list_only_and_never_asks_for_the_labelled_set(name):
    """Memory: a per-example collector keeps k rows, a shortlist shortlist(k), whatever it was pushed;
    only set-based selection holds every candidate and measures it against the labelled rows."""
    acquisition = get_acquisition(name)
    pool_ids, probs, embeddings, labelled = model_outputs(1)
    asked = []

    def distances(emb: np.ndarray) -> np.ndarray:
        asked.append(len(emb))
        return min_sq_distances(emb, labelled)

    collector = acquisition.collector(5, seed=0)
    for rows in np.array_split(np.arange(N), 6):
        collector.push(pool_ids[rows], output_of(acquisition.needs, probs, embeddings, rows))
    with threadpool_limits(1):
        collector.select(distances)
    if asked:  # set-based: every candidate measured once
        assert asked == [N] and acquisition.needs == "embeddings"
    else:  # streamed: its top list, at most cluster_margin's shortlist of 10 k
        tops = collector.tops.values() if hasattr(collector, "tops") else [collector.top]
        assert sum(len(top.kept()[0]) for top in tops) == max(top.k for top in tops) <= 10 * 5


def test_set_based_selection_refuses_more_candidates_than_its_bound_before_measuring_them(monkeypatch):
    """The coordinator's check: a growing pool may outgrow what preflight allowed."""
    monkeypatch.setattr(pipeline.selection.acquisition, "MAX_SET_CANDIDATES", 100)
    collector = get_acquisition("k_center").collector(5, seed=0)
    collector.push(np.arange(60), np.zeros((60, 4), np.float32))
    collector.push(np.arange(60, 101), np.zeros((41, 4), np.float32))

    def never(emb):
        raise AssertionError("measured the candidates against the labelled set before the bound")

    with pytest.raises(ConfigError, match="at most 100 candidates a round, and this round has 101: set scoring"):
        collector.select(never)


def test_label_hints_are_the_per_example_score_and_nan_for_a_set():
    _, probs, _, _ = model_outputs()
    ids = np.arange(N)
    np.testing.assert_array_equal(
        get_acquisition("entropy").hint_scores(probs, ids, seed=1), get_acquisition("entropy").score(probs, ids, 1)
    )
    assert np.isnan(get_acquisition("k_center").hint_scores(probs, ids, seed=1)).all()


class SmallestIds(Acquisition):
    """A kind none of the three contracts describes, with its own collector: the k smallest pool ids
    among the candidates. It asks for embeddings and checks it gets one row per id, so the test sees
    that the scorer computed what `needs` said."""

    needs = "embeddings"

    def collector(self, k: int, seed: int) -> Collector:
        return SmallestIdsCollector(k)

    def hint_scores(self, probs, pool_ids, seed):
        return -pool_ids.astype(np.float64)


class SmallestIdsCollector(Collector):
    def __init__(self, k: int):
        self.k, self.ids, self.pushes = k, np.empty(0, np.int64), 0

    @property
    def seen(self) -> int:
        return self.pushes

    def push(self, pool_ids, out):
        assert isinstance(out, np.ndarray) and out.shape[0] == len(pool_ids) and out.ndim == 2
        self.pushes += len(pool_ids)
        self.ids = np.sort(np.concatenate([self.ids, pool_ids]))[: self.k]

    def merge(self, other):
        self.pushes += other.pushes
        self.ids = np.sort(np.concatenate([self.ids, other.ids]))[: self.k]

    def select(self, labelled_distances=None):
        return Picked(self.ids, None)


class LargestIds(PerExampleAcquisition):
    """A new per-example acquisition: one `_score`, the rest is its contract's."""

    def _score(self, probs, pool_ids, seed):
        assert probs.shape == (len(pool_ids), 10)  # the scorer computed the probs `needs` names
        return pool_ids.astype(np.float64)


class FileShard:
    """What Scorer.score reads of a Ray Data dataset, in one process: Arrow batches of the files' rows."""

    def __init__(self, files: list[str]):
        self.files = files

    def iter_batches(self, batch_size: int, batch_format: str):
        table = pa.concat_tables([pq.read_table(f, columns=["id", "image"]) for f in self.files])
        for batch in table.to_batches(max_chunksize=batch_size):
            yield pa.Table.from_batches([batch])


@pytest.fixture
def registry(monkeypatch):
    """ACQUISITIONS, restored after the test: what the test registers goes with it."""
    monkeypatch.setattr(ACQUISITIONS, "_entries", dict(ACQUISITIONS._entries))
    monkeypatch.setattr(ACQUISITIONS, "_tags", dict(ACQUISITIONS._tags))
    return ACQUISITIONS


@pytest.mark.parametrize("kind, smallest_first", [(SmallestIds, True), (LargestIds, False)])
def test_an_acquisition_registered_here_is_scored_by_the_scorers_own_code(registry, tmp_path, kind, smallest_first):
    """actors/scorer.py never asks which kind it holds: a new acquisition, registered by name, goes
    through Scorer.score (here in this process, over the pool's files in two shards) and ScorerPool's
    merge and select unchanged, and picks the smallest (largest) unlabelled ids."""
    from actors.faults import Hook
    from actors.scorer import Scorer, ScorerPool
    from actors.scoring_model import ScoringModel
    from pipeline.data import get_source, prepare_dataset
    from pipeline.data.pool import split_files
    from pipeline.update.training import checkpoint_bytes
    from tests.helpers import tiny_config, write_fashion_like

    registry.register("by_id")(kind)
    data_dir = write_fashion_like(tmp_path / "raw")
    config = tiny_config(data_dir, tmp_path, "acquisition=by_id")
    data = prepare_dataset(get_source("fashion_mnist", data_dir), config.data.cache_dir, config.data.shard_rows)
    scorer = Scorer.__new__(Scorer)  # the actor's state, without Ray
    scorer.data, scorer.model = data, ScoringModel("small_cnn", data, share=1, gpu=False)
    files, labelled = split_files(data.split_dir("pool")), np.arange(0, data.pool_size, 3)
    parts = [
        scorer.score(FileShard(share), checkpoint_bytes(scorer.model.model), labelled, None, kind(), 7, 0, 37, Hook())
        for share in (files[::2], files[1::2])
    ]
    pool = ScorerPool.__new__(ScorerPool)
    pool.config = config
    collector, picked = pool._choose([pickle.loads(pickle.dumps(p["collector"])) for p in parts], 7, 0, never_asked)
    unlabelled = np.setdiff1d(np.arange(data.pool_size), labelled)
    assert collector.seen == len(unlabelled)
    np.testing.assert_array_equal(picked.pool_ids, unlabelled[:7] if smallest_first else unlabelled[::-1][:7])


def never_asked(candidate_emb: np.ndarray) -> np.ndarray:
    raise AssertionError("a collector that does not select against the labelled set asked for it")

"""scoring.candidates_from neighbours: the pool's index (exact, or IVF-PQ in bounded memory) built from
scorers' shards, its neighbours against brute force, the candidates it gives a round, and a run with it."""

import pickle
from dataclasses import replace

import numpy as np
import pytest

import pipeline.selection.neighbours as neighbours
from benchmarks.plain_loop import plain_run
from pipeline.config.run_config import load_config
from pipeline.data import get_source, prepare_dataset
from pipeline.errors import ConfigError
from pipeline.selection.neighbours import EmbeddingPass, neighbour_candidates, train_index
from tests.helpers import tiny_config, write_fashion_like


def clustered(n: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pool ids, embeddings): n points around 20 centres, ids shuffled and sparse."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim)) * 4
    points = centres[rng.integers(0, 20, n)] + rng.normal(size=(n, dim))
    return rng.permutation(5 * n)[:n].astype(np.int64), points.astype(np.float32)


def built(ids: np.ndarray, emb: np.ndarray, shards: int = 3):
    """The index as the scorers build it: each shard into a copy of the trained index, copies merged
    after a trip through pickle (they come back from Ray actors)."""
    sample = emb[np.random.default_rng(1).permutation(len(ids))[: neighbours.TRAIN_SAMPLE]]
    trained = train_index(sample, len(ids), seed=0)
    merged = EmbeddingPass(trained).collector(0, 0)
    for rows in np.array_split(np.arange(len(ids)), shards):
        part = EmbeddingPass(trained).collector(0, 0)
        part.push(ids[rows], emb[rows])
        merged.merge(pickle.loads(pickle.dumps(part)))
    return merged.index


def exact_near(ids: np.ndarray, emb: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    rows = np.array([np.flatnonzero(ids == q)[0] for q in queries])
    dist = ((emb[rows][:, None, :] - emb[None, :, :]) ** 2).sum(-1)
    return np.unique(ids[np.argsort(dist, axis=1, kind="stable")[:, : k + 1]])


def test_a_small_pools_index_is_exact_and_its_neighbours_are_brute_forces():
    ids, emb = clustered(600)
    index = built(ids, emb)
    assert index.size == 600
    queries = ids[:25]
    np.testing.assert_array_equal(index.near(queries, 7), exact_near(ids, emb, queries, 7))


def test_a_large_pools_index_is_ivf_pq_in_bounded_memory_and_finds_most_true_neighbours(monkeypatch):
    monkeypatch.setattr(neighbours, "FLAT_MAX", 1000)
    monkeypatch.setattr(neighbours, "TRAIN_SAMPLE", 2000)
    ids, emb = clustered(6000, dim=32)
    index = built(ids, emb)
    assert type(index.index).__name__ == "IndexIVFPQ" and index.size == 6000
    per_row = len(pickle.dumps(index)) / 6000
    assert per_row < 0.5 * 32 * 4  # its codes, not the embeddings: a sixth of them here
    queries = ids[:40]
    found, truth = index.near(queries, 10), exact_near(ids, emb, queries, 10)
    assert len(np.intersect1d(found, truth)) >= 0.6 * len(truth)


def test_neighbours_found_in_parts_are_those_found_at_once():
    """A run queries each round's new labels only; the union must not depend on how they were split."""
    ids, emb = clustered(500)
    index = built(ids, emb)
    parts = np.union1d(index.near(ids[:10], 5), index.near(ids[10:30], 5))
    np.testing.assert_array_equal(parts, index.near(ids[:30], 5))


def test_candidates_are_a_draw_of_the_unlabelled_neighbours_or_all_of_them_topped_up():
    unlabelled = np.arange(100, 200)
    near = np.array([5, 101, 102, 150, 151, 152, 199])  # 5 is labelled: never a candidate
    many, found = neighbour_candidates(near, unlabelled, 4, seed=3)
    assert found == 4 and len(many) == 4 and set(many) <= {101, 102, 150, 151, 152, 199}
    assert list(many) == sorted(many)
    few, found = neighbour_candidates(near, unlabelled, 10, seed=3)
    assert found == 6 and len(few) == 10 and {101, 102, 150, 151, 152, 199} <= set(few) <= set(unlabelled)
    again, _ = neighbour_candidates(near, unlabelled, 10, seed=3)
    np.testing.assert_array_equal(few, again)


def test_a_run_scores_the_labelled_sets_neighbours_and_builds_the_index_once(tmp_path):
    config = replace(
        tiny_config(
            write_fashion_like(tmp_path / "raw"),
            tmp_path,
            "scoring.candidates_from=neighbours",
            "scoring.candidates=50",
            "scoring.neighbours=3",
        ),
        strategy="clactive",
        train_target_at_end=False,
    )
    data = prepare_dataset(
        get_source("fashion_mnist", config.data.data_dir), config.data.cache_dir, config.data.shard_rows
    )
    records = plain_run(config, data)
    assert [r["candidates"] for r in records[1:]] == [50, 50]
    built_s = [r["seconds"]["neighbours_build"] for r in records[1:]]
    assert built_s[0] > 0 and built_s[1] == 0  # the round-0 model's index, kept for the run
    assert all(r["seconds"]["neighbours_query"] >= 0 for r in records[1:])


@pytest.mark.parametrize(
    "sets, message",
    [
        (["scoring.candidates_from=knn"], "unknown scoring.candidates_from 'knn': choose one of random, neighbours"),
        (["scoring.neighbours=0"], "scoring.neighbours = 0 must be positive"),
        (
            ["scoring.candidates_from=neighbours", "pool.growth=class_incremental"],
            "indexes the pool once, and pool.growth class_incremental adds rows",
        ),
    ],
)
def test_bad_neighbour_settings_are_one_line(sets, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, sets)

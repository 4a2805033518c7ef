"""The acquisitions' scores, the streamed top list, k-center and the candidate draw, on arrays. The
interface a scoring pass uses them through: tests/unit/test_collectors.py."""

import numpy as np
import pytest

import pipeline.selection.acquisition
from pipeline.errors import ConfigError, PoolExhaustedError
from pipeline.selection.acquisition import ACQUISITIONS, get_acquisition
from pipeline.selection.candidates import draw_candidates
from pipeline.selection.k_center import k_center_from, min_sq_distances
from pipeline.selection.top_k import StreamingTopK
from pipeline.selection.uncertainty import hashed_uniform
from tests.helpers import k_center_greedy, top_k

PROBS = np.array(
    [
        [0.90, 0.05, 0.05],  # confident
        [0.40, 0.35, 0.25],  # unsure, small margin
        [0.50, 0.10, 0.40],
        [1 / 3, 1 / 3, 1 / 3],  # maximally unsure
    ]
)
IDS = np.array([10, 11, 12, 13])


def test_least_confidence_is_one_minus_top_probability():
    scores = get_acquisition("least_confidence").score(PROBS, IDS, seed=0)
    np.testing.assert_allclose(scores, [0.10, 0.60, 0.50, 2 / 3])


def test_entropy_matches_hand_computed_values():
    scores = get_acquisition("entropy").score(PROBS, IDS, seed=0)
    expected = [
        -(0.9 * np.log(0.9) + 2 * 0.05 * np.log(0.05)),
        -(0.4 * np.log(0.4) + 0.35 * np.log(0.35) + 0.25 * np.log(0.25)),
        -(0.5 * np.log(0.5) + 0.1 * np.log(0.1) + 0.4 * np.log(0.4)),
        np.log(3),
    ]
    np.testing.assert_allclose(scores, expected)


def test_margin_scores_small_gaps_highest():
    scores = get_acquisition("margin").score(PROBS, IDS, seed=0)
    np.testing.assert_allclose(scores, [-0.85, -0.05, -0.10, 0.0], atol=1e-12)


def test_random_depends_only_on_id_and_seed():
    acquisition = get_acquisition("random")
    whole = acquisition.score(PROBS, IDS, seed=3)
    parts = np.concatenate(
        [acquisition.score(PROBS[2:], IDS[2:], seed=3), acquisition.score(PROBS[:2], IDS[:2], seed=3)]
    )
    np.testing.assert_array_equal(whole, parts[[2, 3, 0, 1]])
    assert not np.array_equal(whole, acquisition.score(PROBS, IDS, seed=4))
    assert ((whole >= 0) & (whole < 1)).all()


def test_hashed_uniform_is_roughly_uniform():
    values = hashed_uniform(np.arange(100_000), seed=1)
    counts, _ = np.histogram(values, bins=10, range=(0, 1))
    assert counts.min() > 9_500 and counts.max() < 10_500


def test_unknown_acquisition_lists_valid_names():
    with pytest.raises(ConfigError, match=f"choose one of {', '.join(ACQUISITIONS.names())}$"):
        get_acquisition("bald")
    assert {"least_confidence", "entropy", "margin", "random", "k_center"} <= set(ACQUISITIONS.names())


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_streaming_top_k_equals_all_at_once(chunk):
    rng = np.random.default_rng(0)
    ids = rng.permutation(1000).astype(np.int64)
    scores = rng.integers(0, 50, size=1000).astype(float)  # many ties on purpose
    stream = StreamingTopK(100)
    for start in range(0, 1000, chunk):
        stream.push(ids[start : start + chunk], scores[start : start + chunk])
    streamed_ids, streamed_scores = stream.result()
    ref_ids, ref_scores = top_k(ids, scores, 100)
    np.testing.assert_array_equal(streamed_ids, ref_ids)
    order = np.lexsort((ids, -scores))[:100]
    np.testing.assert_array_equal(ref_ids, ids[order])
    np.testing.assert_array_equal(streamed_scores, scores[order])


def merged_top(parts: list[StreamingTopK], k: int) -> StreamingTopK:
    """What the coordinator does with the scorers' top lists: fold each into a fresh one."""
    top = StreamingTopK(k)
    for part in parts:
        top.merge(part)
    return top


@pytest.mark.parametrize("parts", [1, 3, 8])
def test_top_k_merged_from_disjoint_parts_equals_the_pool_top_k(parts):
    rng = np.random.default_rng(1)
    ids = rng.permutation(1000).astype(np.int64)
    scores = rng.integers(0, 50, size=1000).astype(float)  # ties across parts on purpose
    shards = []
    for part_ids, part_scores in zip(np.array_split(ids, parts), np.array_split(scores, parts)):
        shard = StreamingTopK(100)
        shard.push(part_ids, part_scores)
        shards.append(shard)
    merged = merged_top(shards, 100)
    assert merged.seen == 1000
    for got, want in zip(merged.result(), top_k(ids, scores, 100)):
        np.testing.assert_array_equal(got, want)


def test_a_merged_top_k_counts_every_part_when_the_pool_is_short():
    shards = [StreamingTopK(5), StreamingTopK(5)]
    shards[0].push(np.arange(2), np.zeros(2))
    shards[1].push(np.arange(2, 4), np.zeros(2))
    with pytest.raises(PoolExhaustedError, match="4 unlabelled available / 5 requested"):
        merged_top(shards, 5).result()


def test_streaming_top_k_breaks_ties_by_smaller_id():
    stream = StreamingTopK(2)
    stream.push(np.array([9, 4]), np.array([1.0, 1.0]))
    stream.push(np.array([2, 7]), np.array([1.0, 0.5]))
    np.testing.assert_array_equal(stream.result()[0], [2, 4])


def test_streaming_top_k_reports_an_exhausted_pool():
    stream = StreamingTopK(5)
    stream.push(np.arange(3), np.zeros(3))
    with pytest.raises(PoolExhaustedError, match="3 unlabelled available / 5 requested"):
        stream.result()


def test_k_center_picks_the_farthest_point_each_time():
    labelled = np.array([[0.0, 0.0]])
    candidates = np.array([[1.0, 0.0], [10.0, 0.0], [0.0, 4.0], [10.0, 1.0]])
    # farthest from the origin is (10, 1); then (0, 4) is 4 from origin vs (1,0) at 1
    np.testing.assert_array_equal(k_center_greedy(candidates, labelled, 2), [3, 2])


def test_k_center_from_labelled_rows_folded_in_batch_by_batch_picks_what_the_all_at_once_form_picks():
    """The scorers fold their shares of the labelled rows into per-candidate minima, in any order;
    only the candidates' embeddings are ever held at once."""
    rng = np.random.default_rng(4)
    candidates, labelled = rng.normal(size=(300, 16)), rng.normal(size=(2500, 16))
    folded = None
    for batch in np.array_split(labelled[::-1], 7):  # another order, uneven batches
        folded = min_sq_distances(candidates, batch, folded)
    np.testing.assert_allclose(folded, min_sq_distances(candidates, labelled), rtol=1e-5)
    np.testing.assert_array_equal(k_center_from(candidates, folded, 25), k_center_greedy(candidates, labelled, 25))


def test_set_based_selection_over_more_candidates_than_its_bound_is_one_line_naming_the_setting(monkeypatch):
    monkeypatch.setattr(pipeline.selection.acquisition, "MAX_SET_CANDIDATES", 1000)
    pipeline.selection.acquisition.check_set_candidates("k_center", 1000)
    pipeline.selection.acquisition.check_set_candidates("least_confidence", 10**9)  # streamed: no bound
    with pytest.raises(
        ConfigError,
        match=r"k_center .* at most 1000 candidates a round, and this round has 1001: "
        r"set scoring.candidates \(e.g. 500\)",
    ):
        pipeline.selection.acquisition.check_set_candidates("k_center", 1001)


def test_k_center_never_repeats_and_checks_pool_size():
    rng = np.random.default_rng(1)
    picks = k_center_greedy(rng.normal(size=(50, 4)), np.empty((0, 4)), 50)
    assert sorted(picks) == list(range(50))
    with pytest.raises(PoolExhaustedError):
        k_center_greedy(rng.normal(size=(3, 4)), np.empty((0, 4)), 4)


def test_a_candidate_draw_is_a_seeded_uniform_subset_of_the_unlabelled_ids():
    unlabelled = np.arange(0, 10_000, 2, dtype=np.int64)  # 5,000 ids
    drawn = draw_candidates(unlabelled, 1_000, seed=7)
    assert len(drawn) == 1_000 and len(np.unique(drawn)) == 1_000
    assert np.all(np.diff(drawn) > 0) and np.isin(drawn, unlabelled).all()
    np.testing.assert_array_equal(drawn, draw_candidates(unlabelled, 1_000, seed=7))
    assert not np.array_equal(drawn, draw_candidates(unlabelled, 1_000, seed=8))
    # uniform: each fifth of the id range holds about a fifth of the draw (binomial sd ~ 13)
    counts = np.histogram(drawn, bins=5, range=(0, 10_000))[0]
    assert np.all(np.abs(counts - 200) < 60)
    assert draw_candidates(unlabelled, 5_000, seed=7) is None and draw_candidates(unlabelled, 9_999, seed=7) is None


def test_a_streaming_top_k_keeps_each_kept_ids_payload_row_across_batches_and_merges():
    rng = np.random.default_rng(1)
    ids = rng.permutation(200).astype(np.int64)
    scores = rng.random(200)
    rows = np.stack([ids, ids * 2], axis=1).astype(np.float32)  # a row that names its id
    parts = []
    for share in np.array_split(np.arange(200), 3):  # three scorers, each in uneven batches
        top = StreamingTopK(30)
        for batch in np.array_split(share, 4):
            top.push(ids[batch], scores[batch], rows[batch])
        parts.append(top)
    kept_ids, kept_scores, kept_rows = merged_top(parts, 30).result_with_rows()
    np.testing.assert_array_equal(kept_ids, top_k(ids, scores, 30)[0])
    np.testing.assert_array_equal(kept_rows[:, 0], kept_ids)  # each row still beside its own id


def test_preflight_refuses_k_center_over_the_whole_pool_above_the_bound_and_takes_a_candidate_subset(
    monkeypatch, tmp_path
):
    from pipeline.data import get_source, prepare_dataset
    from pipeline.loop.preflight import plan_run
    from tests.helpers import tiny_config, write_fashion_like

    data_dir = write_fashion_like(tmp_path / "raw")
    config = tiny_config(data_dir, tmp_path, "acquisition=k_center")
    data = prepare_dataset(get_source("fashion_mnist", data_dir), config.data.cache_dir, config.data.shard_rows)
    monkeypatch.setattr(pipeline.selection.acquisition, "MAX_SET_CANDIDATES", 100)
    with pytest.raises(ConfigError, match=f"this round has {data.pool_size - 40}: set scoring.candidates"):
        plan_run(config, data)
    plan_run(tiny_config(data_dir, tmp_path, "acquisition=k_center", "scoring.candidates=60"), data)

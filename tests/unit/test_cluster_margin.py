import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from pipeline.errors import PoolExhaustedError
from pipeline.selection.acquisition import get_acquisition
from pipeline.selection.cluster_margin import cluster_margin_select

K = 10  # batch size; with margin_multiple=10 the shortlist is the 100 lowest margins

# Blob 0 is the most uncertain: its 60 members have the 60 lowest margins, so plain lowest-margin
# top-k takes all K from it. Blobs 1-4 each put a few members (5, 10, 10, 15) into the 100 lowest
# and the rest far above. The blobs sit 30 apart with unit spread: k-means separates them cleanly.
SHORTLISTED = [60, 5, 10, 10, 15]
NOT_SHORTLISTED = [0, 40, 90, 140, 285]


@pytest.fixture(autouse=True)
def one_thread():
    # The fits here have 100 points: OpenMP threads only add start-up and, on a machine busy with
    # Ray, spin-waiting that made single fits take a second. One thread keeps the file fast and steady.
    with threadpool_limits(1):
        yield


def make_blobs(seed: int = 0):
    """-> margins (n,), embeddings (n, 16) float32, blob (n,): the blob of each candidate position."""
    rng = np.random.default_rng(seed)
    centers = np.zeros((len(SHORTLISTED), 16))
    centers[np.arange(len(SHORTLISTED)), np.arange(len(SHORTLISTED))] = 30.0
    blob, margins = [], []
    for b, (low, high) in enumerate(zip(SHORTLISTED, NOT_SHORTLISTED)):
        band = (0.0, 0.01) if b == 0 else (0.01, 0.1)
        margins += [rng.uniform(*band, size=low), rng.uniform(0.5, 1.0, size=high)]
        blob += [b] * (low + high)
    blob = np.array(blob)
    order = rng.permutation(len(blob))  # so that position says nothing about blob or margin
    blob, margins = blob[order], np.concatenate(margins)[order]
    embeddings = (centers[blob] + rng.normal(size=(len(blob), 16))).astype(np.float32)
    return margins, embeddings, blob


def test_cluster_margins_shortlist_ranks_by_the_margin_acquisitions_score_minus_top_one_minus_top_two():
    probs = np.array([[0.90, 0.05, 0.05], [0.40, 0.35, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(
        get_acquisition("margin").score(probs, np.arange(3), seed=0), [-0.85, -0.05, 0.0], atol=1e-12
    )
    np.testing.assert_array_equal(
        get_acquisition("cluster_margin").score(probs, np.arange(3), seed=0),
        get_acquisition("margin").score(probs, np.arange(3), seed=0),
    )


@pytest.mark.parametrize("clusters", [None, 5, 37])
def test_selects_k_distinct_positions_from_the_lowest_margins(clusters):
    margins, embeddings, _ = make_blobs()
    picks = cluster_margin_select(margins, embeddings, K, seed=0, clusters=clusters)
    assert picks.dtype == np.int64 and picks.shape == (K,)
    assert len(np.unique(picks)) == K
    assert set(picks) <= set(np.argsort(margins)[: 10 * K])


def test_shortlist_breaks_equal_margins_toward_the_smaller_position():
    rng = np.random.default_rng(1)
    margins = np.repeat([0.2, 0.1, 0.3], 100)  # positions 100..199 share the lowest margin
    embeddings = rng.normal(size=(300, 8)).astype(np.float32)
    picks = cluster_margin_select(margins, embeddings, k=5, seed=0, margin_multiple=10)
    assert set(picks) <= set(range(100, 150))  # the shortlist is the first 50 of the tied block


@pytest.mark.parametrize("clusters", [None, 5])
def test_batch_covers_every_blob_where_plain_lowest_margin_piles_into_one(clusters):
    margins, embeddings, blob = make_blobs()
    plain = np.argsort(margins)[:K]
    assert set(blob[plain]) == {0}  # the data is built so that plain top-k is not diverse
    picks = cluster_margin_select(margins, embeddings, K, seed=0, clusters=clusters)
    assert set(blob[picks]) == set(range(len(SHORTLISTED)))


def test_round_robin_visits_small_clusters_first_and_takes_evenly():
    # With one cluster per blob the shortlist clusters hold 5, 10, 10, 15 and 60 members:
    # two passes of five take exactly two from each, whatever the seed.
    margins, embeddings, blob = make_blobs()
    for seed in range(3):
        picks = cluster_margin_select(margins, embeddings, K, seed=seed, clusters=5)
        assert np.array_equal(blob[picks[:5]], [1, 2, 3, 4, 0]) or np.array_equal(blob[picks[:5]], [1, 3, 2, 4, 0])
        assert np.bincount(blob[picks], minlength=5).tolist() == [2, 2, 2, 2, 2]


def test_same_seed_same_batch_other_seed_other_batch():
    margins, embeddings, _ = make_blobs()
    first = cluster_margin_select(margins, embeddings, K, seed=7)
    np.testing.assert_array_equal(first, cluster_margin_select(margins, embeddings, K, seed=7))
    assert set(first) != set(cluster_margin_select(margins, embeddings, K, seed=8))


@pytest.mark.parametrize("n, k, margin_multiple", [(8, 8, 10.0), (300, 6, 1.0)])
def test_without_room_to_choose_returns_the_lowest_margins_in_margin_order(n, k, margin_multiple):
    rng = np.random.default_rng(2)
    margins = rng.uniform(size=n)
    embeddings = rng.normal(size=(n, 4)).astype(np.float32)
    picks = cluster_margin_select(margins, embeddings, k, seed=0, margin_multiple=margin_multiple)
    np.testing.assert_array_equal(picks, np.argsort(margins)[:k])


def test_empty_pool_or_empty_batch_gives_no_positions():
    margins, embeddings, _ = make_blobs()
    for result in (
        cluster_margin_select(margins, embeddings, 0, seed=0),
        cluster_margin_select(np.empty(0), np.empty((0, 16), dtype=np.float32), 5, seed=0),
    ):
        assert result.dtype == np.int64 and result.shape == (0,)


def test_bad_input_is_rejected_with_the_numbers():
    margins, embeddings, _ = make_blobs()
    with pytest.raises(PoolExhaustedError, match=f"{len(margins)} candidates available / {len(margins) + 1} requested"):
        cluster_margin_select(margins, embeddings, len(margins) + 1, seed=0)
    with pytest.raises(ValueError, match="do not match"):
        cluster_margin_select(margins[:-1], embeddings, K, seed=0)
    with pytest.raises(ValueError, match="margin_multiple must be >= 1"):
        cluster_margin_select(margins, embeddings, K, seed=0, margin_multiple=0.5)


def test_members_within_a_cluster_are_drawn_at_random_not_by_margin():
    # One cluster per blob, whatever the seed: only the draw inside each cluster can change the batch.
    margins, embeddings, blob = make_blobs()
    batches = {frozenset(cluster_margin_select(margins, embeddings, K, seed=s, clusters=5)) for s in range(4)}
    assert len(batches) > 1
    lowest_two_per_blob = {
        int(p) for b in range(5) for p in np.flatnonzero(blob == b)[np.argsort(margins[blob == b])[:2]]
    }
    assert lowest_two_per_blob not in batches

"""batch: how a round's batch is drawn from per-example scores. Sampling draws with the distribution it
names, a pool split over scorers picks what one collector picks, balance spreads the batch over the
predicted classes, and a rule an acquisition cannot draw by is one line."""

import itertools

import numpy as np
import pytest

from pipeline.config.run_config import load_config
from pipeline.errors import ConfigError, PoolExhaustedError
from pipeline.loop.preflight import check_names
from pipeline.selection.acquisition import get_acquisition
from pipeline.selection.batch import BatchRule, round_robin

SCORES = np.array([0.05, 0.1, 0.2, 0.4])  # least confidence of the rows below
IDS = np.array([11, 3, 27, 8])
DRAWS = 6000


def lc_probs(scores: np.ndarray) -> np.ndarray:
    """Two-class softmax rows whose least-confidence score is `scores` (each <= 0.5)."""
    return np.stack([1 - scores, scores], axis=1)


def draw(rule: BatchRule, k: int, seed: int, ids=IDS, probs=None) -> np.ndarray:
    collector = get_acquisition("least_confidence", rule).collector(k, seed)
    collector.push(ids, lc_probs(SCORES) if probs is None else probs)
    return collector.select().pool_ids


def expected(sampling: str, coldness: float) -> np.ndarray:
    if sampling == "softmax":
        weights = np.exp(coldness * SCORES)
    elif sampling == "power":
        weights = SCORES**coldness
    else:  # softrank: the highest score has rank 1
        ranks = np.empty(len(SCORES))
        ranks[np.argsort(-SCORES)] = np.arange(1, len(SCORES) + 1)
        weights = ranks**-coldness
    return weights / weights.sum()


@pytest.mark.parametrize("sampling, coldness", [("softmax", 8.0), ("power", 1.0), ("power", 3.0), ("softrank", 1.0)])
def test_the_first_pick_is_drawn_with_the_named_distribution(sampling, coldness):
    p = expected(sampling, coldness)
    firsts = [draw(BatchRule(sampling, coldness), 1, seed)[0] for seed in range(DRAWS)]
    freq = np.array([np.mean(np.array(firsts) == i) for i in IDS])
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p * (1 - p) / DRAWS).max())


def test_a_batch_of_two_is_drawn_without_replacement_as_plackett_luce_says():
    """P(i first, j second) = p_i p_j / (1 - p_i): the Gumbel-top-k trick's guarantee."""
    p = expected("power", 2.0)
    pairs = [tuple(draw(BatchRule("power", 2.0), 2, seed)) for seed in range(DRAWS)]
    assert all(a != b for a, b in pairs)
    for (i, a), (j, b) in itertools.permutations(enumerate(IDS), 2):
        want = p[i] * p[j] / (1 - p[i])
        got = np.mean([pair == (a, b) for pair in pairs])
        assert abs(got - want) < 4 * np.sqrt(want * (1 - want) / DRAWS) + 1e-3, (a, b)


def test_a_large_coldness_is_top_k_and_a_zero_one_is_uniform():
    top = BatchRule("softmax", 1000.0)
    assert all(list(draw(top, 2, seed)) == [8, 27] for seed in range(50))
    firsts = [draw(BatchRule("softmax", 0.0), 1, seed)[0] for seed in range(DRAWS)]
    np.testing.assert_allclose([np.mean(np.array(firsts) == i) for i in IDS], 0.25, atol=0.03)


def test_power_draws_zero_scores_last_whatever_its_coldness():
    probs = lc_probs(np.array([0.0, 0.3, 0.0, 0.1]))
    for coldness in (0.0, 2.0):
        assert all(set(draw(BatchRule("power", coldness), 2, seed, probs=probs)) == {3, 8} for seed in range(20))


def pool(n=300, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) + 2.0 * (np.arange(n) % 7 == 0)[:, None] * np.eye(classes)[0]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return rng.permutation(10 * n)[:n].astype(np.int64), probs


RULES = [BatchRule(s, 2.0, b) for s in ("top_k", "softmax", "power", "softrank") for b in (False, True)]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.sampling}-{'balanced' if r.balance else 'plain'}")
def test_a_pool_split_over_scorers_picks_what_one_collector_picks(rule):
    ids, probs = pool()
    acquisition = get_acquisition("entropy", rule)
    whole = acquisition.collector(40, seed=5)
    whole.push(ids, probs)
    merged = acquisition.collector(40, seed=5)
    for shard in np.array_split(np.random.default_rng(1).permutation(len(ids)), 3):
        part = acquisition.collector(40, seed=5)
        for rows in np.array_split(shard, 4):
            part.push(ids[rows], probs[rows])
        merged.merge(part)
    want, got = whole.select(), merged.select()
    np.testing.assert_array_equal(got.pool_ids, want.pool_ids)
    assert len(set(got.pool_ids)) == 40 and got.score_mean == pytest.approx(want.score_mean)


def test_balance_spreads_the_batch_over_predicted_classes_and_a_short_class_gives_its_share_away():
    ids, probs = pool(classes=4)
    classes = probs.argmax(axis=1)
    short = np.flatnonzero(classes == 3)[:2]  # class 3 keeps two candidates only
    keep = np.setdiff1d(np.arange(len(ids)), np.flatnonzero(classes == 3)[2:])
    ids, probs, classes = ids[keep], probs[keep], classes[keep]
    assert np.isin(short, keep).all()
    for rule in (BatchRule(balance=True), BatchRule("softmax", 4.0, balance=True)):
        collector = get_acquisition("least_confidence", rule).collector(29, seed=2)
        collector.push(ids, probs)
        chosen = collector.select().pool_ids
        counts = np.bincount(classes[[np.flatnonzero(ids == c)[0] for c in chosen]], minlength=4)
        assert counts[3] == 2 and sorted(counts[:3]) == [9, 9, 9]


def test_plain_top_k_is_unbalanced_on_the_same_pool():
    ids, probs = pool(classes=4)
    collector = get_acquisition("least_confidence").collector(29, seed=2)
    collector.push(ids, probs)
    chosen = collector.select().pool_ids
    counts = np.bincount(probs.argmax(axis=1)[[np.flatnonzero(ids == c)[0] for c in chosen]], minlength=4)
    assert counts.max() - counts.min() > 1  # else the balance test above would prove nothing


def test_round_robin_takes_each_groups_best_in_turn():
    keys = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    groups = np.array([0, 0, 0, 1, 1, 2])
    np.testing.assert_array_equal(round_robin(keys, np.arange(6), groups), [0, 3, 5, 1, 4, 2])


@pytest.mark.parametrize("rule", [BatchRule("softmax"), BatchRule("softrank"), BatchRule(balance=True)])
def test_a_sampled_pool_smaller_than_the_batch_is_exhausted(rule):
    with pytest.raises(PoolExhaustedError, match="4 unlabelled available / 5 requested"):
        draw(rule, 5, seed=0)


def test_cluster_margins_shortlist_follows_the_margin_multiple():
    assert get_acquisition("cluster_margin").shortlist(7) == 70
    assert get_acquisition("cluster_margin", BatchRule(margin_multiple=2.5)).shortlist(7) == 18


@pytest.mark.parametrize(
    "sets, message",
    [
        (["batch.sampling=gumbel"], "unknown batch.sampling 'gumbel': choose one of top_k, softmax, power, softrank"),
        (["batch.sampling=power", "acquisition=margin"], "margin's scores can be negative: use batch.sampling"),
        (["batch.sampling=softmax", "acquisition=random"], "random already draws uniformly"),
        (["batch.balance=true", "acquisition=k_center"], "k_center picks its batch as a set"),
        (["batch.sampling=softmax", "acquisition=cluster_margin"], "cluster_margin picks its batch as a set"),
        (["batch.margin_multiple=3"], "batch.margin_multiple is Cluster-Margin's shortlist size"),
        (["batch.margin_multiple=0.5", "acquisition=cluster_margin"], "the shortlist holds at least k"),
        (["batch.coldness=-1"], "batch.coldness = -1.0 is negative"),
    ],
)
def test_a_batch_rule_the_acquisition_cannot_draw_by_is_one_line(sets, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        check_names(load_config(None, sets))
    assert "\n" not in str(error.value)

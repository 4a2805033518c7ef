import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.update.memory import MEMORIES, balanced_quota, create_memory


def filled(policy, capacity=1000, n=100, classes=10, **kwargs):
    memory = create_memory(policy, capacity=capacity, **kwargs)
    memory.add(np.arange(n), np.arange(n) % classes, np.random.default_rng(0))
    return memory


@pytest.mark.parametrize("policy", MEMORIES.names())
def test_every_policy_returns_distinct_held_ids_of_the_asked_size(policy):
    memory = filled(policy)
    ids = memory.sample(30, np.random.default_rng(1))
    assert len(ids) == 30 and len(set(ids.tolist())) == 30
    assert set(ids.tolist()) <= set(range(100))


@pytest.mark.parametrize("policy", MEMORIES.names())
def test_sample_is_capped_at_what_the_memory_holds(policy):
    memory = filled(policy, n=20)
    assert len(memory.sample(500, np.random.default_rng(0))) == 20
    assert len(create_memory(policy, capacity=10).sample(5, np.random.default_rng(0))) == 0


@pytest.mark.parametrize("policy", MEMORIES.names())
def test_state_round_trips(policy):
    memory = filled(policy, capacity=50)
    copy = create_memory(policy, capacity=50)
    copy.load_state_dict(memory.state_dict())
    np.testing.assert_array_equal(
        copy.sample(20, np.random.default_rng(5)), memory.sample(20, np.random.default_rng(5))
    )


def test_with_replacement_may_repeat_ids():
    memory = filled("random", n=5, with_replacement=True)
    ids = memory.sample(5, np.random.default_rng(0))
    assert len(ids) == 5 and len(set(ids.tolist())) < 5


def test_class_balanced_keeps_old_classes_when_new_ones_dominate():
    memory = create_memory("class_balanced", capacity=100)
    rng = np.random.default_rng(0)
    memory.add(np.arange(10), np.zeros(10, dtype=int), rng)  # 10 of class 0
    memory.add(np.arange(10, 1010), np.ones(1000, dtype=int), rng)  # 1000 of class 1
    ids = memory.sample(20, rng)
    assert (ids < 10).sum() == 10 and (ids >= 10).sum() == 10


def test_balanced_quota_hands_slack_of_small_classes_to_large_ones():
    np.testing.assert_array_equal(balanced_quota(np.array([2, 100, 100]), 12), [2, 5, 5])
    np.testing.assert_array_equal(balanced_quota(np.array([100, 100, 100]), 10), [3, 3, 4])
    assert balanced_quota(np.array([1, 1, 50]), 52).sum() == 52


def test_reservoir_keeps_capacity_and_samples_the_stream_uniformly():
    rng = np.random.default_rng(0)
    hits = np.zeros(1000)
    for _ in range(300):
        memory = create_memory("reservoir", capacity=100)
        for start in range(0, 1000, 250):
            memory.add(np.arange(start, start + 250), np.zeros(250, dtype=int), rng)
        assert len(memory) == 100 and memory.seen == 1000
        hits[memory.pool_ids] += 1
    early, late = hits[:500].mean(), hits[500:].mean()
    assert abs(early - late) / 30 < 0.1  # each id is kept with probability 0.1 (30 of 300 trials)


def test_unknown_policy_and_negative_size_are_config_errors():
    with pytest.raises(ConfigError, match=f"choose one of {', '.join(MEMORIES.names())}$"):
        create_memory("fifo", capacity=10)
    with pytest.raises(ConfigError, match="negative"):
        create_memory("random", capacity=-1)

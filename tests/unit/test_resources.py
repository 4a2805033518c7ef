"""Placing a run's long-lived processes on the cluster's node shapes (actors.resources.first_fit), no Ray started."""

import pytest

from actors.resources import first_fit, process_requests, unplaceable
from pipeline.config.run_config import load_config

HALF = {"CPU": 0.5, "GPU": 0.0}


def test_two_one_cpu_nodes_hold_the_learner_and_a_scorer_and_keep_a_whole_node_free():
    free = first_fit([HALF, HALF], [{"CPU": 1.0}, {"CPU": 1.0}])
    assert [node["CPU"] for node in free] == [0.0, 1.0]  # packed: the other node is left to the read tasks


def test_fragments_that_no_process_fits_in_are_not_counted_as_room():
    three_quarters = {"CPU": 0.75, "GPU": 0.0}
    assert first_fit([three_quarters, three_quarters], [{"CPU": 1.0}, {"CPU": 1.0}]) is not None
    assert first_fit([three_quarters] * 3, [{"CPU": 1.0}, {"CPU": 1.0}]) is None  # 1.5 CPUs in all, 0.25 per node


def test_gpu_shares_are_placed_where_the_gpus_are():
    gpu_half = {"CPU": 0.5, "GPU": 0.5}
    free = first_fit([gpu_half, gpu_half], [{"CPU": 4.0}, {"CPU": 1.0, "GPU": 1.0}])
    assert free == [{"CPU": 4.0}, {"CPU": 0.0, "GPU": 0.0}]
    assert first_fit([gpu_half] * 3, [{"CPU": 4.0}, {"CPU": 4.0, "GPU": 1.0}]) is None


def test_the_largest_process_is_placed_first():
    whole, half = {"CPU": 1.0}, HALF
    free = first_fit([half, whole], [{"CPU": 1.5}, {"CPU": 1.0}])
    assert [node["CPU"] for node in free] == [0.0, 1.0]  # the whole one first, then the half beside it


def test_custom_resources_place_processes_only_on_nodes_that_have_them():
    config = load_config(None, ["scoring.resources={spot: 0.5}", "learner.resources={spot: 0.5}"])
    requests = process_requests(config, with_gpus=False)
    assert requests["scoring actor"] == {"CPU": 0.5, "GPU": 0.0, "spot": 0.5}
    head, spot = {"CPU": 4.0}, {"CPU": 1.0, "spot": 1.0}
    assert first_fit(list(requests.values()), [head, spot]) == [head, {"CPU": 0.0, "GPU": 0.0, "spot": 0.0}]
    assert unplaceable(requests, [head]) == [
        "one scoring actor asks for 0.5 CPU, 0.5 spot but no node has or can add that much",
        "one learner worker asks for 0.5 CPU, 0.5 spot but no node has or can add that much",
    ]


def test_a_scorer_no_node_takes_back_ends_the_pass_in_one_line_naming_the_wait_and_resume(monkeypatch):
    """What tests/integration/test_node_loss.py shows for the Train worker group, for a scoring actor:
    its restart found no room within scoring.placement_timeout_s."""
    import actors.scorer as scorer
    from pipeline.errors import ResourceError

    def no_room(actors, timeout_s):
        raise TimeoutError

    monkeypatch.setattr(scorer, "wait_until_ready", no_room)
    monkeypatch.setattr(scorer, "gpus_available", lambda: False)
    pool = scorer.ScorerPool.__new__(scorer.ScorerPool)  # no actors: the wait is what is tested
    pool.config, pool.actors = (
        load_config(
            None, ["scoring.resources={spot: 0.5}", "scoring.placement_timeout_s=30", "run_dir=s3://bucket/run"]
        ),
        [],
    )
    with pytest.raises(ResourceError) as caught:
        pool._wait_for_restarts()
    assert str(caught.value) == (
        "a scoring actor died and no node had room to restart it (0.5 CPU, 0.5 spot) within 30 s "
        "(scoring.placement_timeout_s): was its node lost? The committed rounds are kept; once the cluster has "
        "such a node, continue with clactive run --resume s3://bucket/run"
    )

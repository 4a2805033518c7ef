"""The scoring actors against a plain torch loop over the same pool."""

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest
import ray
import torch
from ray.data import DataContext
from ray.util.state import list_actors

from actors.scorer import ScorerPool
from benchmarks.common import plain_collect
from pipeline.config.run_config import BatchConfig
from pipeline.data import get_source, images_from_arrow, prepare_dataset
from pipeline.errors import ResourceError
from pipeline.loop.preflight import acquisition_for
from pipeline.selection.acquisition import get_acquisition
from pipeline.selection.candidates import draw_candidates
from pipeline.selection.neighbours import EmbeddingPass, train_index
from pipeline.update.models import create_model
from pipeline.update.training import checkpoint_bytes, predict
from tests.helpers import k_center_greedy, tiny_config, top_k

pytestmark = pytest.mark.ray


def expected_top_k(
    data, model, acquisition: str, labelled: np.ndarray, k: int, candidates: np.ndarray | None = None
) -> np.ndarray:
    """The ids a plain loop over every pool row picks (among `candidates`, when given)."""
    table = pads.dataset(data.split_dir("pool"), format="parquet").to_table()
    pool_ids = table.column("id").to_numpy()
    images = torch.from_numpy(images_from_arrow(table.column("image"), data.image_shape).copy())
    probs = predict(model, images, mean=data.mean, std=data.std, device=torch.device("cpu"))
    scores = get_acquisition(acquisition).score(probs, pool_ids, seed=0)
    unlabelled = ~np.isin(pool_ids, labelled) if candidates is None else np.isin(pool_ids, candidates)
    return top_k(pool_ids[unlabelled], scores[unlabelled], k)[0]


def assert_a_sampled_draw_and_a_neighbour_index_are_one_processs(scorers, data, model, labelled) -> None:
    """The four scorers' merged draw (power sampling, class-balanced) is one collector's over the whole
    pool; the neighbour index they build from their shards finds what one process's index finds."""
    config, weights = scorers.config, checkpoint_bytes(model)
    sampled = replace(config, batch=BatchConfig(sampling="power", coldness=3.0, balance=True))
    scorers.config = sampled
    scored = scorers.select(weights, labelled, k=30, seed=4)
    np.testing.assert_array_equal(scored.pool_ids, expected_draw(data, model, sampled, labelled, 30, seed=4))
    scorers.config = config

    sample = scorers.collect(weights, EmbeddingPass(), np.arange(0, data.pool_size, 2))
    assert sample.rows().shape == (data.pool_size // 2, 64)
    trained = train_index(sample.rows(), data.pool_size, seed=0)
    index = scorers.collect(weights, EmbeddingPass(trained), None).index
    plain = plain_collect(config, data, "small_cnn", weights, EmbeddingPass(trained), None, threads=1).index
    assert index.size == plain.size == data.pool_size
    np.testing.assert_array_equal(index.near(labelled[:20], 5), plain.near(labelled[:20], 5))


def expected_draw(data, model, config, labelled: np.ndarray, k: int, seed: int) -> np.ndarray:
    """The ids one collector given every unlabelled row at once draws."""
    table = pads.dataset(data.split_dir("pool"), format="parquet").to_table()
    pool_ids = table.column("id").to_numpy()
    images = torch.from_numpy(images_from_arrow(table.column("image"), data.image_shape).copy())
    probs = predict(model, images, mean=data.mean, std=data.std, device=torch.device("cpu"))
    unlabelled = ~np.isin(pool_ids, labelled)
    collector = acquisition_for(config).collector(k, seed)
    collector.push(pool_ids[unlabelled], probs[unlabelled])
    return collector.select().pool_ids


def scorer_actors() -> list:
    return [a for a in list_actors(filters=[("state", "=", "ALIVE")], limit=10_000) if a.class_name == "Scorer"]


def test_long_lived_scorers_pick_exactly_the_plain_loops_ids_per_example_and_set_based(
    ray_cluster, tiny_data_dir, work_dir
):
    """Four scorers over the pool's three files (one gets no block), in batches that do not divide
    them: two entropy passes with new weights and a new labelled set each pick the plain loop's top
    k, and the same four actors serve both; a pass over a random candidate subset (scoring.candidates)
    picks the plain loop's top k of that subset; k_center, which gathers every shard's embeddings,
    picks the plain loop's ids over the whole pool and over a subset; a pass with no room to read
    ends in one line. Each acquisition's scores against hand-computed values: tests/unit/test_acquisition.py."""
    config = tiny_config(
        tiny_data_dir,
        work_dir,
        "acquisition=entropy",
        "scoring.batch_size=37",
        "scoring.actors=4",
        "scoring.cpus_per_actor=0.25",
        "scoring.gpus_per_actor=0",
    )
    data = prepare_dataset(get_source("fashion_mnist", tiny_data_dir), config.data.cache_dir, config.data.shard_rows)
    assert len(list(Path(data.split_dir("pool")).glob("*.parquet"))) == 3
    scorers = ScorerPool(config, data, "small_cnn")
    try:
        for seed, labelled, k in ((1, np.arange(0, data.pool_size, 3), 25), (2, np.arange(0, 40), 30)):
            torch.manual_seed(seed)
            model = create_model("small_cnn", 1, 10)
            scored = scorers.select(checkpoint_bytes(model), labelled, k=k, seed=0)
            seconds = scored.seconds
            np.testing.assert_array_equal(scored.pool_ids, expected_top_k(data, model, "entropy", labelled, k))
            assert scored.candidates == data.pool_size - len(labelled) and scored.redone == 0
            assert seconds["score"] > 0 and seconds["select"] >= 0
            assert 0 < seconds["score_compute"] < seconds["score"]  # its compute fits inside the pass
            # so do its start and its waits for blocks
            assert 0 < seconds["score_first_batch"] and 0 <= seconds["score_starved"]
            assert seconds["score_compute"] + seconds["score_first_batch"] + seconds["score_starved"] < seconds["score"]
            alive = sorted(a.actor_id for a in scorer_actors())
            assert alive == sorted(actor._actor_id.hex() for actor in scorers.actors)
        labelled = np.arange(0, 40)
        candidates = draw_candidates(np.arange(40, data.pool_size), 90, seed=3)
        scored = scorers.select(checkpoint_bytes(model), labelled, k=30, seed=0, candidate_ids=candidates)
        np.testing.assert_array_equal(scored.pool_ids, expected_top_k(data, model, "entropy", labelled, 30, candidates))
        assert scored.candidates == 90 and scored.score_mean > 0

        assert_a_sampled_draw_and_a_neighbour_index_are_one_processs(scorers, data, model, labelled)

        # the same scorers, set-based: the acquisition is read from the config at each pass
        scorers.config = replace(config, acquisition="k_center")
        labelled = np.arange(0, 400, 5)
        candidates = draw_candidates(np.setdiff1d(np.arange(400), labelled), 150, seed=5)
        scored = scorers.select(checkpoint_bytes(model), labelled, k=20, seed=0)
        among = scorers.select(checkpoint_bytes(model), labelled, k=20, seed=0, candidate_ids=candidates)
        assert scored.candidates == 400 - len(labelled) and among.candidates == 150
        assert scored.score_mean is None  # a set has no per-example score
        assert_k_center_picks_the_plain_loops_ids(data, model, labelled, candidates, scored.pool_ids, among.pool_ids)

        assert_a_pass_with_no_room_to_read_ends_in_one_line(scorers, checkpoint_bytes(model))
    finally:
        scorers.close()


def assert_k_center_picks_the_plain_loops_ids(data, model, labelled, candidates, chosen, chosen_among) -> None:
    table = pads.dataset(data.split_dir("pool"), format="parquet").to_table()  # the plain loop
    pool_ids = table.column("id").to_numpy()
    images = torch.from_numpy(images_from_arrow(table.column("image"), data.image_shape).copy())
    embeddings = predict(model, images, mean=data.mean, std=data.std, device=torch.device("cpu"), output="embeddings")
    unlabelled = ~np.isin(pool_ids, labelled)
    picks = k_center_greedy(embeddings[unlabelled], embeddings[~unlabelled], 20)
    np.testing.assert_array_equal(chosen, pool_ids[unlabelled][picks])
    among = np.isin(pool_ids, candidates)  # a candidate subset: distances still to every labelled example
    picks = k_center_greedy(embeddings[among], embeddings[~unlabelled], 20)
    np.testing.assert_array_equal(chosen_among, pool_ids[among][picks])


def assert_a_pass_with_no_room_to_read_ends_in_one_line(scorers, weights) -> None:
    """Every CPU the scorers left is taken (as by another job): the pass's read tasks fit nowhere,
    and Ray Data's no-progress guard ends it as one ResourceError naming the resource and the fix."""
    # One blocker per quarter CPU of the whole cluster, more than fit: the ones left pending take any
    # CPU a finishing task of an earlier pass still held when we looked (CI once saw that CPU freed
    # after an exact count had been placed, and the pass then read).
    blocker = ray.remote(num_cpus=0.25)(Blocker)
    blockers = [blocker.remote() for _ in range(int(ray.cluster_resources()["CPU"] / 0.25))]
    context = DataContext.get_current()
    timeout, context.execution_no_progress_timeout_s = context.execution_no_progress_timeout_s, 5
    try:
        wait_until_no_cpu_is_free()
        with pytest.raises(
            ResourceError,
            match=r"a scoring pass made no progress for 5 s: no node had room for a "
            r"read task of the pool \(0.25 CPU\).*lower learner.cpus_per_worker",
        ):
            scorers.select(weights, np.arange(0, 40), k=30, seed=0)
    finally:
        context.execution_no_progress_timeout_s = timeout
        for b in blockers:
            ray.kill(b)


def wait_until_no_cpu_is_free(timeout_s: float = 60) -> None:
    """Until the cluster's free CPU stays under a quarter for a second (its resource view lags)."""
    deadline, settled_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0) >= 0.25:
            settled_since = None
        elif settled_since is None:
            settled_since = time.monotonic()
        elif time.monotonic() - settled_since >= 1:
            return
        time.sleep(0.1)
    raise AssertionError(f"the blockers never took every CPU: {ray.available_resources()}")


class Blocker:
    """Holds its quarter CPU while it lives."""

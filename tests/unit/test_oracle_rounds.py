"""The round loop (pipeline.loop.rounds) with an external oracle, without Ray: the scoring pass and the
learner are deterministic stand-ins behind the loop's interfaces, and a new Rounds starts for every
resume, as a new `clactive run --resume` process would.

What it checks is the wiring the Ray tests check end to end (tests/integration/test_oracle.py):
a round paused for labels and resumed makes the same choices as an unbroken simulated-oracle run.
"""

import hashlib

import numpy as np
import pytest

from pipeline.data import get_source, prepare_dataset
from pipeline.data.pool import split_files
from pipeline.labels.answers import simulate_answers
from pipeline.labels.labelling import make_oracle
from pipeline.labels.requests import LabelRequests
from pipeline.loop.preflight import plan_run
from pipeline.loop.rounds import Rounds
from pipeline.loop.run_store import RunStore
from pipeline.loop.seams import ScoredPass, UpdateResult
from pipeline.selection.uncertainty import hashed_uniform
from tests.helpers import tiny_config, top_k, write_fashion_like


class Scorers:
    """Picks a seeded pseudo-random top k that depends on the weights, as a model's scores would."""

    def __init__(self, pool: int | np.ndarray):
        """`pool`: the pool's ids, or its size when they are 0..size-1."""
        self.pool_ids = np.arange(pool, dtype=np.int64) if isinstance(pool, int) else np.asarray(pool, np.int64)

    def start(self):
        pass

    def select(self, weights, labelled_ids, k, seed, round_index=None, pool=None, candidate_ids=None):
        ids = self.pool_ids[~np.isin(self.pool_ids, labelled_ids)] if candidate_ids is None else candidate_ids
        salt = int.from_bytes(hashlib.sha256(weights).digest()[:4], "big")  # the choice depends on the weights
        chosen, scores = top_k(ids, hashed_uniform(ids, seed + salt), k)
        return ScoredPass(chosen, len(ids), {"score": 0.0, "select": 0.0, "score_compute": 0.0}, float(scores.mean()))

    def hints(self, weights, pool_ids, images, seed):
        return {
            "predicted_label": pool_ids % 10,
            "predicted_prob": np.full(len(pool_ids), 0.5),
            "score": np.linspace(1, 0, len(pool_ids)),
        }

    def close(self):
        pass


class Learner:
    """Weights are a hash of what it was trained on, after the weights it started from."""

    def __init__(self, trained: list):
        self.trained = trained

    def start(self):
        pass

    def update(self, plan, labels, rows_from, seed, resume_from, round_index):
        assert len(labels) == len(plan.train_ids) and rows_from is None  # the prepared pool holds every row
        self.trained.append((plan.train_ids.tolist(), plan.steps, seed))
        weights = hashlib.sha256(plan.train_ids.tobytes() + labels.tobytes() + (resume_from or b"")).digest()
        return UpdateResult(
            checkpoint=weights,
            steps=plan.steps,
            loss=1.0,
            test_acc=0.5,
            class_correct=[1] * 10,
            class_total=[2] * 10,
            stop_predictions=np.arange(20) % 10,
            read_s=0.0,
            train_s=0.0,
            eval_s=0.0,
            device="cpu",
        )

    def close(self):
        pass


@pytest.fixture
def tiny(tmp_path):
    data_dir = write_fashion_like(tmp_path / "raw")
    config = tiny_config(data_dir, tmp_path)
    data = prepare_dataset(get_source("fashion_mnist", data_dir), config.data.cache_dir, config.data.shard_rows)
    return data_dir, data, []


def start(config, data, trained, accept_partial=False):
    store = (
        RunStore(config.run_dir) if RunStore(config.run_dir).holds_run() else RunStore.create(config.run_dir, config)
    )
    plan = plan_run(config, data)
    return Rounds(plan, store, Scorers(data.pool_size), Learner(trained), make_oracle(plan, store, accept_partial))


def end_state(run_dir):
    store = RunStore(run_dir)
    ids, labels = store.load_labels()
    last = store.load_round_state(store.committed_rounds()[-1])
    return ids.tolist(), labels.tolist(), last["rng"], {k: v.tolist() for k, v in last["strategy"].items()}


def test_a_run_paused_for_labels_every_round_makes_the_simulated_runs_choices(tiny, tmp_path):
    data_dir, data, trained = tiny
    simulated = tiny_config(data_dir, tmp_path, f"run_dir={tmp_path / 'simulated'}")
    rounds = start(simulated, data, trained)
    for r in range(3):
        assert "waiting" not in rounds.run_round(r)
    simulated_training = list(trained)
    trained.clear()

    external = tiny_config(data_dir, tmp_path, f"run_dir={tmp_path / 'external'}", "oracle=external")
    store = RunStore(external.run_dir)
    for r, size in enumerate([40, 30, 30]):
        assert start(external, data, trained).run_round(r) == {"round": r, "waiting": size, "requested": size}
        assert start(external, data, trained).run_round(r)["waiting"] == size  # asked again: the same request
        simulate_answers(store, split_files(data.split_dir("pool")), data.image_shape)
        record = start(external, data, trained).run_round(r)  # a new process resumes the round
        assert (record["requested"], record["answered"], record["acquired"]) == (size, size, size)

    assert end_state(external.run_dir) == end_state(simulated.run_dir)  # labels, order, rng, replay memory
    assert trained == simulated_training  # every update saw the same plan
    assert [r["candidates"] for r in store.records()] == [
        r["candidates"] for r in RunStore(simulated.run_dir).records()
    ]
    assert LabelRequests(store).open() is None and LabelRequests(store).rounds() == [0, 1, 2]


def test_accept_partial_labels_the_answered_ids_in_selection_order(tiny, tmp_path):
    data_dir, data, trained = tiny
    config = tiny_config(data_dir, tmp_path, "oracle=external")
    store = RunStore(config.run_dir)
    assert start(config, data, trained).run_round(0)["waiting"] == 40
    simulate_answers(store, split_files(data.split_dir("pool")), data.image_shape, count=25)
    assert start(config, data, trained).run_round(0) == {
        "round": 0,
        "waiting": 15,
        "requested": 40,
    }  # not without the flag
    record = start(config, data, trained, accept_partial=True).run_round(0)
    assert (record["requested"], record["answered"], record["labelled"]) == (40, 25, 25)
    asked = LabelRequests(store).get(0).pool_ids
    np.testing.assert_array_equal(store.load_labels()[0], asked[:25])

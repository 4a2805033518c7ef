"""The coordinator's round loop with an external oracle, without Ray: the actor's own class runs
in-process with the scoring pass and the learner replaced by deterministic stand-ins, and a new
coordinator for every resume, as a new `clactive run --resume` process would start.

What it checks is the wiring the Ray tests check end to end (tests/integration/test_oracle.py):
a round paused for labels and resumed makes the same choices as an unbroken simulated-oracle run.
"""
import hashlib
from dataclasses import asdict

import numpy as np
import pytest
import ray

import actors.coordinator
from pipeline.acquisition import hashed_uniform, top_k
from pipeline.data import get_source, prepare_dataset
from pipeline.data.pool import split_files
from pipeline.oracle import LabelRequests, simulate_answers
from pipeline.run_store import RunStore
from tests.helpers import tiny_config, write_fashion_like

Coordinator = actors.coordinator.Coordinator.__ray_metadata__.modified_class  # the plain class under @ray.remote


@pytest.fixture
def no_ray(monkeypatch, tmp_path):
    """Stand-ins for the scoring pass and the learner; Ray itself may not start (the session's cluster
    may already be up when the whole suite runs, so this guards ray.init rather than asking is_initialized)."""
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started"))
    trained = []

    class Scorers:
        def __init__(self, config, data, model_name, hook=None):
            self.pool_size = data.pool_size

        def select(self, weights, labelled_ids, k, seed, hook=None, pool=None):
            ids = np.arange(self.pool_size, dtype=np.int64)
            ids = ids[~np.isin(ids, labelled_ids)]
            salt = int.from_bytes(hashlib.sha256(weights).digest()[:4], "big")  # the choice depends on the weights
            chosen, _ = top_k(ids, hashed_uniform(ids, seed + salt), k)
            return chosen, {"score": 0.0, "select": 0.0, "score_compute": 0.0, "candidates": len(ids), "redone": 0}

    def hints(config, data, model_name, weights, pool_ids, images, seed):
        return {"predicted_label": pool_ids % 10, "predicted_prob": np.full(len(pool_ids), 0.5),
                "score": np.linspace(1, 0, len(pool_ids))}

    def train(self, plan, labelled_ids, labels, images, seed):
        trained.append((plan.train_ids.tolist(), plan.steps, seed))
        weights = hashlib.sha256(plan.train_ids.tobytes() + labels.tobytes() + (self.weights or b"")).digest()
        return {"checkpoint": weights, "steps": plan.steps, "test_acc": 0.5, "loss": 1.0, "train_s": 0.0,
                "eval_s": 0.0, "class_correct": [1] * 10, "class_total": [2] * 10, "device": "cpu"}, 0.0

    monkeypatch.setattr(actors.coordinator, "ScorerPool", Scorers)
    monkeypatch.setattr(actors.coordinator, "label_hints", hints)
    monkeypatch.setattr(Coordinator, "_train", train)
    monkeypatch.setattr(Coordinator, "_start_learner", lambda self: None)
    data_dir = write_fashion_like(tmp_path / "raw")
    config = tiny_config(data_dir, tmp_path)
    data = prepare_dataset(get_source("fashion_mnist", data_dir), config.data.cache_dir, config.data.shard_rows)
    return data_dir, data, trained


def start(config, data, accept_partial=False):
    if not RunStore(config.run_dir).holds_run():
        RunStore.create(config.run_dir, config)
    return Coordinator(config.to_dict(), asdict(data), config.run_dir, accept_partial=accept_partial)


def end_state(run_dir):
    store = RunStore(run_dir)
    ids, labels, _ = store.load_labels()
    last = store.load_round_state(store.committed_rounds()[-1])
    return ids.tolist(), labels.tolist(), last["rng"], {k: v.tolist() for k, v in last["strategy"].items()}


def test_a_run_paused_for_labels_every_round_makes_the_simulated_runs_choices(no_ray, tmp_path):
    data_dir, data, trained = no_ray
    simulated = tiny_config(data_dir, tmp_path, f"run_dir={tmp_path / 'simulated'}")
    coordinator = start(simulated, data)
    for r in range(3):
        assert "waiting" not in coordinator.run_round(r)
    simulated_training = list(trained)
    trained.clear()

    external = tiny_config(data_dir, tmp_path, f"run_dir={tmp_path / 'external'}", "oracle=external")
    store = RunStore(external.run_dir)
    for r, size in enumerate([40, 30, 30]):
        assert start(external, data).run_round(r) == {"round": r, "waiting": size, "requested": size}
        assert start(external, data).run_round(r)["waiting"] == size      # asked again: the same request
        simulate_answers(store, split_files(data.split_dir("pool")), data.image_shape)
        record = start(external, data).run_round(r)                         # a new process resumes the round
        assert (record["requested"], record["answered"], record["acquired"]) == (size, size, size)

    assert end_state(external.run_dir) == end_state(simulated.run_dir)    # labels, order, rng, replay memory
    assert trained == simulated_training                                  # every update saw the same plan
    assert [r["candidates"] for r in store.records()] == [r["candidates"] for r in RunStore(simulated.run_dir).records()]
    assert LabelRequests(store).open() is None and LabelRequests(store).rounds() == [0, 1, 2]


def test_accept_partial_labels_the_answered_ids_in_selection_order(no_ray, tmp_path):
    data_dir, data, _ = no_ray
    config = tiny_config(data_dir, tmp_path, "oracle=external")
    store = RunStore(config.run_dir)
    assert start(config, data).run_round(0)["waiting"] == 40
    simulate_answers(store, split_files(data.split_dir("pool")), data.image_shape, count=25)
    assert start(config, data).run_round(0) == {"round": 0, "waiting": 15, "requested": 40}  # not without the flag
    record = start(config, data, accept_partial=True).run_round(0)
    assert (record["requested"], record["answered"], record["labelled"]) == (40, 25, 25)
    asked = LabelRequests(store).get(0).pool_ids
    np.testing.assert_array_equal(store.load_labels()[0], asked[:25])

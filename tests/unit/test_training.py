import numpy as np
import torch

from pipeline.config.run_config import ModelConfig
from pipeline.update.models import MODELS, create_model
from pipeline.update.training import checkpoint_bytes, load_weights, make_optimizer, predict, train_steps
from tests.helpers import learnable_images


def data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    return torch.from_numpy(learnable_images(labels, rng)[:, None]), torch.from_numpy(labels)


def accuracy(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, mean, std, device: torch.device
) -> float:
    """The share of `images` the model labels right (NaN for none): how a test sees that it learned."""
    probs = predict(model, images, mean=mean, std=std, device=device)
    return float((probs.argmax(axis=1) == labels.numpy()).mean()) if len(labels) else float("nan")


class CountingSGD(torch.optim.SGD):
    steps = 0

    def step(self, closure=None):
        CountingSGD.steps += 1
        return super().step(closure)


def test_train_steps_takes_exactly_the_asked_steps_whatever_the_data_size():
    for n in (20, 500):
        images, labels = data(n)
        model = create_model("small_cnn", 1, 10)
        CountingSGD.steps = 0
        optimizer = CountingSGD(model.parameters(), lr=0.1)
        train_steps(
            model,
            optimizer,
            images,
            labels,
            steps=13,
            batch_size=32,
            lr=0.1,
            mean=0.2,
            std=0.3,
            generator=torch.Generator().manual_seed(0),
            device=torch.device("cpu"),
        )
        assert CountingSGD.steps == 13


def test_a_model_learns_the_synthetic_classes():
    torch.manual_seed(0)
    images, labels = data(400)
    model = create_model("small_cnn", 1, 10)
    optimizer = make_optimizer(model, ModelConfig(), lr=ModelConfig().lr)
    train_steps(
        model,
        optimizer,
        images,
        labels,
        steps=120,
        batch_size=32,
        lr=0.1,
        mean=0.2,
        std=0.3,
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
    )
    test_images, test_labels = data(200, seed=1)
    assert accuracy(model, test_images, test_labels, mean=0.2, std=0.3, device=torch.device("cpu")) > 0.9


def test_every_model_maps_its_inputs_to_logits_and_embeddings():
    pixels, _ = data(8)
    tokens = torch.randint(0, 1000, (8, 1, 1, 12), dtype=torch.int32)
    for name in MODELS.names():
        model = create_model(name, 1, 10)
        images = tokens if MODELS.tag(name, "reads") == "tokens" else pixels
        probs = predict(model, images, mean=0.2, std=0.3, device=torch.device("cpu"))
        assert probs.shape == (8, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)
        emb = predict(model, images, mean=0.2, std=0.3, device=torch.device("cpu"), output="embeddings")
        assert emb.shape[0] == 8 and emb.ndim == 2
        # one forward pass for both (Cluster-Margin's shortlist): the same as the two passes
        both = predict(model, images, mean=0.2, std=0.3, device=torch.device("cpu"), output="probs+embeddings")
        np.testing.assert_allclose(both[0], probs, atol=1e-5)
        np.testing.assert_allclose(both[1], emb, atol=1e-5)


def test_weights_round_trip():
    images, _ = data(8)
    a, b = create_model("small_cnn", 1, 10), create_model("small_cnn", 1, 10)
    load_weights(b, checkpoint_bytes(a))
    cpu = torch.device("cpu")
    np.testing.assert_array_equal(
        predict(a, images, mean=0, std=1, device=cpu), predict(b, images, mean=0, std=1, device=cpu)
    )


def test_batches_are_always_full_and_cover_each_epoch():
    from pipeline.update.training import full_batches

    batches = full_batches(10, 4, torch.Generator().manual_seed(0))
    first = [next(batches) for _ in range(5)]  # 20 positions = two epochs of 10
    assert all(len(b) == 4 for b in first)
    seen = torch.cat(first).tolist()
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert len(next(full_batches(3, 8, torch.Generator()))) == 3

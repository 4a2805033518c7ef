"""The paper's image models, training-time augmentation, per-channel normalisation, --dataset."""

import numpy as np
import pytest
import torch

from pipeline.cli import main
from pipeline.config.run_config import DataConfig, load_config
from pipeline.data import resolve_augment
from pipeline.errors import ConfigError
from pipeline.loop.preflight import check_names
from pipeline.update.augment import augment_batch, make_augment
from pipeline.update.models import create_model, preact_resnet
from pipeline.update.training import make_optimizer, predict, to_input, train_steps


@pytest.mark.parametrize(
    "name, params, dim",
    [
        ("preact_resnet20", 0.27e6, 64),
        ("preact_resnet56", 0.86e6, 64),
        ("preact_resnet164", 1.70e6, 256),
        ("resnet18", 11.2e6, 512),  # resnet50 (23.5M) is the same wrapper; building it takes seconds here
    ],
)
def test_image_models_have_the_published_sizes_and_embed_their_pooled_features(name, params, dim):
    torch.manual_seed(0)
    model = create_model(name, in_channels=3, num_classes=10).eval()
    assert abs(sum(p.numel() for p in model.parameters()) - params) / params < 0.02
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert model(x).shape == (2, 10) and model.embed(x).shape == (2, dim)


def test_preact_depths_must_fit_the_block_kind():
    with pytest.raises(ConfigError, match="depth 21 is not 6n\\+2"):
        preact_resnet(3, 10, depth=21)
    with pytest.raises(ConfigError, match="depth 58 is not 9n\\+2"):
        preact_resnet(3, 10, depth=58, bottleneck=True)


def test_crop_flip_keeps_shape_and_dtype_draws_per_image_and_repeats_with_the_seed():
    images = torch.arange(8 * 3 * 32 * 32, dtype=torch.int64).remainder(251).to(torch.uint8).view(8, 3, 32, 32)
    transform = make_augment("crop_flip", (3, 32, 32))
    first, again = augment_batch(transform, images, seed=5), augment_batch(transform, images, seed=5)
    assert first.shape == images.shape and first.dtype == torch.uint8
    assert torch.equal(first, again) and not torch.equal(first, augment_batch(transform, images, seed=6))
    changed = [not torch.equal(first[i], images[i]) for i in range(8)]
    assert sum(changed) >= 6  # a crop offset of (4, 4) with no flip is 1 draw in 162
    assert make_augment("none", (3, 32, 32)) is None
    assert make_augment("resized_crop_flip", (3, 12, 12))(images[0]).shape == (3, 12, 12)


def test_auto_augmentation_is_the_sources_default():
    assert resolve_augment(DataConfig(dataset="cifar10")) == "crop_flip"
    assert resolve_augment(DataConfig(dataset="cifar100")) == "crop_flip"
    assert resolve_augment(DataConfig(dataset="imagefolder")) == "resized_crop_flip"
    assert resolve_augment(DataConfig(dataset="fashion_mnist")) == "none"
    assert resolve_augment(DataConfig(dataset="cifar10", augment="none")) == "none"
    with pytest.raises(ConfigError, match="unknown data.augment 'mixup'"):
        check_names(load_config(None, ["data.augment=mixup"]))
    with pytest.raises(ConfigError, match=r"data.image_shape = \[3, 32\]"):
        load_config(None, ["data.image_shape=[3, 32]"])


def test_per_channel_statistics_normalise_each_channel():
    images = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    x = to_input(images, (0.5, 0.0, 1.0), (0.5, 1.0, 0.25))
    assert x[0, :, 0, 0].tolist() == [1.0, 1.0, 0.0]
    assert torch.equal(to_input(images, 0.5, 0.5), torch.ones(1, 3, 2, 2))


def test_augmented_training_takes_its_steps_and_scoring_stays_deterministic():
    torch.manual_seed(0)
    model = create_model("small_cnn", 3, 4)
    images = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8)
    labels = torch.arange(16) % 4
    stats = dict(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = train_steps(
        model,
        make_optimizer(model, load_config().proxy, lr=0.05),
        images,
        labels,
        steps=3,
        batch_size=8,
        lr=0.05,
        generator=torch.Generator().manual_seed(0),
        device=torch.device("cpu"),
        augment="crop_flip",
        **stats,
    )
    assert out["steps"] == 3 and np.isfinite(out["loss"])
    first = predict(model, images, device=torch.device("cpu"), **stats)
    np.testing.assert_array_equal(first, predict(model, images, device=torch.device("cpu"), **stats))


def test_run_with_dataset_cifar10_names_the_missing_batch_before_ray_starts(tmp_path, capsys):
    code = main(
        [
            "run",
            "--dataset",
            "cifar10",
            "--data-dir",
            str(tmp_path),
            "--run-dir",
            str(tmp_path / "run"),
            "--set",
            f"data.cache_dir={tmp_path / 'cache'}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "cifar10: missing data file" in err and "data_batch_1" in err
    assert len(err.strip().splitlines()) == 1

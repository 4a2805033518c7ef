"""Training-time augmentation, by name: torchvision v2 transforms on uint8 (C, H, W) tensors.

Applied by `pipeline.update.training.train_steps` to each training batch before normalisation; scoring
and evaluation never augment. Each source names its default (`Source.default_augment`), which
`data.augment: auto` picks.

    none               no augmentation (Fashion-MNIST's default)
    flip               random horizontal flip
    crop_flip          random crop after 4-pixel zero padding + horizontal flip (the paper's CIFAR)
    resized_crop_flip  random resized crop back to the stored size + horizontal flip (ImageNet style)

The random draws come from a seed the caller passes per batch, not from torch's global state, so
an update redone after a worker restart sees the same augmented batches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline.registry import Registry

CROP_PADDING = 4

Transform = Callable[[torch.Tensor], torch.Tensor]
# name -> (image size (H, W) -> the per-image transform, or None for none)
AUGMENTS: Registry[Callable[[tuple[int, ...]], Transform | None]] = Registry("data.augment")


@AUGMENTS.register("none")
def _none(size: tuple[int, ...]) -> Transform | None:
    return None


@AUGMENTS.register("flip")
def _flip(size: tuple[int, ...]) -> Transform | None:
    from torchvision.transforms import v2

    return v2.RandomHorizontalFlip()


@AUGMENTS.register("crop_flip")
def _crop_flip(size: tuple[int, ...]) -> Transform | None:
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomCrop(size, padding=CROP_PADDING), v2.RandomHorizontalFlip()])


@AUGMENTS.register("resized_crop_flip")
def _resized_crop_flip(size: tuple[int, ...]) -> Transform | None:
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])


def make_augment(name: str, image_shape: tuple[int, ...]) -> Transform | None:
    """A per-image transform uint8 (C, H, W) -> uint8 (C, H, W), or None for `none`."""
    return AUGMENTS.get(name)(tuple(image_shape[1:]))


def augment_batch(transform: Transform, images: torch.Tensor, seed: int) -> torch.Tensor:
    """uint8 (B, C, H, W) -> uint8 (B, C, H, W), each image with its own random draw.

    v2 transforms given a whole batch draw one set of parameters for all of it, hence the loop.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.stack([transform(image) for image in images])

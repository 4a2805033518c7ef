"""Plain torch: train a model for a number of steps, evaluate it, score with it.

No Ray here; actors/train_loop.py runs these inside a Ray Train worker and actors/scorer.py
inside a Ray Data actor, and benchmarks call them directly.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, cast, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config.run_config import ModelConfig
from pipeline.update.augment import augment_batch, make_augment
from pipeline.update.models import Classifier

Stat = float | Sequence[float]  # one value for every channel, or one per channel


def to_input(images: torch.Tensor, mean: Stat, std: Stat) -> torch.Tensor:
    """uint8 (B, C, H, W) pixels -> normalised float32 (B, C, H, W); int32 token ids (B, 1, 1, L)
    -> int64, which embedding layers index with."""
    if images.dtype != torch.uint8:
        return images.long()
    x = images.float() / 255.0
    return (x - _per_channel(mean, x)) / _per_channel(std, x)


def _per_channel(stat: Stat, x: torch.Tensor) -> float | torch.Tensor:
    """One value, or one per channel shaped (1, C, 1, 1) to broadcast over a batch."""
    if isinstance(stat, (int, float)):
        return stat
    return torch.as_tensor(stat, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)


def make_optimizer(model: nn.Module, model_config: ModelConfig, lr: float) -> torch.optim.Optimizer:
    """SGD with the model's momentum and weight decay. `lr` is the plan's peak: train_steps' one-cycle
    schedule sets every step's rate from it (an UpdatePlan carries the one learning rate of an update)."""
    return torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=model_config.momentum,
        weight_decay=model_config.weight_decay,
        nesterov=model_config.momentum > 0,
    )


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    mean: Stat,
    std: Stat,
    generator: torch.Generator,
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
    augment: str = "none",
    on_step: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Exactly `steps` optimizer steps over shuffled epochs of (images, labels); `on_step(steps taken)`
    after each (progress reports).

    Returns {"loss": mean training loss, "steps": optimizer steps taken}.

    A fresh one-cycle schedule peaking at `lr` spans the steps. The global batch is
    `batch_size`; with several workers each takes its slice of every batch (the same
    generator seed on every worker gives the same batches), so the number of optimizer steps
    does not depend on the number of workers.

    `augment` names a pipeline.update.augment transform applied to every training batch (on the CPU,
    before normalisation); its draws are seeded from `generator`'s seed, the step and `rank`.
    """
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    transform = make_augment(augment, tuple(images.shape[1:]))
    augment_seed = generator.initial_seed() * 1_000_003 + rank
    model.train()
    total_loss, taken = 0.0, 0
    for batch in full_batches(len(labels), batch_size, generator):
        if taken == steps:
            break
        batch = batch[rank::world_size]
        pixels = images[batch]
        if transform is not None:
            pixels = augment_batch(transform, pixels, seed=(augment_seed + 7919 * taken) % 2**63)
        x = to_input(pixels.to(device, non_blocking=True), mean, std)
        y = labels[batch].to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item()
        taken += 1
        if on_step is not None:
            on_step(taken)
    return {"loss": total_loss / max(taken, 1), "steps": taken}


def full_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless batches of min(batch_size, n) positions over shuffled epochs.

    An epoch's short tail is topped up from the next epoch's shuffle, so every batch is full:
    no worker of a data-parallel group ever gets an empty slice.
    """
    size = min(batch_size, n)
    order, cursor = torch.randperm(n, generator=generator), 0
    while True:
        parts, need = [], size
        while need:
            if cursor == n:
                order, cursor = torch.randperm(n, generator=generator), 0
            part = order[cursor : cursor + need]
            cursor += len(part)
            need -= len(part)
            parts.append(part)
        yield torch.cat(parts)


@overload
def predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mean: Stat,
    std: Stat,
    device: torch.device,
    output: Literal["probs", "embeddings"] = "probs",
    batch_size: int = 1024,
) -> np.ndarray: ...


@overload
def predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mean: Stat,
    std: Stat,
    device: torch.device,
    output: Literal["probs+embeddings"],
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]: ...


@overload
def predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mean: Stat,
    std: Stat,
    device: torch.device,
    output: str,
    batch_size: int = 1024,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]: ...


@torch.inference_mode()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    mean: Stat,
    std: Stat,
    device: torch.device,
    output: str = "probs",
    batch_size: int = 1024,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """uint8 (N, C, H, W) -> softmax probs (N, K), embeddings (N, D), or both ("probs+embeddings",
    from one forward pass: every model is a head over `embed`), float32 numpy."""
    model.eval()
    prob_parts: list[torch.Tensor] = []
    embedding_parts: list[torch.Tensor] = []
    classifier = cast(Classifier, model)  # every registered model is one: a head over `embed`
    for start in range(0, len(images), batch_size):
        x = to_input(images[start : start + batch_size].to(device), mean, std)
        if output == "probs":
            prob_parts.append(torch.softmax(model(x), dim=1).float().cpu())
            continue
        emb = classifier.embed(x)
        embedding_parts.append(emb.float().cpu())
        if output == "probs+embeddings":
            prob_parts.append(torch.softmax(classifier.head(emb), dim=1).float().cpu())
    empty = np.empty((0, 0), dtype=np.float32)
    probs = torch.cat(prob_parts).numpy() if prob_parts else empty
    embeddings = torch.cat(embedding_parts).numpy() if embedding_parts else empty
    if output == "probs":
        return probs
    return embeddings if output == "embeddings" else (probs, embeddings)


def checkpoint_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> bytes:
    """The model's weights and, for a warm start to continue exactly, its optimizer's state."""
    buffer = io.BytesIO()
    torch.save(
        {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
        },
        buffer,
    )
    return buffer.getvalue()


def load_weights(model: nn.Module, checkpoint: bytes) -> nn.Module:
    model.load_state_dict(_load(checkpoint)["model"])
    return model


def load_optimizer(optimizer: torch.optim.Optimizer, checkpoint: bytes) -> None:
    state = _load(checkpoint)["optimizer"]
    if state is not None:
        optimizer.load_state_dict(state)


def _load(checkpoint: bytes) -> dict:
    return torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=True)


def torch_threads(share: int = 1) -> int:
    """Intra-op threads for a process that shares the machine's cores with `share - 1` others."""
    return max(1, (os.cpu_count() or 1) // max(share, 1))

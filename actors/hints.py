"""The selection model's guesses for annotators (the external oracle's requests), computed in the
calling process on the requested images only, so the scoring pass stays as it is."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.config.run_config import RunConfig
from pipeline.data import PreparedData
from pipeline.loop.preflight import acquisition_for
from pipeline.update.models import create_model
from pipeline.update.training import load_weights, predict


def label_hints(
    config: RunConfig,
    data: PreparedData,
    model_name: str,
    weights: bytes,
    pool_ids: np.ndarray,
    images: np.ndarray,
    seed: int,
) -> dict[str, np.ndarray]:
    """For annotators, per requested example: the selection model's predicted label, its
    probability, and the acquisition score (NaN where the acquisition scores sets, not examples:
    k_center). Recomputed in this process on the requested images only, with the weights and seed
    that scored the pool; used by the external oracle alone, so the scoring pass stays as it is.

    pool_ids (n,), images (n, C, H, W) uint8 pixels or int32 token ids -> {name: (n,)}.
    """
    model = load_weights(create_model(model_name, data.image_shape[0], data.num_classes), weights)
    probs = predict(
        model, torch.from_numpy(np.ascontiguousarray(images)), mean=data.mean, std=data.std, device=torch.device("cpu")
    )  # (n, K)
    return {
        "predicted_label": probs.argmax(axis=1),
        "predicted_prob": probs.max(axis=1).astype(np.float64),
        "score": acquisition_for(config).hint_scores(probs, pool_ids, seed),
    }

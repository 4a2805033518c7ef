"""The selection model inside a scoring actor (actors.scorer.Scorer): built once on the actor's device,
given each pass's weights, run on decoded batches.

torch is imported here, in the scoring actors' processes only: the coordinator that starts them
never loads it (seconds of CPU and a few hundred MB).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch

from pipeline.data import PreparedData
from pipeline.selection.collector import ModelOutput
from pipeline.update.models import create_model
from pipeline.update.training import load_weights, predict, torch_threads


class ScoringModel:
    def __init__(self, model_name: str, data: PreparedData, share: int, gpu: bool):
        """`share`: how many scoring actors share the machine's cores (each takes its part as threads);
        `gpu`: whether Ray gave the actor a GPU (logical GPUs alone never mean CUDA: torch must see one)."""
        self.device = torch.device("cuda" if gpu and torch.cuda.is_available() else "cpu")
        torch.set_num_threads(torch_threads(share))
        self.data = data
        self.model = create_model(model_name, data.image_shape[0], data.num_classes).to(self.device)

    def load(self, weights: bytes) -> None:
        load_weights(self.model, weights).eval()

    def output(self, images: np.ndarray, needs: str) -> ModelOutput:
        """The output `needs` names ("probs", "embeddings", ...) for uint8 images (N, C, H, W)."""
        mean, std = self.data.mean, self.data.std
        return predict(self.model, torch.from_numpy(images), mean=mean, std=std, device=self.device, output=needs)

    def embeddings(self, images: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, self.output(images, "embeddings"))

"""Small datasets in the real on-disk formats, and configs sized for tests."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from pipeline.config import load_config

IDX_NAMES = {
    "pool": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic (0, 0, 0x08, ndim), big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def learnable_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 images whose class is a bright 7x7 patch at one of 10 places, plus noise and jitter."""
    images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 4)
        r0, c0 = 2 + 7 * row + rng.integers(-1, 2), 1 + 7 * col + rng.integers(-1, 2)
        images[i, max(r0, 0):r0 + 6, max(c0, 0):c0 + 6] = rng.integers(170, 256)
    return images


def write_fashion_like(directory: Path, pool: int = 400, test: int = 100, seed: int = 0) -> Path:
    """The four Fashion-MNIST IDX gzip files, with `pool` training and `test` test images."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("pool", pool), ("test", test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        images_name, labels_name = IDX_NAMES[split]
        (directory / images_name).write_bytes(gzip.compress(idx_bytes(learnable_images(labels, rng))))
        (directory / labels_name).write_bytes(gzip.compress(idx_bytes(labels)))
    return directory


def tiny_overrides(data_dir: Path, work_dir: Path) -> list[str]:
    """--set overrides for a run that takes seconds: counts, not fractions, and few steps."""
    return [
        f"data.data_dir={data_dir}", f"data.cache_dir={work_dir / 'cache'}", "data.shard_rows=150",
        f"run_dir={work_dir / 'run'}",
        "schedule.initial=40", "schedule.round_ends=[70, 100]",
        "proxy.epochs=3", "proxy.batch_size=32",
        "target.name=small_cnn", "target.epochs=2", "target.batch_size=32",
        "update.steps=7", "scoring.batch_size=64",
    ]


def tiny_config(data_dir: Path, work_dir: Path, *extra: str):
    return load_config(None, tiny_overrides(data_dir, work_dir) + list(extra))

"""Fashion-MNIST (and MNIST-layout) IDX files, gzip-compressed or plain."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.data.base import SOURCES, Source
from pipeline.errors import DataError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
FILES = {
    "pool": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@SOURCES.register("fashion_mnist")
class FashionMNIST(Source):
    num_classes = 10
    image_shape = (1, 28, 28)
    mean, std = 0.2860, 0.3530

    def files(self) -> list[Path]:
        return [self._path(name) for pair in FILES.values() for name in pair]

    def _path(self, gz_name: str) -> Path:
        gz = self.data_dir / gz_name
        plain = self.data_dir / gz_name[: -len(".gz")]
        return plain if not gz.exists() and plain.exists() else gz

    def read_split(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        images_name, labels_name = FILES[split]
        images = read_idx(self._path(images_name), IMAGES_MAGIC)
        labels = read_idx(self._path(labels_name), LABELS_MAGIC)
        if images.shape[1:] != self.image_shape[1:]:
            raise DataError(
                f"{self._path(images_name)}: images are {images.shape[1]}x{images.shape[2]}, "
                f"expected {self.image_shape[1]}x{self.image_shape[2]}; use the Fashion-MNIST files"
            )
        if len(images) != len(labels):
            raise DataError(
                f"{self._path(images_name)} holds {len(images)} images but {self._path(labels_name)} "
                f"holds {len(labels)} labels; use matching files"
            )
        if len(labels) and labels.max() >= self.num_classes:
            raise DataError(
                f"{self._path(labels_name)}: label {labels.max()} is outside 0..{self.num_classes - 1}; "
                "use the Fashion-MNIST label file"
            )
        yield images[:, None, :, :], labels.astype(np.int64)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes -> array of its declared shape."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"missing data file {path}; pass the directory holding it with --data-dir") from None
    except (EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path} is not a readable gzip file ({exc}); it may be truncated: reinstall or re-copy it"
        ) from None
    if len(raw) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes); re-copy it")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(
            f"{path} has IDX magic {found}, expected {magic}: it is not the "
            f"{'image' if magic == IMAGES_MAGIC else 'label'} file this name promises"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path} holds {len(raw)} bytes but its header {shape} promises {expected}; "
            "the file is truncated or corrupt: re-copy it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)

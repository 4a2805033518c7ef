"""CIFAR-10 and CIFAR-100 in the official "python version" pickle layout.

    cifar-10-batches-py/   data_batch_1 ... data_batch_5, test_batch, batches.meta
    cifar-100-python/      train, test, meta

Each batch file is a pickled dict with bytes keys: b'data' uint8 (N, 3072) holding the 1024 red,
then 1024 green, then 1024 blue pixels of each 32x32 image row-major (so it reshapes straight to
(N, 3, 32, 32)), b'labels' (CIFAR-10) or b'fine_labels' (CIFAR-100) a list of N ints, plus
b'batch_label' and b'filenames'. `--data-dir` may name the layout directory or its parent.

Pool ids follow the files: data_batch_1 holds ids 0..9999, data_batch_2 10000..19999, and so on.
The files are unpickled with an unpickler that admits only the numpy arrays they hold: a pickle
can otherwise run arbitrary code.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.data.base import SOURCES, Source
from pipeline.errors import DataError

PIXELS = 3 * 32 * 32

# What a pickled numpy array refers to (numpy 2 names numpy.core as numpy._core), and how
# Python 3 writes bytes at protocol 2 (_codecs.encode of a latin-1 str).
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_batch(path: Path) -> dict:
    """One official batch file -> its dict (bytes keys), or a one-line DataError naming the file."""
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(io.BytesIO(f.read()), encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"missing data file {path}; pass the directory holding it with --data-dir") from None
    except Exception as exc:  # unpickling raises many types for a damaged file
        raise DataError(
            f"{path} is not a readable CIFAR pickle ({type(exc).__name__}: {exc}); "
            "re-extract it from the official python-version archive"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(
            f"{path} holds a {type(batch).__name__}, not the dict of a CIFAR batch; "
            "re-extract it from the official python-version archive"
        )
    return batch


class _Cifar(Source):
    layout_dir: str  # the directory the official archive extracts to
    splits: dict[str, tuple[str, ...]]
    meta_file: str
    names_key: bytes  # class names in the meta file
    label_key: bytes
    image_shape = (3, 32, 32)
    default_augment = "crop_flip"

    def _root(self) -> Path:
        inner = self.data_dir / self.layout_dir
        return inner if inner.is_dir() else self.data_dir

    def files(self) -> list[Path]:
        root = self._root()
        return [root / name for names in self.splits.values() for name in names] + [root / self.meta_file]

    def check(self) -> None:
        super().check()
        meta = self._root() / self.meta_file
        names = load_batch(meta).get(self.names_key)
        if not isinstance(names, list) or len(names) != self.num_classes:
            found = "no" if names is None else len(names)
            raise DataError(
                f"{meta} lists {found} {self.names_key.decode()}, expected {self.num_classes}: "
                f"it is not the {self.name} meta file"
            )

    def read_split(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for name in self.splits[split]:
            yield self._read_batch(self._root() / name)

    def _read_batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        batch = load_batch(path)
        for key in (b"data", self.label_key):
            if key not in batch:
                raise DataError(
                    f"{path} has no {key!r} entry (keys: {sorted(k for k in batch)}); "
                    f"it is not a {self.name} batch file"
                )
        data, labels = batch[b"data"], batch[self.label_key]
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
            described = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise DataError(
                f"{path}: b'data' is {described}, expected uint8 (N, {PIXELS}); it is not a {self.name} batch file"
            )
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != (len(data),):
            raise DataError(f"{path} holds {len(data)} images but {labels.size} labels; re-extract the file")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            bad = labels.min() if labels.min() < 0 else labels.max()
            raise DataError(
                f"{path}: label {bad} is outside 0..{self.num_classes - 1}; it is not a {self.name} batch file"
            )
        return data.reshape(len(data), *self.image_shape), labels


@SOURCES.register("cifar10")
class Cifar10(_Cifar):
    layout_dir = "cifar-10-batches-py"
    splits = {"pool": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
    meta_file, names_key, label_key = "batches.meta", b"label_names", b"labels"
    num_classes = 10
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


@SOURCES.register("cifar100")
class Cifar100(_Cifar):
    layout_dir = "cifar-100-python"
    splits = {"pool": ("train",), "test": ("test",)}
    meta_file, names_key, label_key = "meta", b"fine_label_names", b"fine_labels"
    num_classes = 100
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

"""An ImageNet-style tree of image files, one folder per class.

    DATA_DIR/train/<class>/*.JPEG    the pool
    DATA_DIR/val/<class>/*           the test split (classes: a subset of train's)

Class index = position of the folder name in the sorted list of train's class folders. Pool ids
are positions in the sorted list of relative paths, so they are stable, and a skipped corrupt
image leaves every other id unchanged. Files whose suffix is not an image suffix are ignored.

Every image is decoded with torchvision to RGB, its short side resized to `data.image_size`, and
centre-cropped to a square of that size: uint8 (3, S, S). `decode_batch` does that for a batch
of paths and is a pure function; `read_split` applies it through the ParallelMap a run gives it
(the Ray side's is Ray Data's `map_batches`), so a large tree decodes on every core of the
cluster, and in-process otherwise (small trees, tests). An undecodable image stops preparation
with its path, unless `data.skip_corrupt: true`, which lists each skipped image on stderr.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.base import SOURCES, Source
from pipeline.errors import DataError

SPLIT_DIRS = {"pool": "train", "test": "val"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif"}
CHUNK_ROWS = 1024  # images per chunk handed to the Parquet writer


def decode_image(path: str, size: int):
    """One file -> uint8 tensor (3, size, size): RGB, short side resized to `size`, centre crop."""
    from torchvision.io import read_file

    return decode_encoded(read_file(path), size)


def decode_encoded(encoded, size: int):
    """Encoded image bytes (a uint8 tensor) -> uint8 tensor (3, size, size), as decode_image."""
    import torch
    from torchvision.io import ImageReadMode
    from torchvision.io import decode_image as tv_decode
    from torchvision.transforms.v2 import functional as TF

    image = tv_decode(encoded, mode=ImageReadMode.RGB)  # (3, H, W) uint8
    if image.ndim == 4:  # an animated GIF: its first frame
        image = image[0]
    image = TF.resize(image, size, antialias=True)  # short side -> size
    return TF.center_crop(image, [size, size]).to(torch.uint8)


@contextmanager
def quiet_decoders():
    """torchvision 0.29 deprecates its decoders in favour of torchcodec, which this project does
    not install; they work, and one warning per image would drown the output."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning
        )
        yield


def describe_error(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def decode_batch(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """{"path": (n,) str, ...} -> the same columns plus "image" uint8 (n, 3, size, size),
    "ok" bool (n,) and "error" str (n,) ("" when ok). Never raises for a bad image: its row
    comes back with ok False, a zero image and the reason, for the caller to report or skip.
    """
    paths = [str(p) for p in batch["path"]]
    images = np.zeros((len(paths), 3, size, size), dtype=np.uint8)
    ok = np.ones(len(paths), dtype=bool)
    errors = [""] * len(paths)
    with quiet_decoders():
        for i, path in enumerate(paths):
            try:
                images[i] = decode_image(path, size).numpy()
            except Exception as exc:  # torchvision raises RuntimeError, OSError, ... for a bad file
                ok[i] = False
                errors[i] = describe_error(exc)
    return {**batch, "image": images, "ok": ok, "error": np.array(errors, dtype=object)}


@SOURCES.register("imagefolder")
class ImageFolder(Source):
    default_augment = "resized_crop_flip"
    decodes_in_parallel = True
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the usual ImageNet statistics

    def __init__(self, data_dir: Path, options=None):
        super().__init__(data_dir, options)
        self._listings: dict[str, tuple[list[str], np.ndarray]] = {}
        self._classes: list[str] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (3, self.options.image_size, self.options.image_size)

    @property
    def num_classes(self) -> int:
        return len(self.classes())

    def params(self) -> dict[str, Any]:
        return {"image_size": self.options.image_size, "skip_corrupt": self.options.skip_corrupt}

    # --- the layout ------------------------------------------------------------------------

    def classes(self) -> list[str]:
        if self._classes is None:
            self._classes = [d.name for d in self._class_dirs("pool")]
        return self._classes

    def _class_dirs(self, split: str) -> list[Path]:
        root = self.data_dir / SPLIT_DIRS[split]
        if not root.is_dir():
            raise DataError(
                f"imagefolder: missing directory {root}; --data-dir must hold "
                f"{SPLIT_DIRS['pool']}/<class>/ and {SPLIT_DIRS['test']}/<class>/ folders of images"
            )
        dirs = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: d.name)
        if not dirs:
            raise DataError(f"imagefolder: {root} holds no class folders; put each class's images in {root}/<class>/")
        return dirs

    def listing(self, split: str) -> tuple[list[str], np.ndarray]:
        """(image paths relative to DATA_DIR, sorted; their labels int64): the split's pool ids are
        positions in this list."""
        if split not in self._listings:
            index = {name: i for i, name in enumerate(self.classes())}
            paths, labels = [], []
            for folder in self._class_dirs(split):
                if folder.name not in index:
                    raise DataError(
                        f"imagefolder: class folder {folder} is not among the "
                        f"{len(index)} class folders of {self.data_dir / SPLIT_DIRS['pool']}; "
                        "remove it or add the class to train/"
                    )
                images = sorted(
                    p.relative_to(self.data_dir).as_posix()
                    for p in folder.rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                )
                if not images:
                    raise DataError(
                        f"imagefolder: class folder {folder} holds no images "
                        f"({', '.join(sorted(IMAGE_SUFFIXES))}); add its images or remove it"
                    )
                paths += images
                labels += [index[folder.name]] * len(images)
            order = np.argsort(np.array(paths, dtype=object), kind="stable")
            self._listings[split] = ([paths[i] for i in order], np.asarray(labels, dtype=np.int64)[order])
        return self._listings[split]

    def files(self) -> list[Path]:
        return [self.data_dir / p for split in SPLIT_DIRS for p in self.listing(split)[0]]

    # --- decoding ----------------------------------------------------------------------------

    def read_split(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        paths, labels = self.listing(split)
        items = {
            "id": np.arange(len(paths), dtype=np.int64),
            "label": labels,
            "path": np.array([str(self.data_dir / p) for p in paths], dtype=object),
        }
        skipped = 0
        for batch in self._decoded(items):
            bad = np.flatnonzero(~batch["ok"])
            if len(bad) and not self.options.skip_corrupt:
                i = bad[0]
                raise DataError(
                    f"imagefolder: cannot decode image {batch['path'][i]} ({batch['error'][i]}); "
                    "remove or replace it, or set data.skip_corrupt: true to skip such images"
                )
            for i in bad:
                print(
                    f"clactive: skipped corrupt image {batch['path'][i]} ({batch['error'][i]})",
                    file=sys.stderr,
                    flush=True,
                )
            skipped += len(bad)
            keep = batch["ok"]
            yield batch["image"][keep], batch["label"][keep].astype(np.int64), batch["id"][keep].astype(np.int64)
        if skipped:
            print(
                f"clactive: imagefolder {SPLIT_DIRS[split]}/: skipped {skipped} of {len(paths)} images",
                file=sys.stderr,
                flush=True,
            )

    def _decoded(self, items: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """Decoded chunks of `items`, in id order."""
        size = self.options.image_size
        if self.parallel_map is not None:
            yield from self.parallel_map(items, decode_batch, {"size": size})
            return
        for start in range(0, len(items["id"]), CHUNK_ROWS):
            yield decode_batch({k: v[start : start + CHUNK_ROWS] for k, v in items.items()}, size)

"""Small datasets in the real on-disk formats, configs sized for tests, and all-at-once references of
the streamed selections."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from pipeline.config.run_config import load_config
from pipeline.selection.k_center import k_center_from, min_sq_distances

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
        images[i, max(r0, 0) : r0 + 6, max(c0, 0) : c0 + 6] = rng.integers(170, 256)
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
        f"data.data_dir={data_dir}",
        f"data.cache_dir={work_dir / 'cache'}",
        "data.shard_rows=150",
        f"run_dir={work_dir / 'run'}",
        "schedule.initial=40",
        "schedule.round_ends=[70, 100]",
        "proxy.epochs=3",
        "proxy.batch_size=32",
        "target.name=small_cnn",
        "target.epochs=2",
        "target.batch_size=32",
        "update.steps=7",
        "scoring.batch_size=64",
    ]


def tiny_config(data_dir: Path, work_dir: Path, *extra: str):
    return load_config(None, tiny_overrides(data_dir, work_dir) + list(extra))


# --- CIFAR, ImageFolder and Parquet layouts (pipeline/data/cifar.py, image_folder.py, parquet.py) ---

CIFAR10_POOL = tuple(f"data_batch_{i}" for i in range(1, 6))


def cifar_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (N, 3072) rows as the official batches hold them: 1024 R, 1024 G, 1024 B values of a
    32x32 image; the class is a bright 8x8 patch in one of 16 places of one channel, over noise."""
    images = rng.integers(0, 80, size=(len(labels), 3, 32, 32)).astype(np.uint8)
    for i, label in enumerate(labels):
        place, channel = int(label) % 16, int(label) % 3
        row, col = divmod(place, 4)
        images[i, channel, 8 * row : 8 * row + 8, 8 * col : 8 * col + 8] = rng.integers(180, 256)
    return images.reshape(len(labels), 3072)


def write_pickle(path: Path, obj) -> None:
    import pickle

    path.write_bytes(pickle.dumps(obj, protocol=2))  # the official files are Python 2 cPickle, protocol 2


def cifar_batch(labels: np.ndarray, rng: np.random.Generator, batch_label: str, label_key: bytes) -> dict:
    """A batch dict exactly as the official files hold it: bytes keys, b'data' uint8 (N, 3072)."""
    return {
        b"batch_label": batch_label.encode(),
        label_key: [int(v) for v in labels],
        b"data": cifar_images(labels, rng),
        b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(labels))],
    }


def write_cifar10_like(directory: Path, per_batch: int = 80, test: int = 60, seed: int = 0) -> Path:
    """`directory/cifar-10-batches-py/` with five training batches of `per_batch` images, a test
    batch and batches.meta; returns `directory` (the parent, as --data-dir may be)."""
    rng = np.random.default_rng(seed)
    root = directory / "cifar-10-batches-py"
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(CIFAR10_POOL):
        labels = rng.permutation(np.arange(per_batch) % 10)
        write_pickle(root / name, cifar_batch(labels, rng, f"training batch {i + 1} of 5", b"labels"))
    write_pickle(
        root / "test_batch", cifar_batch(rng.permutation(np.arange(test) % 10), rng, "testing batch 1 of 1", b"labels")
    )
    write_pickle(
        root / "batches.meta",
        {
            b"num_cases_per_batch": per_batch,
            b"num_vis": 3072,
            b"label_names": [f"class{i}".encode() for i in range(10)],
        },
    )
    return directory


def write_cifar100_like(directory: Path, train: int = 200, test: int = 100, seed: int = 0) -> Path:
    """`directory/cifar-100-python/` with train, test and meta; returns `directory`."""
    rng = np.random.default_rng(seed)
    root = directory / "cifar-100-python"
    root.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", train), ("test", test)):
        fine = rng.permutation(np.arange(n) % 100)
        batch = cifar_batch(fine, rng, f"{name}ing batch 1 of 1", b"fine_labels")
        batch[b"coarse_labels"] = [int(v) // 5 for v in fine]
        write_pickle(root / name, batch)
    write_pickle(
        root / "meta",
        {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
    )
    return directory


def write_image_folder(
    directory: Path,
    classes=("cat", "dog", "eel"),
    per_class: dict | int = 3,
    size=(40, 30),
    suffix: str = ".JPEG",
    val_per_class: int = 2,
    seed: int = 0,
) -> Path:
    """`directory/train/<class>/*` and `directory/val/<class>/*`, RGB images written with PIL,
    each a solid colour (class index * 60, image index * 10, 200) so decoding can be checked."""
    from PIL import Image

    for split, count in (("train", per_class), ("val", val_per_class)):
        for c, name in enumerate(classes):
            folder = directory / split / name
            folder.mkdir(parents=True, exist_ok=True)
            n = count[name] if isinstance(count, dict) else count
            for i in range(n):
                Image.new("RGB", size, (60 * c, 10 * i, 200)).save(folder / f"{name}_{i:03d}{suffix}")
    return directory


# --- Amazon Review CSV layout (pipeline/data/amazon.py) ----------------------------------------

SENTIMENT_WORDS = (
    ("awful", "broken", "refund", "worst"),
    ("great", "love", "perfect", "excellent"),
    ("okay", "average", "fine", "decent"),
    ("good", "nice", "solid", "happy"),
    ("amazing", "superb", "flawless", "best"),
)
FILLER = ("the", "product", "arrived", "box", "it", "was", "and", "this", "for", "my", "kids", "a", "with")


def amazon_rows(n: int, num_classes: int, rng: np.random.Generator) -> list[tuple[int, str, str]]:
    """(label 1..K, title, text) rows whose class shows in a few class-specific words among filler,
    with the quirks of the real files: commas, doubled quotes and literal backslash-n breaks."""
    rows = []
    for i in range(n):
        label = 1 + i % num_classes
        words = list(rng.choice(FILLER, size=12)) + list(rng.choice(SENTIMENT_WORDS[label - 1], size=3))
        rng.shuffle(words)
        title = f'{SENTIMENT_WORDS[label - 1][0].title()}, "{words[0]}"'
        rows.append((label, title, " ".join(words[:8]) + "\\n" + " ".join(words[8:]) + "."))
    return rows


def write_amazon_like(directory: Path, pool: int = 200, test: int = 60, num_classes: int = 2, seed: int = 0) -> Path:
    """train.csv and test.csv as the Amazon Review datasets ship them: no header, every field quoted."""
    import csv

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.csv", pool), ("test.csv", test)):
        with open(directory / name, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(amazon_rows(n, num_classes, rng))
    return directory


# --- all-at-once references of the streamed selections (pipeline/selection) ---


def top_k(pool_ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (pool_ids, scores) of a whole pool at once, best first, ties toward the smaller id:
    a plain sort, what StreamingTopK must give however the pool is split."""
    assert k <= len(pool_ids), f"a top {k} of {len(pool_ids)} ids"
    pool_ids, scores = np.asarray(pool_ids, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    order = np.lexsort((pool_ids, -scores))[:k]
    return pool_ids[order], scores[order]


def k_center_greedy(candidate_emb: np.ndarray, labelled_emb: np.ndarray, k: int) -> np.ndarray:
    """Core-set greedy (Sener & Savarese 2018) with every labelled row at once: the reference of the
    streamed form. candidate_emb (N, D), labelled_emb (M, D) -> k positions into candidate_emb, in pick order."""
    return k_center_from(candidate_emb, min_sq_distances(candidate_emb, labelled_emb), k)

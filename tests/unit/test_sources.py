"""CIFAR pickles, ImageFolder trees and Parquet tables, generated in their exact on-disk formats."""

import io
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config.run_config import DataConfig
from pipeline.data import get_source, images_from_arrow, prepare_dataset, read_rows
from pipeline.data.image_folder import decode_batch
from pipeline.errors import DataError
from tests.helpers import write_cifar10_like, write_cifar100_like, write_image_folder, write_pickle


def prepare(name, data_dir, tmp_path, **options):
    source = get_source(name, data_dir, DataConfig(dataset=name, data_dir=str(data_dir), **options))
    return prepare_dataset(source, tmp_path / "cache", shard_rows=100)


def all_rows(prepared, split):
    table = pq.read_table(prepared.split_dir(split))
    order = np.argsort(table.column("id").to_numpy())
    images = images_from_arrow(table.column("image"), prepared.image_shape)
    return table.column("id").to_numpy()[order], images[order], table.column("label").to_numpy()[order]


def expect_one_line(error_type, match, call):
    with pytest.raises(error_type, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)


# --- CIFAR --------------------------------------------------------------------------------


def test_cifar10_pool_holds_the_five_batches_in_file_order(tmp_path):
    raw = write_cifar10_like(tmp_path / "raw", per_batch=20, test=12)
    prepared = prepare("cifar10", raw, tmp_path)
    assert prepared.sizes == {"pool": 100, "test": 12} and prepared.num_classes == 10
    assert prepared.image_shape == (3, 32, 32) and len(prepared.mean) == 3 and len(prepared.std) == 3
    batch3 = pickle.loads((raw / "cifar-10-batches-py" / "data_batch_3").read_bytes(), encoding="bytes")
    images, labels = read_rows(prepared.split_dir("pool"), np.array([40, 59]), prepared.image_shape)
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(images[0], batch3[b"data"][0].reshape(3, 32, 32))  # R plane first
    np.testing.assert_array_equal(images[1, 2], batch3[b"data"][19, 2048:].reshape(32, 32))
    assert labels.tolist() == [batch3[b"labels"][0], batch3[b"labels"][19]]
    ids, _, test_labels = all_rows(prepared, "test")
    test = pickle.loads((raw / "cifar-10-batches-py" / "test_batch").read_bytes(), encoding="bytes")
    assert ids.tolist() == list(range(12)) and test_labels.tolist() == test[b"labels"]


def test_cifar100_uses_the_fine_labels_and_accepts_the_layout_directory_itself(tmp_path):
    raw = write_cifar100_like(tmp_path / "raw", train=150, test=50)
    prepared = prepare("cifar100", raw / "cifar-100-python", tmp_path)
    assert prepared.sizes == {"pool": 150, "test": 50} and prepared.num_classes == 100
    train = pickle.loads((raw / "cifar-100-python" / "train").read_bytes(), encoding="bytes")
    ids, images, labels = all_rows(prepared, "pool")
    assert ids.tolist() == list(range(150)) and labels.tolist() == train[b"fine_labels"]
    np.testing.assert_array_equal(images.reshape(150, -1), train[b"data"])


def cifar_file(raw, name):
    return raw / "cifar-10-batches-py" / name


def rewrite(raw, name, change):
    path = cifar_file(raw, name)
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    change(batch)
    write_pickle(path, batch)


class Evil:
    def __reduce__(self):
        import os

        return os.system, ("echo pwned",)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda raw: cifar_file(raw, "data_batch_3").unlink(), r"missing data file .*data_batch_3"),
        (lambda raw: cifar_file(raw, "batches.meta").unlink(), r"missing data file .*batches.meta"),
        (
            lambda raw: cifar_file(raw, "data_batch_2").write_bytes(b"not a pickle at all"),
            r"data_batch_2 is not a readable CIFAR pickle",
        ),
        (
            lambda raw: cifar_file(raw, "data_batch_2").write_bytes(
                cifar_file(raw, "data_batch_2").read_bytes()[:3000]
            ),
            r"data_batch_2 is not a readable CIFAR pickle",
        ),
        (
            lambda raw: write_pickle(cifar_file(raw, "data_batch_1"), {b"data": Evil()}),
            r"data_batch_1 is not a readable CIFAR pickle .*refusing to load",
        ),
        (lambda raw: rewrite(raw, "data_batch_4", lambda b: b.pop(b"labels")), r"data_batch_4 has no b'labels' entry"),
        (
            lambda raw: rewrite(raw, "data_batch_4", lambda b: b.update({b"data": b[b"data"][:, :1024]})),
            r"data_batch_4: b'data' is uint8 \(20, 1024\), expected uint8 \(N, 3072\)",
        ),
        (
            lambda raw: rewrite(raw, "test_batch", lambda b: b[b"labels"].__setitem__(0, 10)),
            r"test_batch: label 10 is outside 0..9",
        ),
        (
            lambda raw: rewrite(raw, "data_batch_5", lambda b: b[b"labels"].pop()),
            r"data_batch_5 holds 20 images but 19",
        ),
        (
            lambda raw: rewrite(raw, "batches.meta", lambda b: b[b"label_names"].pop()),
            r"batches.meta lists 9 label_names, expected 10",
        ),
    ],
)
def test_bad_cifar_files_are_named_and_nothing_is_left_behind(tmp_path, damage, message):
    raw = write_cifar10_like(tmp_path / "raw", per_batch=20, test=12)
    damage(raw)
    expect_one_line(DataError, message, lambda: prepare("cifar10", raw, tmp_path))
    assert not list(tmp_path.rglob("*.parquet"))


# --- ImageFolder ----------------------------------------------------------------------------


def test_decode_batch_gives_rgb_squares_and_flags_bad_files_without_raising(tmp_path):
    from PIL import Image

    Image.new("RGB", (40, 20), (10, 120, 250)).save(tmp_path / "wide.png")
    Image.new("L", (12, 30), 77).save(tmp_path / "grey.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    out = decode_batch(
        {
            "path": np.array([str(tmp_path / n) for n in ("wide.png", "grey.png", "broken.jpg")], dtype=object),
            "id": np.arange(3),
        },
        size=16,
    )
    assert out["image"].shape == (3, 3, 16, 16) and out["image"].dtype == np.uint8
    assert out["ok"].tolist() == [True, True, False] and out["id"].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(
        out["image"][0], np.broadcast_to(np.array([10, 120, 250], np.uint8)[:, None, None], (3, 16, 16))
    )
    assert (out["image"][1] == 77).all()  # greyscale becomes three equal channels
    assert out["error"][0] == "" and out["error"][2] and (out["image"][2] == 0).all()


def test_image_folder_classes_are_sorted_folder_names_and_ids_sorted_paths(tmp_path):
    raw = write_image_folder(
        tmp_path / "raw", classes=("zebra", "ant", "moth"), per_class={"zebra": 2, "ant": 3, "moth": 1}, suffix=".png"
    )
    prepared = prepare("imagefolder", raw, tmp_path, image_size=8)
    assert prepared.sizes == {"pool": 6, "test": 6} and prepared.num_classes == 3
    assert prepared.image_shape == (3, 8, 8) and prepared.mean == (0.485, 0.456, 0.406)
    ids, images, labels = all_rows(prepared, "pool")
    # sorted relative paths: train/ant/ant_000..002, train/moth/moth_000, train/zebra/zebra_000..001
    assert ids.tolist() == list(range(6)) and labels.tolist() == [0, 0, 0, 1, 2, 2]
    assert images.dtype == np.uint8
    writer_index = [0, 1, 2, 0, 0, 1]  # the i of each file; class c written as colour (60 c, 10 i, 200)
    writer_class = [1, 1, 1, 2, 0, 0]  # the class's position in the writer's tuple
    for row, (i, c) in enumerate(zip(writer_index, writer_class)):
        np.testing.assert_array_equal(images[row, :, 0, 0], [60 * c, 10 * i, 200])


def test_image_folder_jpeg_tree_decodes_to_the_configured_size(tmp_path):
    raw = write_image_folder(tmp_path / "raw", per_class=2, size=(50, 36))
    prepared = prepare("imagefolder", raw, tmp_path, image_size=24)
    ids, images, labels = all_rows(prepared, "test")
    assert images.shape == (6, 3, 24, 24) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert np.abs(images[:, 2].astype(int) - 200).max() <= 3  # JPEG is lossy, a solid colour barely


def test_image_size_is_part_of_the_cache_key(tmp_path):
    raw = write_image_folder(tmp_path / "raw", per_class=1, val_per_class=1, suffix=".png")
    small, large = (prepare("imagefolder", raw, tmp_path, image_size=s) for s in (8, 12))
    assert small.root != large.root and large.image_shape == (3, 12, 12)


def corrupt_one(raw):
    (raw / "train" / "dog" / "dog_001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda raw: [p.unlink() for p in (raw / "train" / "dog").iterdir()],
            r"class folder .*train/dog holds no images",
        ),
        (lambda raw: (raw / "val" / "yak").mkdir(), r"class folder .*val/yak is not among the 3 class folders"),
        (lambda raw: [p.unlink() for p in (raw / "val" / "cat").iterdir()], r"class folder .*val/cat holds no images"),
        (lambda raw: __import__("shutil").rmtree(raw / "val"), r"missing directory .*val"),
        (corrupt_one, r"cannot decode image .*train/dog/dog_001.png .*data.skip_corrupt: true"),
    ],
)
def test_bad_image_folders_are_named(tmp_path, damage, message):
    raw = write_image_folder(tmp_path / "raw", per_class=2, suffix=".png")
    damage(raw)
    expect_one_line(DataError, message, lambda: prepare("imagefolder", raw, tmp_path, image_size=8))
    assert not list(tmp_path.rglob("*.parquet"))


def test_skip_corrupt_reports_the_image_and_keeps_every_other_id(tmp_path, capsys):
    raw = write_image_folder(tmp_path / "raw", per_class=2, suffix=".png")
    corrupt_one(raw)
    prepared = prepare("imagefolder", raw, tmp_path, image_size=8, skip_corrupt=True)
    assert prepared.sizes["pool"] == 5
    ids, _, labels = all_rows(prepared, "pool")
    assert ids.tolist() == [0, 1, 2, 4, 5] and labels.tolist() == [0, 0, 1, 2, 2]  # id 3 was dog_001
    err = capsys.readouterr().err
    assert "skipped corrupt image" in err and "dog_001.png" in err


# --- Parquet --------------------------------------------------------------------------------


def pixel_table(n, shape=(3, 4, 5), seed=0, ids=None):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, int(np.prod(shape))), dtype=np.uint8)
    labels = rng.integers(0, 4, size=n)
    columns = {"pixels": pa.array(list(pixels), type=pa.list_(pa.uint8())), "y": pa.array(labels, pa.int32())}
    if ids is not None:
        columns["key"] = pa.array(ids, pa.int64())
    return pa.table(columns), pixels, labels


def test_parquet_pixel_lists_keep_their_ids_labels_and_pixels(tmp_path):
    raw = tmp_path / "raw"
    (raw / "train").mkdir(parents=True)
    pool_ids = np.arange(1000, 1030)[::-1]
    table, pixels, labels = pixel_table(30, ids=pool_ids)
    pq.write_table(table.slice(0, 10), raw / "train" / "a.parquet")
    pq.write_table(table.slice(10), raw / "train" / "b.parquet")
    test, _, test_labels = pixel_table(7, seed=1)
    pq.write_table(test, raw / "test.parquet")
    prepared = prepare(
        "parquet", raw, tmp_path, feature_column="pixels", label_column="y", id_column="key", image_shape=(3, 4, 5)
    )
    assert prepared.sizes == {"pool": 30, "test": 7} and prepared.image_shape == (3, 4, 5)
    assert prepared.num_classes == max(labels.max(), test_labels.max()) + 1
    images, got = read_rows(prepared.split_dir("pool"), np.array([1029, 1000]), prepared.image_shape)
    np.testing.assert_array_equal(images.reshape(2, -1), pixels[[0, 29]])
    assert got.tolist() == [labels[0], labels[29]] and got.dtype == np.int64
    expected_mean = pixels.reshape(30, 3, -1).transpose(1, 0, 2).reshape(3, -1).mean(axis=1) / 255
    np.testing.assert_allclose(prepared.mean, expected_mean, atol=1e-9)
    ids, _, _ = all_rows(prepared, "test")
    assert ids.tolist() == list(range(7))  # no id column: row positions


def png_bytes(colour, size=(20, 10)):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_parquet_encoded_images_are_decoded_like_an_image_folder(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, n in (("train", 4), ("test", 2)):
        # the Hugging Face datasets layout: a struct of bytes and path
        images = pa.array([{"bytes": png_bytes((10 * i, 20, 30)), "path": f"{i}.png"} for i in range(n)])
        pq.write_table(pa.table({"img": images, "label": pa.array(np.arange(n) % 2)}), raw / f"{name}.parquet")
    prepared = prepare("parquet", raw, tmp_path, feature_column="img", image_size=6)
    ids, images, labels = all_rows(prepared, "pool")
    assert images.shape == (4, 3, 6, 6) and labels.tolist() == [0, 1, 0, 1]
    assert images[:, 0, 0, 0].tolist() == [0, 10, 20, 30]


def write_pool(raw, table, test=None):
    raw.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, raw / "train.parquet")
    pq.write_table(test if test is not None else table, raw / "test.parquet")


@pytest.mark.parametrize(
    "table_of, options, message",
    [
        (
            lambda: pixel_table(5)[0],
            {"label_column": "label"},
            r"train.parquet has no column 'label' \(data.label_column\)",
        ),
        (lambda: pixel_table(5)[0], {"id_column": "key"}, r"has no column 'key' \(data.id_column\)"),
        (
            lambda: pixel_table(5)[0],
            {"image_shape": None},
            r"holds pixel lists; give their shape with data.image_shape",
        ),
        (
            lambda: pixel_table(5)[0],
            {"image_shape": (3, 4, 4)},
            r"a row of 60 values, but data.image_shape \[3, 4, 4\]",
        ),
        (lambda: pixel_table(5, ids=[1, 2, 2, 3, 4])[0], {"id_column": "key"}, r"repeats id 2"),
        (
            lambda: pixel_table(5)[0].set_column(1, "y", pa.array(["a"] * 5)),
            {},
            r"column 'y' .* is string, not integers",
        ),
        (
            lambda: pa.table({"pixels": pa.array([1.0] * 3), "y": pa.array([0, 1, 2])}),
            {},
            r"column 'pixels' .* is double; it must hold encoded image bytes",
        ),
    ],
)
def test_bad_parquet_tables_are_named(tmp_path, table_of, options, message):
    write_pool(tmp_path / "raw", table_of())
    settings = {"feature_column": "pixels", "label_column": "y", "image_shape": (3, 4, 5), **options}
    expect_one_line(DataError, message, lambda: prepare("parquet", tmp_path / "raw", tmp_path, **settings))
    assert not list(tmp_path.glob("cache/**/*.parquet"))


def test_missing_parquet_split_is_named(tmp_path):
    (tmp_path / "raw").mkdir()
    pq.write_table(pixel_table(5)[0], tmp_path / "raw" / "train.parquet")
    expect_one_line(
        DataError,
        r"missing .*test.parquet \(or a .*test/ directory",
        lambda: prepare(
            "parquet", tmp_path / "raw", tmp_path, feature_column="pixels", label_column="y", image_shape=(3, 4, 5)
        ),
    )


def test_a_corrupt_encoded_image_is_named_by_id_or_skipped(tmp_path):
    images = pa.array([png_bytes((1, 2, 3)), b"garbage", png_bytes((4, 5, 6))], pa.binary())
    table = pa.table({"img": images, "label": pa.array([0, 1, 0]), "key": pa.array([7, 8, 9])})
    write_pool(tmp_path / "raw", table, test=table.slice(0, 1))
    options = dict(feature_column="img", id_column="key", image_size=4)
    expect_one_line(
        DataError,
        r"cannot decode the image of id 8 in .*train.parquet",
        lambda: prepare("parquet", tmp_path / "raw", tmp_path, **options),
    )
    prepared = prepare("parquet", tmp_path / "raw", tmp_path, skip_corrupt=True, **options)
    assert all_rows(prepared, "pool")[0].tolist() == [7, 9]

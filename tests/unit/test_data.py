import gzip

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.data import get_source, prepare_dataset, read_rows
from pipeline.errors import DataError
from tests.helpers import IDX_NAMES, idx_bytes, write_fashion_like


@pytest.fixture
def data_dir(tmp_path):
    return write_fashion_like(tmp_path / "raw", pool=250, test=60)


def test_pool_is_written_as_parquet_shards_with_stable_ids(data_dir, tmp_path):
    prepared = prepare_dataset(get_source("fashion_mnist", data_dir), tmp_path / "cache", shard_rows=100)
    assert prepared.sizes == {"pool": 250, "test": 60} and prepared.image_shape == (1, 28, 28)
    shards = sorted((tmp_path / "cache").glob("*/pool/*.parquet"))
    assert [pq.read_metadata(s).num_rows for s in shards] == [100, 100, 50]
    table = pq.read_table(shards[1])
    assert table.schema.names == ["id", "image", "label"]
    np.testing.assert_array_equal(table.column("id").to_numpy(), np.arange(100, 200))
    raw = np.frombuffer(gzip.decompress((data_dir / IDX_NAMES["pool"][0]).read_bytes())[16:], np.uint8)
    images, labels = read_rows(prepared.split_dir("pool"), np.array([199, 3]), prepared.image_shape)
    np.testing.assert_array_equal(images[0, 0], raw.reshape(250, 28, 28)[199])
    np.testing.assert_array_equal(images[1, 0], raw.reshape(250, 28, 28)[3])


def test_prepared_data_is_reused(data_dir, tmp_path):
    source = get_source("fashion_mnist", data_dir)
    first = prepare_dataset(source, tmp_path / "cache", 100)
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.parquet")}
    assert prepare_dataset(source, tmp_path / "cache", 100) == first
    assert stamp == {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.parquet")}


def corrupt(data_dir, name, data: bytes, compress=True):
    (data_dir / name).write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / IDX_NAMES["pool"][0]).unlink(), "missing data file"),
        (
            lambda d: (d / IDX_NAMES["pool"][0]).write_bytes((d / IDX_NAMES["pool"][0]).read_bytes()[:500]),
            "not a readable gzip file",
        ),
        (lambda d: corrupt(d, IDX_NAMES["pool"][0], idx_bytes(np.zeros((250, 28, 28), np.uint8))[:-10]), "truncated"),
        (
            lambda d: corrupt(d, IDX_NAMES["pool"][0], idx_bytes(np.zeros(250, np.uint8))),
            "IDX magic 2049, expected 2051",
        ),
        (lambda d: corrupt(d, IDX_NAMES["pool"][0], idx_bytes(np.zeros((250, 32, 32), np.uint8))), "images are 32x32"),
        (lambda d: corrupt(d, IDX_NAMES["pool"][1], idx_bytes(np.full(250, 12, np.uint8))), "label 12 is outside 0..9"),
        (lambda d: corrupt(d, IDX_NAMES["pool"][1], idx_bytes(np.zeros(200, np.uint8))), "holds 250 images but"),
        (
            lambda d: (
                corrupt(d, IDX_NAMES["pool"][0], idx_bytes(np.zeros((0, 28, 28), np.uint8))),
                corrupt(d, IDX_NAMES["pool"][1], idx_bytes(np.zeros(0, np.uint8))),
            ),
            "holds no examples",
        ),
    ],
)
def test_bad_files_are_named_and_nothing_is_left_behind(data_dir, tmp_path, damage, message):
    damage(data_dir)
    with pytest.raises(DataError, match=message) as caught:
        prepare_dataset(get_source("fashion_mnist", data_dir), tmp_path / "cache", 100)
    assert "\n" not in str(caught.value)
    assert not list(tmp_path.rglob("*.parquet"))


def test_uncompressed_idx_files_are_accepted(data_dir, tmp_path):
    for name in [n for pair in IDX_NAMES.values() for n in pair]:
        (data_dir / name[:-3]).write_bytes(gzip.decompress((data_dir / name).read_bytes()))
        (data_dir / name).unlink()
    assert prepare_dataset(get_source("fashion_mnist", data_dir), tmp_path / "cache", 100).pool_size == 250


def test_the_image_column_is_fixed_size_binary_and_the_format_1_list_column_still_reads():
    import pyarrow as pa

    from pipeline.data.rows import image_array, images_from_arrow

    pixels = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    tokens = np.arange(2 * 6, dtype=np.int32).reshape(2, 1, 1, 6) * 100_000
    for rows in (pixels, tokens):
        column = image_array(rows)
        assert column.type == pa.binary(rows[0].size * rows.itemsize)
        np.testing.assert_array_equal(images_from_arrow(column, rows.shape[1:]), rows)
        np.testing.assert_array_equal(images_from_arrow(column.slice(1), rows.shape[1:]), rows[1:])  # an offset
        assert images_from_arrow(column.slice(0, 0), rows.shape[1:]).shape == (0, *rows.shape[1:])
    legacy = pa.FixedSizeListArray.from_arrays(pa.array(pixels.reshape(-1)), 60)  # pool format 1
    np.testing.assert_array_equal(images_from_arrow(legacy, (3, 4, 5)), pixels)

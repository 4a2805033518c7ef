"""Dataset sources and the common Parquet pool format."""

from pipeline.data import amazon, cifar, fashion_mnist, image_folder, parquet, text_csv  # noqa: F401  register
from pipeline.data.base import (
    SOURCES,
    PreparedData,
    Source,
    get_source,
    is_prepared,
    prepare_data,
    prepare_dataset,
    resolve_augment,
    source_for,
)
from pipeline.data.rows import images_from_arrow, read_labels, read_rows

__all__ = [
    "SOURCES",
    "PreparedData",
    "Source",
    "get_source",
    "images_from_arrow",
    "is_prepared",
    "prepare_data",
    "prepare_dataset",
    "read_labels",
    "read_rows",
    "resolve_augment",
    "source_for",
]

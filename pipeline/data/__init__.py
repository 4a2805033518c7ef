"""Dataset sources and the common Parquet pool format."""
from pipeline.data.base import (PreparedData, Source, get_source, images_from_arrow, prepare_dataset,
                                read_rows, register_source, source_names)
from pipeline.data import fashion_mnist  # noqa: F401  (registers the source)

__all__ = ["PreparedData", "Source", "get_source", "images_from_arrow", "prepare_dataset", "read_rows",
           "register_source", "source_names"]

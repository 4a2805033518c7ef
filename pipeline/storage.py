"""A directory tree on the local disk or on any filesystem pyarrow knows (s3://, gs://, hdfs://, file://).

Every write replaces a whole file in one step, so a reader never sees half of one:
- local paths: a temporary sibling, flushed to disk (fsync), renamed into place;
- URIs: one output stream, which object stores publish whole when it closes.
Nothing here renames directories: object stores cannot do that atomically.
"""

from __future__ import annotations

import os
import tempfile

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.errors import RunDirError


def is_uri(location: str) -> bool:
    return "://" in str(location)


def join(location: str, name: str) -> str:
    """`name` inside `location`, a path or a URI: a URI's query (s3://b/x?endpoint_override=...) stays last."""
    if not is_uri(location):
        return os.path.join(location, name)
    base, query = (location.split("?", 1) + [""])[:2]
    return f"{base.rstrip('/')}/{name}" + (f"?{query}" if query else "")


class Storage:
    def __init__(self, location: str | os.PathLike):
        location = str(location)
        self.local = not is_uri(location)
        if self.local:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(location)
        else:
            try:
                self.fs, self.root = pafs.FileSystem.from_uri(location)
            except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                raise RunDirError(
                    f"cannot open {location} ({exc}); use a local path or a URI pyarrow supports "
                    "(s3://, gs://, hdfs://, file://) with its credentials configured"
                ) from None
            self.root = self.root.rstrip("/")
        self.location = location

    def path(self, relative: str = "") -> str:
        return f"{self.root}/{relative}" if relative else self.root

    def kind(self, relative: str = "") -> pafs.FileType:
        return self.fs.get_file_info(self.path(relative)).type

    def is_file(self, relative: str) -> bool:
        return self.kind(relative) == pafs.FileType.File

    def is_dir(self, relative: str = "") -> bool:
        return self.kind(relative) == pafs.FileType.Directory

    def names(self, relative: str = "") -> list[str]:
        """Entries directly inside `relative` (empty when it does not exist)."""
        if not self.is_dir(relative):
            return []
        selector = pafs.FileSelector(self.path(relative), recursive=False)
        return sorted(info.base_name for info in self.fs.get_file_info(selector))

    def read(self, relative: str) -> bytes:
        with self.fs.open_input_stream(self.path(relative)) as stream:
            return stream.read()

    def write(self, relative: str, data: bytes) -> None:
        if self.local:
            _write_local(self.path(relative), data)
            return
        parent = self.path(relative).rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        with self.fs.open_output_stream(self.path(relative)) as stream:
            stream.write(data)

    def read_table(self, relative: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(pa.BufferReader(self.read(relative)), columns=columns)

    def write_table(self, relative: str, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.write(relative, sink.getvalue().to_pybytes())

    def delete_dir(self, relative: str) -> None:
        if self.kind(relative) != pafs.FileType.NotFound:
            self.fs.delete_dir(self.path(relative))

    def sync_dir(self, relative: str = "") -> None:
        """Make renames and new entries in a local directory durable; object stores need nothing."""
        if self.local:
            fd = os.open(self.path(relative), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _write_local(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

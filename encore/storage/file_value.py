"""A :class:`~encore.storage.abstract_store.Value` backed by a file on disk.

:class:`FileValue` lets a file be stored without reading it into memory::

    store.set('report', FileValue('report.pdf', {'type': 'pdf'}))
"""

from __future__ import annotations

import os
from typing import Any

from .abstract_store import Value, _check_range, check_metadata, copy_metadata
from .utils import BufferIteratorIO, buffer_iterator

__all__ = ["FileValue"]


class FileValue(Value):
    """A value whose data is the content of a file.

    Parameters
    ----------
    path : str or path-like
        The file.  It is stat-ed at construction, so a missing file raises
        :class:`FileNotFoundError` at once.
    metadata : dict, optional
        The metadata of the value; empty if None.

    Notes
    -----
    ``size`` and ``modified`` come from the file; ``created`` is None (most
    file systems do not record it portably).  ``data`` opens the file on first
    access and returns the same handle afterwards; each ``range`` call opens
    its own handle, so ranges do not disturb ``data`` or each other.
    """

    def __init__(self, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> None:
        self._path = os.fspath(path)
        stat = os.stat(self._path)
        if metadata is None:
            metadata = {}
        else:
            check_metadata(metadata)
        self._metadata = copy_metadata(metadata)
        self._data_stream: Any = None
        self.size = stat.st_size
        self.created = None
        self.modified = stat.st_mtime

    @property
    def path(self) -> str:
        """The path of the file."""
        return self._path

    @property
    def data(self) -> Any:
        """A binary file handle on the file (opened lazily, then cached)."""
        if self._data_stream is None or self._data_stream.closed:
            # Cached and handed to the caller, who closes it (or uses with).
            self._data_stream = open(self._path, "rb")  # noqa: SIM115
        return self._data_stream

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of the metadata dictionary."""
        return copy_metadata(self._metadata)

    def range(self, start: int | None = None, end: int | None = None) -> Any:
        """Return a stream of the bytes ``start <= i < end`` of the file."""
        _check_range(start, end)
        stream = open(self._path, "rb")  # noqa: SIM115 -- returned to the caller
        try:
            if start:
                stream.seek(start)
        except BaseException:
            stream.close()
            raise
        if end is None:
            return stream
        length = max(end - (start or 0), 0)
        return _ClosingBufferIO(buffer_iterator(stream, max_bytes=length), stream)

    def __repr__(self) -> str:
        return f"FileValue({self._path!r}, {self._metadata!r})"


class _ClosingBufferIO(BufferIteratorIO):
    """A :class:`BufferIteratorIO` that also closes the stream it reads from."""

    def __init__(self, iterator: Any, source: Any) -> None:
        super().__init__(iterator)
        self._source = source

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._source.close()

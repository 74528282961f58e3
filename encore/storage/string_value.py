"""A :class:`~encore.storage.abstract_store.Value` holding its data in memory.

:class:`StringValue` is what in-memory stores return from ``get``, and a handy
way to hand bytes to ``set``::

    store.set('greeting', StringValue(b'Hello', {'lang': 'en'}))
"""

from __future__ import annotations

import io
import time
from typing import Any

from .abstract_store import Value, _check_range, check_metadata, copy_metadata

__all__ = ["StringValue"]


class StringValue(Value):
    """A value whose data is a bytes object held in memory.

    Parameters
    ----------
    data : bytes
        The data of the value.
    metadata : dict, optional
        The metadata of the value (copied); empty if None.
    created, modified : float, optional
        UTC timestamps; the construction time if None.

    Notes
    -----
    ``data`` returns the same :class:`io.BytesIO` on every access, so it can be
    consumed once; ``metadata`` returns a fresh copy on every access; ``range``
    returns a new stream each time.
    """

    __slots__ = ("_bytes", "_data_stream", "_metadata", "size", "created", "modified")

    def __init__(
        self,
        data: bytes = b"",
        metadata: dict[str, Any] | None = None,
        created: float | None = None,
        modified: float | None = None,
    ) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"StringValue data must be bytes, not {type(data).__name__}")
        if metadata is None:
            metadata = {}
        else:
            check_metadata(metadata)
        self._bytes = data
        self._data_stream: io.BytesIO | None = None
        self._metadata = metadata
        self.size = len(data)
        if created is None or modified is None:
            now = time.time()
            created = now if created is None else created
            modified = now if modified is None else modified
        self.created = created
        self.modified = modified

    @classmethod
    def _from_store(cls, data: bytes, metadata: dict[str, Any], created: float,
                    modified: float) -> StringValue:
        # Fast path for stores: arguments already validated, metadata owned by
        # the store (copied on access, never exposed).
        self = cls.__new__(cls)
        self._bytes = data
        self._data_stream = None
        self._metadata = metadata
        self.size = len(data)
        self.created = created
        self.modified = modified
        return self

    @property
    def data(self) -> io.BytesIO:
        """The data as a :class:`io.BytesIO` (the same stream on every access)."""
        stream = self._data_stream
        if stream is None:
            stream = self._data_stream = io.BytesIO(self._bytes)
        return stream

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of the metadata dictionary."""
        return copy_metadata(self._metadata)

    def range(self, start: int | None = None, end: int | None = None) -> io.BytesIO:
        """Return a new stream of the bytes ``start <= i < end``."""
        _check_range(start, end)
        return io.BytesIO(self._bytes[start:end])

    def __repr__(self) -> str:
        return f"StringValue(<{self.size} bytes>, {self._metadata!r})"

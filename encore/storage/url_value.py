"""A :class:`~encore.storage.abstract_store.Value` whose data lives at a URL.

:class:`URLValue` streams its data from any URL :mod:`urllib.request` can
open (``file:``, ``http:``, ``https:``), opening it only when needed.  Every
network request has a timeout.  Byte ranges use HTTP ``Range`` requests when
the server honours them, and skip bytes otherwise (e.g. for ``file:`` URLs);
either way ``range(start, end)`` is end-exclusive like every other value.
"""

from __future__ import annotations

import email.utils
import io
import urllib.error
import urllib.request
from typing import Any

from .abstract_store import StoreError, Value, _check_range, check_metadata, copy_metadata
from .utils import buffer_iterator

__all__ = ["URLValue", "DEFAULT_TIMEOUT", "parse_content_range", "range_plan"]

#: Seconds to wait for a server before giving up (connect and each read).
DEFAULT_TIMEOUT = 30.0


def parse_content_range(header: str | None) -> tuple[int, int, int | None] | None:
    """Parse ``Content-Range: bytes first-last/total`` into ``(first, last, total)``.

    ``total`` is None when the server wrote ``*``.  Returns None for anything
    else (another unit, an unsatisfied-range form ``bytes */total``, garbage).
    """
    if not header:
        return None
    unit, _, rest = header.strip().partition(" ")
    span, _, total = rest.partition("/")
    first, sep, last = span.strip().partition("-")
    if unit.lower() != "bytes" or not sep or not first.isdigit() or not last.isdigit():
        return None
    total = total.strip()
    return int(first), int(last), (int(total) if total.isdigit() else None)


def range_plan(status: int | None, content_range: str | None, start: int,
               end: int | None) -> tuple[int, int | None]:
    """Say how to read bytes ``start <= i < end`` from the answer to a Range request.

    The request asked for ``Range: bytes=<start>-<end - 1>``.  A ``206``
    answer carries the bytes its ``Content-Range`` names, which must begin at
    or before *start*; any other answer (``200``, or a ``file:`` or ``ftp:``
    URL, which have no status) carries the whole data.  Shared by
    :class:`URLValue` and :class:`~encore.storage.dynamic_url_store.DynamicURLStore`.

    Returns
    -------
    skip, limit : int, int or None
        Discard *skip* bytes, then read at most *limit* bytes (None: to the end).

    Raises
    ------
    StoreError
        If a ``206`` answer has no usable ``Content-Range`` or one starting
        after *start*.
    """
    limit = None if end is None else max(end - start, 0)
    if status != 206:
        return start, limit
    span = parse_content_range(content_range)
    if span is None or span[0] > start:
        raise StoreError(f"206 response whose Content-Range {content_range!r} does not "
                         f"cover byte {start}")
    return start - span[0], limit


class URLValue(Value):
    """A value whose data is fetched from a URL.

    Parameters
    ----------
    url : str
        The URL of the data.
    metadata : dict, optional
        The metadata of the value; empty if None.
    opener : object, optional
        Anything with an ``open(request, timeout=...)`` method, such as
        ``urllib.request.build_opener(...)`` with authentication or proxy
        handlers; a default opener if None.
    timeout : float, optional
        Seconds before a request fails (default :data:`DEFAULT_TIMEOUT`).

    Notes
    -----
    ``size`` comes from ``Content-Length`` and ``modified`` from
    ``Last-Modified``; reading either opens the URL if it is not open yet.
    ``created`` is always None.  ``data`` opens the URL once and returns the
    same stream afterwards.
    """

    def __init__(
        self,
        url: str,
        metadata: dict[str, Any] | None = None,
        opener: Any = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        if metadata is None:
            metadata = {}
        else:
            check_metadata(metadata)
        self.url = url
        self._metadata = copy_metadata(metadata)
        self._opener = urllib.request.build_opener() if opener is None else opener
        self.timeout = timeout
        self._data_stream: Any = None
        self._size: int | None = None
        self._modified: float | None = None
        self._opened = False

    def _open(self, request: Any) -> Any:
        try:
            return self._opener.open(request, timeout=self.timeout)
        except TypeError:
            # Openers written for the original API take no timeout argument.
            return self._opener.open(request)

    def open(self) -> Any:
        """Open the URL, record ``size`` and ``modified``, and return the stream."""
        stream = self._open(self.url)
        headers = getattr(stream, "headers", None) or {}
        length = headers.get("Content-Length")
        self._size = int(length) if length is not None and length.isdigit() else None
        last_modified = headers.get("Last-Modified")
        self._modified = None
        if last_modified:
            try:
                self._modified = email.utils.parsedate_to_datetime(last_modified).timestamp()
            except (TypeError, ValueError):
                self._modified = None
        self._data_stream = stream
        self._opened = True
        return stream

    def _ensure_open(self) -> None:
        if not self._opened:
            self.open()

    @property
    def size(self) -> int | None:  # type: ignore[override]
        """The size of the data in bytes, from ``Content-Length`` (None if unknown)."""
        self._ensure_open()
        return self._size

    @property
    def modified(self) -> float | None:  # type: ignore[override]
        """The ``Last-Modified`` time as a UTC timestamp (None if unknown)."""
        self._ensure_open()
        return self._modified

    @property
    def created(self) -> None:  # type: ignore[override]
        """Always None: URLs carry no creation time."""
        return None

    @property
    def data(self) -> Any:
        """The response stream (opened lazily, then cached)."""
        if self._data_stream is None or getattr(self._data_stream, "closed", False):
            self.open()
        return self._data_stream

    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of the metadata dictionary."""
        return copy_metadata(self._metadata)

    def range(self, start: int | None = None, end: int | None = None) -> Any:
        """Return a stream of the bytes ``start <= i < end`` (end-exclusive).

        It sends a ``Range`` request.  A ``206`` answer is checked against its
        ``Content-Range``; from a server that ignores ``Range`` (``200``, and
        ``file:`` URLs) the leading bytes are skipped and the stream limited
        (see :func:`range_plan`).  A range starting past the end of the data
        (``416``) gives an empty stream.

        Raises
        ------
        StoreError
            If a ``206`` answer does not cover the requested start.
        """
        _check_range(start, end)
        first = start or 0
        if end is not None and end <= first:
            return io.BytesIO(b"")
        # HTTP ranges are end-inclusive: ask for bytes first..end-1.
        last = "" if end is None else str(end - 1)
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={first}-{last}"})
        try:
            stream = self._open(request)
        except urllib.error.HTTPError as error:
            if error.code != 416:
                raise
            error.close()
            return io.BytesIO(b"")
        status = getattr(stream, "status", None) or getattr(stream, "code", None)
        headers = getattr(stream, "headers", None) or {}
        try:
            skip, limit = range_plan(status, headers.get("Content-Range"), first, end)
            if skip:
                for _ in buffer_iterator(stream, max_bytes=skip):
                    pass
        except BaseException:
            stream.close()
            raise
        if limit is None:
            return stream
        from .file_value import _ClosingBufferIO

        return _ClosingBufferIO(buffer_iterator(stream, max_bytes=limit), stream)

    def __repr__(self) -> str:
        return f"URLValue({self.url!r}, {self._metadata!r})"

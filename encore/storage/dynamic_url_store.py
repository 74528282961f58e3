"""A store that reads and writes through a web service, using the ``requests`` library.

:class:`DynamicURLStore` implements the whole store API with HTTP ``GET``,
``HEAD``, ``PUT``, ``POST`` and ``DELETE`` requests against a server that
exposes one URL per key and part (see the class documentation for the
protocol).  :mod:`encore.storage.server` serves any store with this protocol.

This module needs the third-party ``requests`` package, the ``http`` extra of
encore (``pip install 'encore[http]'``); it is the only module of the package
that does.

Every request has a timeout.  Errors map onto the store API: ``404`` raises
:class:`KeyError`, ``401`` and ``403`` raise
:class:`~encore.storage.abstract_store.AuthorizationError`, and any other
failure (another status, a refused connection, a timeout, a body cut short)
raises :class:`HTTPStoreError`, a
:class:`~encore.storage.abstract_store.StoreError` carrying the status and an
excerpt of the response.

The store emits no modification events of its own: the server's store emits
them.  ``set`` sends the data and then the metadata in two requests, so it
is not atomic; a reader may briefly see the new data with the old metadata.
"""

from __future__ import annotations

import email.utils
import io
import json
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

try:
    import requests
except ImportError as _error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "encore.storage.dynamic_url_store needs the third-party 'requests' package; "
        "install it with: pip install 'encore[http]'"
    ) from _error

from .abstract_store import (
    DEFAULT_BUFFER_SIZE,
    AbstractAuthorizingStore,
    AuthorizationError,
    StoreError,
    Value,
    _check_range,
    check_key,
    check_metadata,
    select_metadata,
)
from .url_value import DEFAULT_TIMEOUT, range_plan
from .utils import BufferIteratorIO, DummyTransactionContext, check_readable_stream

__all__ = ["DEFAULT_PARTS", "DynamicURLStore", "HTTPStoreError", "RequestsURLValue"]

#: Default mapping of value parts to URL path segments.
DEFAULT_PARTS = {"data": "data", "metadata": "metadata", "permissions": "auth"}

_EXCERPT = 200  # bytes of an error body quoted in exceptions
_JSON = "application/json"


class HTTPStoreError(StoreError):
    """A request to the server failed for a reason other than a missing key or a refusal.

    Attributes
    ----------
    status : int or None
        The HTTP status, or None when no response arrived (connection refused,
        timeout, broken stream).
    excerpt : str
        The first bytes of the response body, decoded leniently.
    """

    def __init__(self, message: str, status: int | None = None, excerpt: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.excerpt = excerpt


def _quote_key(key: str) -> str:
    # Every reserved character is escaped, "/" included, so the key is one
    # path segment; "." and ".." are escaped too, or clients and proxies would
    # treat them as dot segments and rewrite the path.
    if key in (".", ".."):
        return "%2E" * len(key)
    return urllib.parse.quote(key, safe="")


def _excerpt(response: Any) -> str:
    try:
        body = next(response.iter_content(_EXCERPT), b"")[:_EXCERPT]
    except Exception:
        body = b""
    return body.decode("utf-8", "replace")


def _check_response(response: Any, key: str | None, method: str) -> None:
    """Raise the store exception matching a failed response."""
    status = response.status_code
    if 200 <= status < 300:
        return
    try:
        excerpt = _excerpt(response)
    finally:
        response.close()
    what = f"{method} {response.url}"
    if status == 404 and key is not None:
        raise KeyError(key)
    if status in (401, 403):
        raise AuthorizationError(f"{what}: HTTP {status} {response.reason}: {excerpt}")
    raise HTTPStoreError(f"{what} failed: HTTP {status} {response.reason}: {excerpt}",
                         status, excerpt)


class _ResponseStream(io.RawIOBase):
    """A readable stream over a streaming ``requests`` response.

    It reads the raw (undecoded) body, reports a body cut short or a
    network failure as :class:`HTTPStoreError`, and releases the connection
    when closed.  ``skip`` leading bytes are discarded and at most ``limit``
    bytes are returned, which implements byte ranges when the server sends
    the whole body.
    """

    def __init__(self, response: Any, skip: int = 0, limit: int | None = None) -> None:
        super().__init__()
        self._response = response
        self._raw = response.raw
        self._skip = skip
        self._remaining = limit
        self._eof = False

    def readable(self) -> bool:
        return True

    def _raw_read(self, size: int) -> bytes:
        try:
            data = self._raw.read(size)
        except Exception as error:  # urllib3 and socket errors
            raise HTTPStoreError(f"reading {self._response.url} failed: {error}") from error
        if not data:
            self._eof = True
        return data

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed stream")
        while self._skip:
            skipped = self._raw_read(min(self._skip, DEFAULT_BUFFER_SIZE))
            if not skipped:
                self._skip = 0
                return b""
            self._skip -= len(skipped)
        if size is None or size < 0:
            parts = []
            while True:
                chunk = self.read(DEFAULT_BUFFER_SIZE)
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)
        if self._remaining is not None:
            size = min(size, self._remaining)
            if size <= 0:
                return b""
        if size == 0:
            return b""
        data = self._raw_read(size)
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            if self._eof:
                # The body was read to its end: the connection can be reused.
                self._raw.release_conn()
            else:
                self._response.close()
        super().close()


class _UploadStream:
    """A request body read from a caller's stream, with progress and size checks.

    When the size is known requests sends ``Content-Length`` (via ``__len__``);
    otherwise it sends the body chunked.  A stream shorter or longer than its
    announced size raises :class:`StoreError`, which aborts the request, so
    the server never stores a truncated body as complete.
    """

    def __init__(self, chunks: Iterator[bytes], length: int | None) -> None:
        self._stream = BufferIteratorIO(chunks)
        self._length = length
        self._sent = 0
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            return self._read(size)
        except BaseException as error:
            # Remembered so the caller sees this error, not requests' wrapper.
            self.error = error
            raise

    def _read(self, size: int) -> bytes:
        data = self._stream.read(size)
        self._sent += len(data)
        if self._length is not None:
            if self._sent > self._length:
                raise StoreError(f"the data stream is longer than its announced size "
                                 f"({self._length} bytes)")
            if not data and self._sent < self._length:
                raise StoreError(f"the data stream ended after {self._sent} of "
                                 f"{self._length} announced bytes")
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read(DEFAULT_BUFFER_SIZE)
            if not data:
                return
            yield data


class _SizedUploadStream(_UploadStream):
    """An upload of known size: ``__len__`` makes requests send ``Content-Length``."""

    def __len__(self) -> int:
        return self._length  # type: ignore[return-value]


def _stream_length(data: Any) -> int | None:
    """The number of bytes left in a seekable stream, or None if unknown."""
    try:
        if not data.seekable():
            return None
        position = data.tell()
        end = data.seek(0, io.SEEK_END)
        data.seek(position)
    except (AttributeError, OSError, ValueError):
        return None
    return max(end - position, 0)


class RequestsURLValue(Value):
    """A value served by a DynamicURLStore server.

    Constructing it sends a ``HEAD`` request for the data URL, which fills in
    ``size`` (``Content-Length``), ``modified`` (``Last-Modified``) and
    ``mimetype`` (``Content-Type``), and raises :class:`KeyError` if the key
    does not exist.  ``data`` fetches the body on first access (then returns
    the same stream until it is closed); ``metadata`` and ``permissions``
    fetch their JSON on every access.

    Parameters
    ----------
    session : requests.Session
        The (authenticated) session to send requests with.
    base_url : str
        The base URL of the store.
    key : str
        The key.
    url_format : str
        The URL template, with ``{base}``, ``{key}`` and ``{part}``.
    parts : dict
        Maps ``'data'``, ``'metadata'`` and ``'permissions'`` to URL parts.
    timeout : float
        Seconds before a request fails.
    """

    def __init__(self, session: Any, base_url: str, key: str,
                 url_format: str = "{base}/{key}/{part}", parts: Mapping[str, str] = DEFAULT_PARTS,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self._session = session
        self._base_url = base_url
        self._key = key
        self._url_format = url_format
        self._parts = dict(parts)
        self.timeout = timeout
        self._data_stream: Any = None
        response = self._request("HEAD", "data")
        headers = response.headers
        length = headers.get("Content-Length")
        self.size = int(length) if length is not None and length.isdigit() else None
        self.created = None
        self.modified = None
        last_modified = headers.get("Last-Modified")
        if last_modified:
            try:
                self.modified = email.utils.parsedate_to_datetime(last_modified).timestamp()
            except (TypeError, ValueError):
                self.modified = None
        self.mimetype = headers.get("Content-Type", "application/octet-stream")

    def _url(self, part: str) -> str:
        return self._url_format.format(base=self._base_url, key=_quote_key(self._key),
                                       part=self._parts[part])

    def _request(self, method: str, part: str, **kwargs: Any) -> Any:
        return _send(self._session, method, self._url(part), self._key, self.timeout, **kwargs)

    @property
    def data(self) -> Any:
        """The data stream (fetched on first access, then cached until closed)."""
        if self._data_stream is None or self._data_stream.closed:
            response = self._request("GET", "data", stream=True,
                                     headers={"Accept-Encoding": "identity"})
            self._data_stream = _ResponseStream(response)
        return self._data_stream

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata, fetched from the server on every access."""
        return _json_body(self._request("GET", "metadata", headers={"Accept": _JSON}), dict)

    @property
    def permissions(self) -> dict[str, set[str]]:
        """The permissions, fetched from the server on every access."""
        raw = _json_body(self._request("GET", "permissions", headers={"Accept": _JSON}), dict)
        return {name: set(tags) for name, tags in raw.items()}

    def range(self, start: int | None = None, end: int | None = None) -> Any:
        """Return a stream of the bytes ``start <= i < end`` (end-exclusive)."""
        _check_range(start, end)
        return _range_request(self._session, self._url("data"), self._key, self.timeout,
                              start, end)

    def __repr__(self) -> str:
        return f"RequestsURLValue({self._base_url!r}, {self._key!r})"


def _send(session: Any, method: str, url: str, key: str | None, timeout: float,
          **kwargs: Any) -> Any:
    """Send a request; map failures onto the store exceptions; return the response."""
    has_params = "params" in kwargs
    request = requests.Request(method, url, **{k: kwargs.pop(k) for k in
                                               ("headers", "data", "json", "params")
                                               if k in kwargs})
    prepared = session.prepare_request(request)
    if "%2E" in url and not has_params:
        # requests un-escapes "%2E" to "."; keep it escaped (see _quote_key).
        prepared.url = url
    try:
        response = session.send(prepared, timeout=timeout, allow_redirects=method == "GET",
                                **kwargs)
    except requests.exceptions.Timeout as error:
        raise HTTPStoreError(f"{method} {url} timed out after {timeout} s") from error
    except requests.exceptions.RequestException as error:
        upload_error = getattr(request.data, "error", None)
        if upload_error is not None:
            # Reading the caller's stream failed: re-raise that, as local stores do.
            raise upload_error from None
        raise HTTPStoreError(f"{method} {url} failed: {error}") from error
    _check_response(response, key, method)
    return response


def _json_body(response: Any, kind: type) -> Any:
    try:
        value = response.json()
    except ValueError as error:
        raise HTTPStoreError(f"{response.url} did not answer JSON: {error}",
                             response.status_code, response.text[:_EXCERPT]) from None
    if not isinstance(value, kind):
        raise HTTPStoreError(f"{response.url} answered a JSON {type(value).__name__}, "
                             f"expected a {kind.__name__}", response.status_code)
    return value


def _range_request(session: Any, url: str, key: str, timeout: float,
                   start: int | None, end: int | None) -> Any:
    """GET the bytes ``start <= i < end`` of *url*, whether or not the server honours Range."""
    first = start or 0
    if end is not None and end <= first:
        return io.BytesIO(b"")
    last = "" if end is None else str(end - 1)  # HTTP ranges are end-inclusive
    headers = {"Range": f"bytes={first}-{last}", "Accept-Encoding": "identity"}
    try:
        response = _send(session, "GET", url, key, timeout, stream=True, headers=headers)
    except HTTPStoreError as error:
        if error.status == 416:
            return io.BytesIO(b"")  # the range starts past the end: no bytes
        raise
    try:
        skip, limit = range_plan(response.status_code, response.headers.get("Content-Range"),
                                 first, end)
    except StoreError as error:
        response.close()
        raise HTTPStoreError(f"GET {url}: {error}", response.status_code) from None
    return _ResponseStream(response, skip=skip, limit=limit)


class DynamicURLStore(AbstractAuthorizingStore):
    """Store implementation which gets and sets from a web server.

    The server exposes URLs for each key, by default ``<base>/<key>/<part>``
    where ``<part>`` is ``data``, ``metadata`` or ``auth``; ``url_format``
    and ``parts`` change that.  The key is percent-encoded as one path
    segment (``/``, ``?``, ``#``, ``%``, spaces and non-ASCII characters
    included).  The server answers:

    ``GET <base>/<key>/data``
        the bytes of the value (``HEAD`` gives its size and modification time;
        ``Range`` requests are used for :meth:`get_data_range`);
    ``PUT <base>/<key>/data``
        store the bytes of the request body;
    ``GET``/``PUT``/``POST <base>/<key>/metadata``
        return, replace or update (like :meth:`dict.update`) the metadata, as
        a JSON object (``Content-Type: application/json``);
    ``GET``/``PUT``/``POST <base>/<key>/auth``
        return, replace or update the permissions, a JSON object mapping each
        permission to a list of tags;
    ``DELETE <base>/<key>``
        remove the key (the URL comes from ``url_format_no_part``);
    ``GET <query_url>?name=<json value>&...``
        the keys whose metadata has every ``name`` equal to the JSON value:
        a JSON list when the client accepts ``application/json``, else one
        key per line.

    Parameters
    ----------
    base_url : str
        The common URL prefix of the keys.
    query_url : str
        The URL answering queries.
    url_format : str
        Template of a key's part URL, with ``{base}``, ``{key}`` and ``{part}``.
    url_format_no_part : str
        Template of a key's URL (for ``DELETE``), with ``{base}`` and ``{key}``.
    parts : dict
        Maps ``'data'``, ``'metadata'`` and ``'permissions'`` to URL parts.
    timeout : float
        Seconds before a request fails (connecting, and each read).

    Notes
    -----
    Thread safety is that of the ``requests.Session`` used, which is
    generally fine for concurrent requests.
    """

    def __init__(self, base_url: str, query_url: str, url_format: str = "{base}/{key}/{part}",
                 url_format_no_part: str = "{base}/{key}",
                 parts: Mapping[str, str] = DEFAULT_PARTS,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.base_url = base_url
        self.query_url = query_url
        self.url_format = url_format
        self.url_format_no_part = url_format_no_part
        self.parts = dict(parts)
        missing = {"data", "metadata", "permissions"} - self.parts.keys()
        if missing:
            raise ValueError(f"parts lacks {sorted(missing)}")
        self.timeout = timeout
        self._user_tag: str | None = None
        self._session: Any = None
        self._own_session = False

    # -- lifecycle ---------------------------------------------------------

    def connect(self, credentials: tuple[str, Any] | None = None) -> None:
        """Connect to a DynamicURLStore server.

        Parameters
        ----------
        credentials : (user_tag, requests.Session), optional
            The user's permission tag and a session set up with the
            appropriate authentication.  Without it the store uses a new
            session of its own and no user tag.
        """
        if credentials is None:
            user_tag, session, own = None, requests.Session(), True
        else:
            if not isinstance(credentials, tuple) or len(credentials) != 2:
                raise TypeError("credentials must be a (user_tag, requests.Session) tuple")
            user_tag, session = credentials
            own = False
            if not callable(getattr(session, "send", None)):
                raise TypeError("credentials[1] must be a requests.Session")
        self.disconnect()
        self._user_tag, self._session, self._own_session = user_tag, session, own
        self._connected = True

    def disconnect(self) -> None:
        """Disconnect; a session the store created itself is closed."""
        session, self._session = self._session, None
        if session is not None and self._own_session:
            session.close()
        self._connected = False

    def is_connected(self) -> bool:
        """Whether or not the store is currently connected."""
        return self._session is not None

    def info(self) -> dict[str, Any]:
        """Return ``{'readonly': False, 'authorizing': True}``."""
        return {"readonly": False, "authorizing": True}

    @property
    def user_tag(self) -> str | None:
        """The permission tag of the connected user (from the credentials)."""
        return self._user_tag

    def transaction(self, notes: str | None = None) -> DummyTransactionContext:
        """Return a dummy context: the protocol has no transactions."""
        return DummyTransactionContext(self)

    # -- plumbing ----------------------------------------------------------

    def _url(self, key: str, part: str = "") -> str:
        """Return the URL of *key*'s *part* (of the key itself if *part* is empty)."""
        if part:
            return self.url_format.format(base=self.base_url, key=_quote_key(key),
                                          part=self.parts[part])
        return self.url_format_no_part.format(base=self.base_url, key=_quote_key(key))

    def _request(self, method: str, key: str, part: str, **kwargs: Any) -> Any:
        check_key(key)
        session = self._session
        if session is None:
            raise StoreError("DynamicURLStore is not connected")
        return _send(session, method, self._url(key, part), key, self.timeout, **kwargs)

    # -- reading -----------------------------------------------------------

    def get(self, key: str) -> RequestsURLValue:
        """Return a :class:`RequestsURLValue` for *key* (one HEAD request)."""
        check_key(key)
        session = self._session
        if session is None:
            raise StoreError("DynamicURLStore is not connected")
        return RequestsURLValue(session, self.base_url, key, self.url_format, self.parts,
                                self.timeout)

    def get_data(self, key: str) -> Any:
        """Return the data stream of *key* (one streaming GET)."""
        response = self._request("GET", key, "data", stream=True,
                                 headers={"Accept-Encoding": "identity"})
        return _ResponseStream(response)

    def get_data_range(self, key: str, start: int | None = None, end: int | None = None) -> Any:
        """Return the bytes ``start <= i < end`` of *key* (one GET with Range)."""
        check_key(key)
        _check_range(start, end)
        if self._session is None:
            raise StoreError("DynamicURLStore is not connected")
        return _range_request(self._session, self._url(key, "data"), key, self.timeout,
                              start, end)

    def get_metadata(self, key: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """Return the metadata of *key* (one GET), projected by *select*."""
        metadata = _json_body(self._request("GET", key, "metadata",
                                            headers={"Accept": _JSON}), dict)
        return metadata if select is None else select_metadata(metadata, select)

    def get_permissions(self, key: str) -> dict[str, set[str]]:
        """Return the permissions of *key* as a dict of sets (one GET)."""
        raw = _json_body(self._request("GET", key, "permissions", headers={"Accept": _JSON}),
                         dict)
        return {name: set(tags) for name, tags in raw.items()}

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Yield the keys whose metadata matches *kwargs* (one GET of the query URL)."""
        session = self._session
        if session is None:
            raise StoreError("DynamicURLStore is not connected")
        params = {name: json.dumps(value) for name, value in kwargs.items()}
        response = _send(session, "GET", self.query_url, None, self.timeout, params=params,
                         headers={"Accept": f"{_JSON}, text/plain;q=0.5"})
        if response.headers.get("Content-Type", "").startswith(_JSON):
            keys = _json_body(response, list)
            if not all(isinstance(key, str) for key in keys):
                raise HTTPStoreError(f"{response.url} answered keys that are not strings")
            return iter(keys)
        text = response.content.decode("utf-8")
        return (line.rstrip("\r") for line in text.split("\n") if line.rstrip("\r"))

    def query(self, select: Iterable[str] | None = None,
              **kwargs: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, metadata)`` pairs: a query, then one metadata GET per key.

        Keys deleted between the two steps are left out.
        """
        if select is not None:
            select = list(select)
        keys = self.query_keys(**kwargs)
        return self._with_metadata(keys, select)

    def _with_metadata(self, keys: Iterator[str],
                       select: list[str] | None) -> Iterator[tuple[str, dict[str, Any]]]:
        for key in keys:
            try:
                yield key, self.get_metadata(key, select)
            except KeyError:
                continue

    # -- writing -----------------------------------------------------------

    def set(self, key: str, value: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Store data, then metadata, for *key* (two requests; not atomic)."""
        check_key(key)
        data, metadata, size = self._unpack_value(value)
        metadata_body = _json_body_of(metadata, "metadata")  # fail before sending anything
        self._put_data(key, data, metadata, size, buffer_size)
        self._request("PUT", key, "metadata", **metadata_body).close()

    def set_data(self, key: str, data: Any, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Stream *data* to the server as the new data of *key* (one PUT)."""
        check_key(key)
        check_readable_stream(data)
        self._put_data(key, data, None, None, buffer_size)

    def _put_data(self, key: str, data: Any, metadata: Any, size: int | None,
                  buffer_size: int) -> None:
        if size is None:
            size = _stream_length(data)
        chunks = self._iter_chunks(key, data, metadata, size, buffer_size,
                                   f"Uploading key {key!r}")
        body_class = _UploadStream if size is None else _SizedUploadStream
        self._request("PUT", key, "data", data=body_class(chunks, size),
                      headers={"Content-Type": "application/octet-stream"}).close()

    def set_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Replace the metadata of *key* (one PUT of JSON)."""
        check_metadata(metadata)
        self._request("PUT", key, "metadata", **_json_body_of(metadata, "metadata")).close()

    def update_metadata(self, key: str, metadata: dict[str, Any]) -> None:
        """Update the metadata of *key* like :meth:`dict.update` (one POST of JSON)."""
        check_metadata(metadata)
        self._request("POST", key, "metadata", **_json_body_of(metadata, "metadata")).close()

    def set_permissions(self, key: str, permissions: dict[str, set[str]]) -> None:
        """Replace the permissions of *key* (one PUT of JSON; sets become sorted lists)."""
        body = _json_body_of(_permissions_json(permissions), "permissions")
        self._request("PUT", key, "permissions", **body).close()

    def update_permissions(self, key: str, permissions: dict[str, set[str]]) -> None:
        """Add tags to the permissions of *key* (one POST of JSON)."""
        body = _json_body_of(_permissions_json(permissions), "permissions")
        self._request("POST", key, "permissions", **body).close()

    def delete(self, key: str) -> None:
        """Delete *key* (one DELETE); raise :class:`KeyError` if it is missing."""
        self._request("DELETE", key, "").close()


def _json_body_of(obj: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Request arguments for a JSON body: the UTF-8 bytes and ``Content-Type``.

    Raises
    ------
    TypeError
        If *obj* cannot be written as JSON (nothing is sent).
    """
    try:
        text = json.dumps(dict(obj), ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"the {what} cannot be sent as JSON: {error}") from None
    return {"data": text.encode("utf-8"),
            "headers": {"Content-Type": _JSON}}


def _permissions_json(permissions: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    if not isinstance(permissions, Mapping):
        raise TypeError(f"permissions must be a dict, not {type(permissions).__name__}")
    result = {}
    for name, tags in permissions.items():
        if isinstance(tags, str):
            raise TypeError(f"permission {name!r} must map to a collection of tags, not a str")
        result[name] = sorted(tags)
    return result

"""Serve any key-value store over HTTP.

:class:`StoreApplication` is a WSGI application (standard library only) that
exposes an :class:`~encore.storage.abstract_store.AbstractStore` (or a read-only
store) with the wire protocol spoken by
:class:`~encore.storage.dynamic_url_store.DynamicURLStore`, and with the static
layout read by :class:`~encore.storage.static_url_store.StaticURLStore`.
:class:`StoreServer` runs it on the standard library's threaded
:mod:`wsgiref` server, which is enough for tests, embedding and light use;
:func:`serve` does the same in the foreground.

URL layout
----------
Paths are relative to where the application is mounted (``SCRIPT_NAME``)::

    GET|HEAD   /store/<key>/data       the value's bytes (honours Range)
    PUT        /store/<key>/data       replace the bytes (body streamed)
    GET        /store/<key>/metadata   the metadata, as a JSON object
    PUT        /store/<key>/metadata   replace the metadata (JSON object body)
    POST       /store/<key>/metadata   update the metadata like dict.update
    GET        /store/<key>/auth       the permissions, as a JSON object of lists
    PUT|POST   /store/<key>/auth       set or update the permissions
    DELETE     /store/<key>            delete the key
    GET        /query?name=<json>&...  keys whose metadata matches every
                                       name == json.loads(value)
    GET        /index.json             every key's metadata, one JSON object
    GET|HEAD   /data/<key>             the value's bytes (honours Range)

So a :class:`~encore.storage.dynamic_url_store.DynamicURLStore` talks to it
with ``base_url=<root>/store`` and ``query_url=<root>/query``, and a
:class:`~encore.storage.static_url_store.StaticURLStore` with
``root_url=<root>/``, ``data_path='data/'`` and ``query_path='index.json'``
(:class:`StoreServer` has these as attributes).

The key is everything between the prefix and the final path segment (or the
end of the path for ``DELETE`` and ``/data/``), percent-decoded exactly once
(by the WSGI server, as PEP 3333 requires) and then decoded as UTF-8.  It is
handed to the store as an opaque string: the server never turns a key into a
file path, so ``%2e%2e%2f`` is simply the key ``'../'``.

Responses
---------
* Value bodies stream in both directions: the server holds at most one buffer
  of a value in memory.  Uploads may be sent with ``Content-Length`` or chunked.
* Data responses carry ``Content-Length``, ``Last-Modified`` and a weak
  ``ETag`` derived from the value's size and modification time; a matching
  ``If-None-Match`` gets ``304``.  A single ``Range: bytes=...`` is answered
  with ``206`` and ``Content-Range``; an unsatisfiable one with ``416``; other
  (multiple or malformed) ranges are ignored and the whole value sent.
* Errors have a JSON body ``{"error": <reason>, "status": <code>,
  "message": <text>}``: 400 for malformed JSON, bad queries, keys that are not
  UTF-8 or truncated uploads; 401 without valid credentials; 403 for
  :class:`~encore.storage.abstract_store.AuthorizationError`; 404 for a missing
  key or an unknown URL; 405 for a method the URL (or read-only mode) does not
  allow; 413 when a body exceeds the configured limit.

Authentication
--------------
Pass ``authenticate=`` a callable ``(username, password) -> bool`` (see
:func:`password_checker` for a constant-time one built from a dict, and
:class:`UserRecordChecker` for the user records of a
:class:`~encore.storage.simple_auth_store.SimpleAuthStore`, which may also be
passed directly) and every request must carry matching HTTP Basic credentials.  Basic authentication
sends the password in clear, so put TLS in front of the server (a reverse
proxy) for anything but loopback.

Running under a production WSGI server
--------------------------------------
The embedded :mod:`wsgiref` server speaks HTTP/1.1 with keep-alive and runs
one thread per connection, without a limit on their number; it is meant for
tests, embedding and trusted networks.  For real deployments serve the
application with a production server, for instance waitress::

    import waitress
    from encore.storage.server import StoreApplication
    from encore.storage.sqlite_store import SqliteStore

    store = SqliteStore('data.db')
    store.connect()
    waitress.serve(StoreApplication(store), host='127.0.0.1', port=8080)

or gunicorn, with a module ``app.py`` that builds ``application =
StoreApplication(store)``: ``gunicorn --threads 8 app:application``.  The
served store must then be safe to use from several threads at once.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hmac
import json
import logging
import re
import secrets
import socket
import socketserver
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from .abstract_store import AuthorizationError

__all__ = [
    "DEFAULT_PARTS",
    "StoreApplication",
    "StoreServer",
    "make_server",
    "UserRecordChecker",
    "password_checker",
    "serve",
]

logger = logging.getLogger(__name__)

#: The names of the per-key URL parts, as used by DynamicURLStore's defaults.
DEFAULT_PARTS = {"data": "data", "metadata": "metadata", "permissions": "auth"}

_CHUNK = 1 << 20  # bytes moved per read/write when streaming values
_JSON_TYPE = "application/json"
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)

_REASONS = {
    200: "OK",
    204: "No Content",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    416: "Range Not Satisfiable",
    500: "Internal Server Error",
    501: "Not Implemented",
}


class _HTTPError(Exception):
    """An error answered with a JSON body and the given status."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class _Response:
    """A status, headers and body iterable, ready for ``start_response``."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: Iterable[bytes] = ()):
        self.status = status
        self.headers = headers
        self.body = body


def _json_response(status: int, obj: Any,
                   headers: list[tuple[str, str]] | None = None) -> _Response:
    body = json.dumps(obj).encode("ascii")
    return _Response(
        status,
        [("Content-Type", _JSON_TYPE), ("Content-Length", str(len(body)))] + (headers or []),
        [body],
    )


def _error_response(error: _HTTPError) -> _Response:
    reason = _REASONS.get(error.status, "Error")
    return _json_response(
        error.status,
        {"error": reason, "status": error.status, "message": error.message},
        error.headers,
    )


def _no_content() -> _Response:
    return _Response(204, [])


class _BodyReader:
    """A read-only stream over a request body that enforces its framing.

    It reads exactly ``Content-Length`` bytes, or decodes chunked transfer
    encoding when the WSGI server passes it through (wsgiref does; waitress
    de-chunks itself).  A body that ends early raises a 400 error and one
    larger than *limit* a 413 error, so a store that reads the whole stream
    before publishing never keeps a truncated or oversized value.
    """

    def __init__(self, stream: Any, length: int | None, chunked: bool, limit: int | None):
        self._stream = stream
        self._remaining = length  # bytes left in the body (or in the current chunk)
        self._chunked = chunked
        self._limit = limit
        self._total = 0
        self._done = not chunked and not length

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any], limit: int | None) -> _BodyReader:
        """Build a reader for the request in *environ*, checking its declared size."""
        encoding = environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        chunked = "chunked" in encoding
        raw_length = environ.get("CONTENT_LENGTH", "").strip()
        if chunked and not raw_length:
            return cls(environ["wsgi.input"], None, True, limit)
        if not raw_length:
            return cls(environ["wsgi.input"], 0, False, limit)
        if not raw_length.isdigit():
            raise _HTTPError(400, f"invalid Content-Length: {raw_length!r}")
        length = int(raw_length)
        if limit is not None and length > limit:
            raise _HTTPError(413, f"request body of {length} bytes exceeds the limit of {limit}")
        return cls(environ["wsgi.input"], length, False, limit)

    def readable(self) -> bool:
        return True

    def _count(self, n: int) -> None:
        self._total += n
        if self._limit is not None and self._total > self._limit:
            raise _HTTPError(413, f"request body exceeds the limit of {self._limit} bytes")

    def _next_chunk(self) -> None:
        # Called when the current chunk is exhausted: read the next size line.
        # At the end of a chunk's data, consume the CRLF that follows it.
        if self._remaining == 0 and self._stream.readline(3) not in (b"\r\n", b"\n"):
            raise _HTTPError(400, "malformed chunked request body")
        line = self._stream.readline(1026)
        if not line:
            raise _HTTPError(400, "request body ended before the final chunk")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _HTTPError(400, "malformed chunk size in request body") from None
        if size < 0:
            raise _HTTPError(400, "malformed chunk size in request body")
        if size == 0:
            # Last chunk: skip trailers up to the empty line.
            for _ in range(100):
                trailer = self._stream.readline(8194)
                if trailer in (b"\r\n", b"\n"):
                    break
                if not trailer:
                    raise _HTTPError(400, "request body ended inside the chunk trailer")
            self._done = True
            self._remaining = None
            return
        self._remaining = size

    def read(self, size: int | None = -1) -> bytes:
        """Read up to *size* bytes (all remaining bytes if None or negative)."""
        if size is None or size < 0:
            parts = []
            while True:
                piece = self.read(_CHUNK)
                if not piece:
                    return b"".join(parts)
                parts.append(piece)
        if self._done or size == 0:
            return b""
        if self._chunked and not self._remaining:
            self._next_chunk()
            if self._done:
                return b""
        data = self._stream.read(min(size, self._remaining))
        if not data:
            raise _HTTPError(
                400, f"request body ended early: got {self._total} bytes, more were announced"
            )
        self._remaining -= len(data)
        self._count(len(data))
        if not self._chunked and self._remaining == 0:
            self._done = True
        return data

    def close(self) -> None:
        """Do nothing: the WSGI server owns the connection."""

    def __enter__(self) -> _BodyReader:
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        return False


class _StreamBody:
    """A WSGI body iterable that streams a file-like object and closes it."""

    def __init__(self, stream: Any, length: int | None, buffer_size: int = _CHUNK):
        self._stream = stream
        self._length = length
        self._buffer_size = buffer_size

    def __iter__(self) -> Iterator[bytes]:
        remaining = self._length
        read = self._stream.read
        while remaining is None or remaining > 0:
            size = self._buffer_size if remaining is None else min(self._buffer_size, remaining)
            chunk = read(size)
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield bytes(chunk)
        if remaining:
            # The store's stream is shorter than the size it announced: abort
            # the connection rather than let a client take a short body as whole.
            raise OSError(f"value stream ended {remaining} bytes before its announced size")

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


def _parse_range(header: str | None, size: int | None) -> tuple[int, int] | None:
    """Return the ``(start, end)`` (end exclusive) asked for by a Range header.

    None means "send the whole value" (no header, an unknown size, or a range
    this server chooses to ignore: multiple or malformed ranges, as RFC 9110
    allows).  An unsatisfiable range raises a 416 error.
    """
    if not header or size is None:
        return None
    match = _RANGE_RE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        if last:
            end = int(last) + 1
            if end <= start:
                return None  # invalid (last < first): ignore the header
            end = min(end, size)
        else:
            end = size
        if start >= size:
            raise _HTTPError(416, f"range start {start} is past the end ({size} bytes)",
                             [("Content-Range", f"bytes */{size}")])
        return start, end
    if last:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _HTTPError(416, "empty suffix range", [("Content-Range", f"bytes */{size}")])
        return max(0, size - suffix), size
    return None


def _etag(size: int | None, modified: float | None) -> str | None:
    if size is None or modified is None:
        return None
    return f'W/"{size:x}-{int(modified * 1_000_000):x}"'


def _to_json_permissions(permissions: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    return {name: sorted(tags) for name, tags in permissions.items()}


def password_checker(passwords: Mapping[str, str]) -> Callable[[str, str], bool]:
    """Return an ``authenticate`` callable accepting the given username/password pairs.

    Passwords are compared in constant time with :func:`hmac.compare_digest`,
    and an unknown user costs the same comparison as a known one.

    Parameters
    ----------
    passwords : mapping of str to str
        The password of each user.  The mapping is copied.
    """
    table = {user: password.encode("utf-8") for user, password in passwords.items()}

    def check(username: str, password: str) -> bool:
        expected = table.get(username)
        given = password.encode("utf-8")
        if expected is None:
            hmac.compare_digest(given, given)
            return False
        return hmac.compare_digest(given, expected)

    return check


class UserRecordChecker:
    """An ``authenticate`` callable checking passwords against SimpleAuthStore user records.

    The records are the data of the keys ``user_key_path + username`` in
    *user_key_store*, as written by
    :func:`~encore.storage.simple_auth_store.set_user_password`, and are
    verified with :func:`~encore.storage.simple_auth_store.verify_password`.
    Password hashing is deliberately slow, so a successful check is
    remembered as a keyed digest of the password tied to the record it was
    checked against: a changed or deleted record invalidates it at once.  An
    unknown user costs the same hashing as a wrong password.  Thread-safe.

    Parameters
    ----------
    user_key_store : store
        The store holding the user records.
    user_key_path : str
        The prefix of the user-record keys.
    encoder : callable, optional
        The encoder of legacy records (see ``verify_password``).
    """

    _MAX_RECORD = 65536

    def __init__(self, user_key_store: Any, user_key_path: str = ".user_",
                 encoder: Callable[[bytes], bytes] | None = None) -> None:
        self.user_key_store = user_key_store
        self.user_key_path = user_key_path
        self.encoder = encoder
        self._secret = secrets.token_bytes(32)
        self._verified: dict[str, tuple[bytes, bytes]] = {}
        self._dummy: bytes | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_auth_store(cls, auth_store: Any) -> UserRecordChecker:
        """Check the users of a :class:`~encore.storage.simple_auth_store.SimpleAuthStore`."""
        return cls(auth_store.user_key_store, auth_store.user_key_path, auth_store.encoder)

    def _record(self, username: str) -> bytes | None:
        try:
            with self.user_key_store.get_data(self.user_key_path + username) as data:
                record = data.read(self._MAX_RECORD + 1)
        except KeyError:
            return None
        return bytes(record) if len(record) <= self._MAX_RECORD else None

    def __call__(self, username: str, password: str) -> bool:
        from .simple_auth_store import recommended_encoder, verify_password

        if not username or not password:
            return False
        record = self._record(username)
        if record is None:
            # Hash anyway, so an unknown user costs what a wrong password
            # costs and user names cannot be probed by timing.
            if self._dummy is None:
                self._dummy = recommended_encoder()(b"not a password")
            verify_password(password.encode("utf-8"), self._dummy)
            return False
        token = hmac.new(self._secret, password.encode("utf-8"), "sha256").digest()
        with self._lock:
            cached = self._verified.get(username)
        if cached is not None and hmac.compare_digest(cached[0], record) \
                and hmac.compare_digest(cached[1], token):
            return True
        if not verify_password(password.encode("utf-8"), record, self.encoder):
            return False
        with self._lock:
            self._verified[username] = (record, token)
        return True


class StoreApplication:
    """A WSGI application serving a key-value store (see the module docs for the URLs).

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The connected store to serve.  Read-only stores are served read-only.
    read_only : bool
        Refuse every request that would modify the store (``405``).
    authenticate : callable or SimpleAuthStore, optional
        ``authenticate(username, password) -> bool``; when given, every
        request needs HTTP Basic credentials it accepts, or gets ``401``.  A
        :class:`~encore.storage.simple_auth_store.SimpleAuthStore` checks its
        user records (see :class:`UserRecordChecker`); when those records
        live in the served store, their keys are hidden (see *hidden_prefix*).
    hidden_prefix : str, optional
        Keys starting with this prefix are invisible: ``404`` for any request
        on them, and never listed by queries or the index.
    realm : str
        The realm announced in ``WWW-Authenticate``.
    max_body_size : int or None
        The largest data upload accepted, in bytes (``413`` beyond it); None
        for no limit.  The default is 4 GiB.
    max_json_size : int
        The largest metadata or permissions body accepted, in bytes.  These
        are parsed in memory, so keep it modest (default 16 MiB).
    buffer_size : int
        How many bytes to move at a time when streaming values.
    parts : dict
        The URL part names, as given to DynamicURLStore.

    Notes
    -----
    The application is thread-safe if the store is: it keeps no per-request
    state of its own.
    """

    def __init__(
        self,
        store: Any,
        *,
        read_only: bool = False,
        authenticate: Any = None,
        hidden_prefix: str | None = None,
        realm: str = "encore.storage",
        max_body_size: int | None = 4 << 30,
        max_json_size: int = 16 << 20,
        buffer_size: int = _CHUNK,
        parts: Mapping[str, str] = DEFAULT_PARTS,
    ) -> None:
        self.store = store
        info = {}
        try:
            info = store.info() or {}
        except Exception:
            logger.debug("store.info() failed; assuming a writable store", exc_info=True)
        self.read_only = bool(read_only or info.get("readonly", False)
                              or not hasattr(store, "set_data"))
        if '"' in realm or "\\" in realm:
            raise ValueError(f"realm must not contain quotes or backslashes: {realm!r}")
        if authenticate is not None and not callable(authenticate):
            if not hasattr(authenticate, "user_key_store"):
                raise TypeError("authenticate must be a callable or a SimpleAuthStore")
            auth_store = authenticate
            authenticate = UserRecordChecker.from_auth_store(auth_store)
            if hidden_prefix is None and auth_store.user_key_store in (store, getattr(
                    store, "store", None)):
                # Never let users read or overwrite the password records.
                hidden_prefix = auth_store.user_key_path
        self.authenticate = authenticate
        self.hidden_prefix = hidden_prefix or None
        self.realm = realm
        self.max_body_size = max_body_size
        self.max_json_size = max_json_size
        self.buffer_size = buffer_size
        self._parts = {name: part for part, name in parts.items()}  # URL name -> part
        if set(self._parts.values()) != {"data", "metadata", "permissions"}:
            raise ValueError(f"parts must name 'data', 'metadata' and 'permissions': {parts!r}")

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            response = self._dispatch(environ)
        except _HTTPError as error:
            response = _error_response(error)
        except KeyError as error:
            key = error.args[0] if error.args else ""
            response = _error_response(_HTTPError(404, f"no such key: {key!r}"))
        except AuthorizationError as error:
            response = _error_response(_HTTPError(403, str(error) or "not authorized"))
        except Exception:
            logger.exception("error serving %s %s", environ.get("REQUEST_METHOD"),
                             environ.get("PATH_INFO"))
            response = _error_response(_HTTPError(500, "internal server error"))
        status = f"{response.status} {_REASONS.get(response.status, 'Unknown')}"
        start_response(status, response.headers)
        if environ.get("REQUEST_METHOD") == "HEAD":
            close = getattr(response.body, "close", None)
            if close is not None:
                close()
            return []
        return response.body

    def _check_credentials(self, environ: Mapping[str, Any]) -> None:
        challenge = [("WWW-Authenticate", f'Basic realm="{self.realm}", charset="UTF-8"')]
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise _HTTPError(401, "authentication required", challenge)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise _HTTPError(401, "malformed Basic credentials", challenge) from None
        username, sep, password = decoded.partition(":")
        if not sep or not self.authenticate(username, password):
            raise _HTTPError(401, "invalid credentials", challenge)

    def _dispatch(self, environ: Mapping[str, Any]) -> _Response:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if self.authenticate is not None:
            self._check_credentials(environ)
        try:
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise _HTTPError(400, "the URL path is not valid percent-encoded UTF-8") from None
        if path.startswith("/store/"):
            rest = path[len("/store/"):]
            if method == "DELETE":
                return self._delete(rest)
            key, sep, name = rest.rpartition("/")
            if not sep:
                raise _HTTPError(404, f"unknown URL: {path!r}; expected /store/<key>/<part>")
            part = self._parts.get(name)
            if part is None:
                raise _HTTPError(404, f"unknown key part {name!r}; expected one of "
                                      f"{sorted(self._parts)}")
            if part == "data":
                return self._data(method, key, environ)
            if part == "metadata":
                return self._metadata(method, key, environ)
            return self._permissions(method, key, environ)
        if path.startswith("/data/"):
            self._allow(method, ("GET", "HEAD"))
            return self._data(method, path[len("/data/"):], environ)
        if path == "/query":
            self._allow(method, ("GET", "HEAD"))
            return self._query(environ)
        if path == "/index.json":
            self._allow(method, ("GET", "HEAD"))
            return self._index()
        raise _HTTPError(404, f"unknown URL: {path!r}")

    def _allow(self, method: str, allowed: tuple[str, ...]) -> None:
        if self.read_only:
            allowed = tuple(m for m in allowed if m in ("GET", "HEAD"))
        if method not in allowed:
            why = " (the server is read-only)" if self.read_only else ""
            raise _HTTPError(405, f"method {method} not allowed here{why}",
                             [("Allow", ", ".join(allowed))])

    def _read_json(self, environ: Mapping[str, Any], what: str) -> Any:
        body = _BodyReader.from_environ(environ, self.max_json_size).read()
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise _HTTPError(400, f"malformed JSON {what}: {error}") from None
        if not isinstance(obj, dict):
            raise _HTTPError(400, f"the {what} must be a JSON object, not {type(obj).__name__}")
        return obj

    def _check_visible(self, key: str) -> None:
        if self.hidden_prefix is not None and key.startswith(self.hidden_prefix):
            raise KeyError(key)

    def _visible(self, keys: Iterable[Any], key_of: Callable[[Any], str]) -> Iterator[Any]:
        prefix = self.hidden_prefix
        for item in keys:
            if prefix is None or not key_of(item).startswith(prefix):
                yield item

    def _data(self, method: str, key: str, environ: Mapping[str, Any]) -> _Response:
        self._allow(method, ("GET", "HEAD", "PUT"))
        self._check_visible(key)
        if method == "PUT":
            body = _BodyReader.from_environ(environ, self.max_body_size)
            self.store.set_data(key, body, self.buffer_size)
            return _no_content()
        value = self.store.get(key)
        size = value.size
        modified = value.modified
        headers = [("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
        if modified is not None:
            headers.append(("Last-Modified", email.utils.formatdate(modified, usegmt=True)))
        etag = _etag(size, modified)
        if etag is not None:
            headers.append(("ETag", etag))
            match = environ.get("HTTP_IF_NONE_MATCH")
            if match and (match.strip() == "*" or etag in [t.strip() for t in match.split(",")]):
                return _Response(304, [h for h in headers if h[0] != "Content-Type"])
        byte_range = _parse_range(environ.get("HTTP_RANGE"), size)
        if method == "HEAD":
            if size is not None:
                headers.append(("Content-Length", str(size)))
            return _Response(200, headers)
        if byte_range is None:
            if size is not None:
                headers.append(("Content-Length", str(size)))
            return _Response(200, headers, _StreamBody(value.data, size, self.buffer_size))
        start, end = byte_range
        headers.append(("Content-Range", f"bytes {start}-{end - 1}/{size}"))
        headers.append(("Content-Length", str(end - start)))
        stream = value.range(start, end)
        return _Response(206, headers, _StreamBody(stream, end - start, self.buffer_size))

    def _metadata(self, method: str, key: str, environ: Mapping[str, Any]) -> _Response:
        self._allow(method, ("GET", "HEAD", "PUT", "POST"))
        self._check_visible(key)
        if method == "PUT":
            self.store.set_metadata(key, self._read_json(environ, "metadata"))
            return _no_content()
        if method == "POST":
            self.store.update_metadata(key, self._read_json(environ, "metadata"))
            return _no_content()
        metadata = self.store.get_metadata(key)
        try:
            return _json_response(200, metadata)
        except (TypeError, ValueError) as error:
            raise _HTTPError(500, f"metadata of {key!r} is not JSON-serialisable: "
                                  f"{error}") from None

    def _permissions(self, method: str, key: str, environ: Mapping[str, Any]) -> _Response:
        self._allow(method, ("GET", "HEAD", "PUT", "POST"))
        self._check_visible(key)
        if method in ("PUT", "POST"):
            raw = self._read_json(environ, "permissions")
            permissions = {}
            for name, tags in raw.items():
                if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                    raise _HTTPError(400, f"permission {name!r} must map to a list of strings")
                permissions[name] = set(tags)
            method_name = "set_permissions" if method == "PUT" else "update_permissions"
            setter = getattr(self.store, method_name, None)
            if setter is None:
                raise AuthorizationError(f"this store does not support permissions ({key!r})")
            setter(key, permissions)
            return _no_content()
        getter = getattr(self.store, "get_permissions", None)
        if getter is not None:
            permissions = getter(key)
        else:
            # Stores without permissions answer through their Value, which
            # raises AuthorizationError (or KeyError for a missing key).
            permissions = self.store.get(key).permissions
        return _json_response(200, _to_json_permissions(permissions))

    def _delete(self, key: str) -> _Response:
        self._allow("DELETE", ("DELETE",))
        self._check_visible(key)
        self.store.delete(key)
        return _no_content()

    def _query(self, environ: Mapping[str, Any]) -> _Response:
        try:
            pairs = urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True,
                                           encoding="utf-8", errors="strict")
        except (UnicodeDecodeError, ValueError) as error:
            raise _HTTPError(400, f"malformed query string: {error}") from None
        query: dict[str, Any] = {}
        for name, text in pairs:
            if name in query:
                raise _HTTPError(400, f"query name {name!r} given more than once")
            try:
                query[name] = json.loads(text)
            except ValueError as error:
                raise _HTTPError(400, f"query value for {name!r} is not JSON: {error}") from None
        keys = self._visible(self.store.query_keys(**query), str)
        accept = environ.get("HTTP_ACCEPT", "")
        if _JSON_TYPE in accept:
            return _Response(200, [("Content-Type", _JSON_TYPE)], _json_list(keys))
        return _Response(200, [("Content-Type", "text/plain; charset=utf-8")], _lines(keys))

    def _index(self) -> _Response:
        items = self._visible(self.store.query(), lambda item: item[0])
        return _Response(200, [("Content-Type", _JSON_TYPE)], _json_index(items))


def _json_list(keys: Iterable[str]) -> Iterator[bytes]:
    separator = b"["
    for key in keys:
        yield separator + json.dumps(key).encode("ascii")
        separator = b","
    yield b"[]" if separator == b"[" else b"]"


def _lines(keys: Iterable[str]) -> Iterator[bytes]:
    for key in keys:
        yield key.encode("utf-8") + b"\n"


def _json_index(items: Iterable[tuple[str, Any]]) -> Iterator[bytes]:
    # Stream entry by entry so an index of many keys is never one big string.
    separator = b"{"
    batch = []
    size = 0
    for key, metadata in items:
        entry = separator + json.dumps(key).encode("ascii") + b":" + \
            json.dumps(metadata).encode("ascii")
        separator = b","
        batch.append(entry)
        size += len(entry)
        if size >= _CHUNK // 4:
            yield b"".join(batch)
            batch, size = [], 0
    batch.append(b"{}" if separator == b"{" else b"}")
    yield b"".join(batch)


class _Input:
    """``wsgi.input`` for one request: ends at ``Content-Length`` and counts what is left.

    Reading stops at the end of the body (so an application can never read
    into the next request of a kept-alive connection), and what the
    application left unread is known, to be drained or to close the
    connection.  Chunked bodies (no length) are passed through for the
    application to decode.
    """

    def __init__(self, rfile: Any, length: int | None,
                 on_first_read: Callable[[], None] | None = None) -> None:
        self._rfile = rfile
        self.remaining = length
        self._on_first_read = on_first_read

    def _first_read(self) -> None:
        callback, self._on_first_read = self._on_first_read, None
        if callback is not None:
            callback()

    def _limit(self, size: int | None) -> int | None:
        if self.remaining is None:
            return size
        if size is None or size < 0 or size > self.remaining:
            return self.remaining
        return size

    def read(self, size: int | None = -1) -> bytes:
        size = self._limit(size)
        if size == 0:
            return b""
        self._first_read()
        data = self._rfile.read(size) if size is not None else self._rfile.read()
        if self.remaining is not None:
            self.remaining -= len(data)
            if not data:
                self.remaining = 0  # the client went away: nothing more will come
        return data

    def readline(self, size: int | None = -1) -> bytes:
        size = self._limit(size)
        if size == 0:
            return b""
        self._first_read()
        data = self._rfile.readline(-1 if size is None else size)
        if self.remaining is not None:
            self.remaining -= len(data)
            if not data:
                self.remaining = 0
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")


class _ServerHandler(ServerHandler):
    """wsgiref's handler speaking HTTP/1.1, and logging through :mod:`logging`."""

    http_version = "1.1"

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        status = int(self.status[:3])
        if status in (204, 304):
            # These never have a body; RFC 9110 forbids Content-Length on 204.
            if status == 204:
                del self.headers["Content-Length"]
            framed = True
        else:
            framed = "Content-Length" in self.headers
        handler = self.request_handler
        if not framed:
            # The end of the body is the end of the connection.
            handler.close_connection = True
        if status >= 400 and getattr(self.stdin, "remaining", None) != 0:
            # A refused request's body is not worth reading: close instead.
            handler.close_connection = True
        if handler.close_connection:
            self.headers["Connection"] = "close"

    def log_exception(self, exc_info: Any) -> None:
        self.request_handler.close_connection = True
        logger.error("error while sending a response", exc_info=exc_info)


class _RequestHandler(WSGIRequestHandler):
    """HTTP/1.1 with keep-alive, a socket timeout, and logging via :mod:`logging`."""

    protocol_version = "HTTP/1.1"
    # Kept-alive connections exchange small segments: without TCP_NODELAY,
    # Nagle's algorithm and delayed ACKs stall each response by ~40 ms.  The
    # write buffer joins the status line and headers into one segment.
    disable_nagle_algorithm = True
    wbufsize = 1 << 16

    #: Seconds a connection may stay silent before the server drops it.
    timeout = 60.0

    #: Unread request body bytes the server reads and discards to keep a
    #: connection open (more than that and the connection is closed).
    drain_limit = 1 << 20

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()

    def handle_one_request(self) -> None:
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        environ = self.get_environ()
        length = environ.get("CONTENT_LENGTH", "")
        # "Expect: 100-continue": the client waits for a go-ahead before
        # sending the body; give it when the application starts reading, so a
        # refused upload (401, 413, ...) is never sent at all.
        expect = environ.pop("HTTP_EXPECT", "").lower() == "100-continue" \
            and self.request_version != "HTTP/1.0"
        go_ahead = self._send_continue if expect else None
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = _Input(self.rfile, None, go_ahead)
            self.close_connection = True  # cannot tell where an unread chunked body ends
        elif length.isdigit():
            body = _Input(self.rfile, int(length), go_ahead)
        elif length:
            body = _Input(self.rfile, 0)
            self.close_connection = True  # a malformed length: framing is unknown
        else:
            body = _Input(self.rfile, 0)
        environ["wsgi.input"] = body
        handler = _ServerHandler(body, self.wfile, self.get_stderr(), environ, multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())
        if expect and body._on_first_read is not None and body.remaining:
            # The body was never asked for; the client may still send it
            # later, so this connection cannot carry another request.
            self.close_connection = True
        if not self.close_connection and body.remaining:
            if body.remaining > self.drain_limit:
                self.close_connection = True
            else:
                try:
                    while body.read(65536):
                        pass
                except OSError:
                    self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def handle_expect_100(self) -> bool:
        # http.server answers "100 Continue" while parsing; defer it to the
        # first read of the body instead (see handle_one_request).
        return True

    def _send_continue(self) -> None:
        self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.wfile.flush()


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 64

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port
        self.setup_environ()
        self._connections: set[Any] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open (e.g. kept-alive) connection."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _ThreadingWSGIServer6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


def make_server(
    store_or_app: Any, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> StoreServer:
    """Build a :class:`StoreServer` (not yet started) for a store or application."""
    return StoreServer(store_or_app, host, port, **options)


class StoreServer:
    """A threaded :mod:`wsgiref` server running a :class:`StoreApplication`.

    Parameters
    ----------
    store_or_app : store or StoreApplication
        A store (wrapped in a :class:`StoreApplication` built with *options*)
        or a ready application.
    host : str
        The address to listen on; the default is loopback only.
    port : int
        The port; 0 picks a free one (see :attr:`port`).
    **options
        Keyword arguments for :class:`StoreApplication`.

    Examples
    --------
    ::

        with StoreServer(store) as server:
            client = DynamicURLStore(server.base_url, server.query_url)
            client.connect()
            ...
    """

    def __init__(self, store_or_app: Any, host: str = "127.0.0.1", port: int = 0,
                 **options: Any) -> None:
        if isinstance(store_or_app, StoreApplication):
            if options:
                raise TypeError("options are only accepted together with a store")
            self.app = store_or_app
        else:
            self.app = StoreApplication(store_or_app, **options)
        server_class = _ThreadingWSGIServer6 if ":" in host else _ThreadingWSGIServer
        self._server = server_class((host, port), _RequestHandler)
        self._server.set_app(self.app)
        self._thread: threading.Thread | None = None
        self.host = host
        self.port: int = self._server.server_address[1]
        netloc = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        #: The server's root URL, without a trailing slash.
        self.url = f"http://{netloc}"
        #: ``base_url`` for DynamicURLStore.
        self.base_url = self.url + "/store"
        #: ``query_url`` for DynamicURLStore.
        self.query_url = self.url + "/query"
        #: ``root_url`` for StaticURLStore (with ``data_path='data/'`` and
        #: ``query_path='index.json'``).
        self.static_url = self.url + "/"

    def start(self) -> StoreServer:
        """Serve in a background daemon thread; return self."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"encore-store-server-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` is called from another."""
        self._server.serve_forever(poll_interval=0.25)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting requests and close the listening socket.

        Open connections are shut down, so kept-alive clients notice at once.
        """
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout)
            self._thread = None
        self._server.server_close()
        self._server.close_connections()

    def __enter__(self) -> StoreServer:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def serve(store: Any, host: str = "127.0.0.1", port: int = 8080, **options: Any) -> None:
    """Serve *store* on the embedded threaded wsgiref server until interrupted.

    Parameters are as for :class:`StoreServer`.
    """
    server = StoreServer(store, host, port, **options)
    logger.info("serving %r at %s", store, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()

"""A read-only store in front of data served as static files (HTTP, HTTPS or ``file:``).

:class:`StaticURLStore` reads a static layout such as::

    base_directory/
        index.json      one JSON object: {key: metadata dict, ...}, UTF-8
        data/
            key1
            key2
            ...

served by any web server (``python -m http.server`` will do), or straight
from disk through a ``file:`` URL.  The index is downloaded when the store
connects and then re-downloaded every ``poll`` seconds by a background daemon
thread; each new index is compared with the previous one and the differences
are emitted as :class:`~encore.storage.events.StoreDeleteEvent`,
:class:`~encore.storage.events.StoreSetEvent` and
:class:`~encore.storage.events.StoreUpdateEvent`.  Metadata queries are answered
from the in-memory copy of the index; data is fetched from
``<root_url><data_path><key>`` when asked for.  :mod:`encore.storage.server`
serves this layout for any store.

Guarantees and caveats
    Readers always see one complete index (the old one or the new one).  The
    view is consistent but may be up to ``poll`` seconds old, and changes to
    data alone (with unchanged metadata) are not reported.  No lock is held
    while the network is read or while a query generator is suspended, so
    queries may be consumed slowly and from any thread.  HTTPS certificates
    are verified.  Keys with ``.`` or ``..`` path segments cannot be fetched
    (their URL would leave the data directory) and raise
    :class:`~encore.storage.abstract_store.StoreError`.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any

from .abstract_store import (
    AbstractReadOnlyStore,
    AuthorizationError,
    StoreError,
    _check_range,
    check_key,
    copy_metadata,
    metadata_matches,
    select_metadata,
)
from .url_value import DEFAULT_TIMEOUT, URLValue

__all__ = ["StaticURLStore", "basic_auth_factory"]

logger = logging.getLogger(__name__)

#: The realm used for HTTP authentication when the credentials name none.
DEFAULT_REALM = "encore.storage"


class _PasswordManager(urllib.request.HTTPPasswordMgrWithPriorAuth):
    """Password manager that sends credentials up front and accepts any realm.

    Sending them with the first request (instead of after a 401 challenge)
    halves the requests to a protected server; accepting any realm means the
    server's realm need not be known in advance.
    """

    def add_password(self, realm: str | None, uri: Any, user: str, passwd: str,
                     is_authenticated: bool = True) -> None:
        super().add_password(realm, uri, user, passwd, is_authenticated)

    def find_user_password(self, realm: str | None, authuri: str) -> tuple[Any, Any]:
        user, password = super().find_user_password(realm, authuri)
        if user is None:
            for other in list(self.passwd):
                if other != realm:
                    user, password = super().find_user_password(other, authuri)
                    if user is not None:
                        break
        return user, password


def basic_auth_factory(**kwargs: Any) -> urllib.request.HTTPBasicAuthHandler:
    """Return an HTTP Basic authentication handler for :meth:`StaticURLStore.connect`.

    The handler sends the credentials with every request below their URI
    (without waiting for a challenge) and answers challenges from any realm.

    Parameters
    ----------
    **kwargs
        If given, passed to the handler's ``add_password`` (``realm``,
        ``uri``, ``user``, ``passwd``).
    """
    handler = urllib.request.HTTPBasicAuthHandler(_PasswordManager())
    if kwargs:
        handler.add_password(**kwargs)
    return handler


class _ErrorMappingOpener:
    """Wrap an opener so failures surface as the store's exceptions.

    404 (or a missing ``file:``) becomes ``KeyError(key)``, 401/403
    :class:`AuthorizationError`, anything else but 416 (left to
    :meth:`URLValue.range <encore.storage.url_value.URLValue.range>`)
    :class:`StoreError` naming the URL and the reason.
    """

    __slots__ = ("_opener", "_key")

    def __init__(self, opener: Any, key: str) -> None:
        self._opener = opener
        self._key = key

    def open(self, request: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        url = request if isinstance(request, str) else request.full_url
        try:
            return self._opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416:
                raise  # URLValue.range answers it with an empty stream
            error.close()
            if error.code in (404, 410):
                raise KeyError(self._key) from None
            if error.code in (401, 403):
                raise AuthorizationError(
                    f"access to {self._key!r} refused: HTTP {error.code} {error.reason}"
                ) from None
            raise StoreError(f"cannot fetch {url}: HTTP {error.code} {error.reason}") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, FileNotFoundError):
                raise KeyError(self._key) from None
            raise StoreError(f"cannot fetch {url}: {error.reason}") from error
        except OSError as error:
            raise StoreError(f"cannot fetch {url}: {error}") from error


class StaticURLStore(AbstractReadOnlyStore):
    """A read-only key-value store that is a front end for data served via URLs.

    All data is served from a root URL: the data of a key from ``root_url +
    data_path + <key>`` (the key percent-encoded, ``/`` kept), and the
    metadata of every key from ``root_url + query_path``, a JSON object
    mapping each key to its metadata dictionary, in UTF-8.  For example, with
    data at ``http://www.example.com/data/<key>`` and the index at
    ``http://www.example.com/index.json``, the root URL is
    ``"http://www.example.com/"``, the data path ``"data/"`` and the query
    path ``"index.json"``.

    Parameters
    ----------
    root_url : str
        The base URL that data is served from.
    data_path : str
        The URL prefix, relative to *root_url*, that the data is served from.
    query_path : str
        The URL, relative to *root_url*, of the metadata index.
    poll : float
        Seconds between index downloads by the polling thread (5 minutes by
        default); 0 or less for no polling (call :meth:`update_index`).
    timeout : float
        Seconds before a network request fails.

    Notes
    -----
    Thread-safe: reads, queries and :meth:`update_index` may run from any
    thread.
    """

    def __init__(self, root_url: str, data_path: str, query_path: str, poll: float = 300,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        for name, value in (("root_url", root_url), ("data_path", data_path),
                            ("query_path", query_path)):
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        self.root_url = root_url
        self.data_path = data_path
        self.query_path = query_path
        self.poll = poll
        self.timeout = timeout
        self._opener: Any = None
        # One index dict, replaced whole and never mutated, so a reader only
        # needs the reference; the lock guards the swap and its ordering.
        self._index: dict[str, dict[str, Any]] | None = None
        self._index_lock = threading.Lock()
        self._fetches = 0  # tickets handed to update_index calls
        self._applied = 0  # ticket of the index in use
        self._stop: threading.Event | None = None
        self._poll_thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def connect(self, credentials: dict[str, str] | None = None, proxy_handler: Any = None,
                auth_handler_factory: Any = None) -> None:
        """Connect to the key-value store, optionally with authentication.

        This builds the :mod:`urllib.request` opener, downloads the index and
        starts the polling thread.

        Parameters
        ----------
        credentials : dict, optional
            ``'username'`` and ``'password'`` (or urllib's ``'user'`` and
            ``'passwd'``), and optionally ``'uri'`` (default: the root URL)
            and ``'realm'`` (default ``'encore.storage'``; the default
            handler accepts any realm).
        proxy_handler : urllib.request.ProxyHandler, optional
            Without one, urllib uses the proxies of the environment.
        auth_handler_factory : callable, optional
            Builds the authentication handler; the credentials are passed as
            keyword arguments to its ``add_password``.  Default:
            :func:`basic_auth_factory`.

        Raises
        ------
        StoreError
            If the index cannot be downloaded or is not a JSON object of
            metadata dicts; the store stays disconnected.
        """
        if self._opener is not None:
            self.disconnect()
        handlers: list[Any] = [urllib.request.HTTPSHandler(context=ssl.create_default_context())]
        if proxy_handler is not None:
            handlers.append(proxy_handler)
        if credentials is not None:
            factory = auth_handler_factory if auth_handler_factory is not None \
                else basic_auth_factory
            handler = factory()
            handler.add_password(**self._password_arguments(credentials))
            handlers.append(handler)
        opener = urllib.request.build_opener(*handlers)
        with self._index_lock:
            self._opener = opener
            self._index = None
        try:
            self.update_index()
        except BaseException:
            with self._index_lock:
                self._opener = None
            raise
        self._connected = True
        if self.poll and self.poll > 0:
            self._stop = threading.Event()
            self._poll_thread = threading.Thread(
                target=self._poll_loop, args=(self._stop,),
                name=f"StaticURLStore poller ({self.root_url})", daemon=True,
            )
            self._poll_thread.start()

    def _password_arguments(self, credentials: Any) -> dict[str, Any]:
        if not isinstance(credentials, dict):
            raise TypeError(f"credentials must be a dict, not {type(credentials).__name__}")
        arguments = dict(credentials)
        if "username" in arguments:
            arguments["user"] = arguments.pop("username")
        if "password" in arguments:
            arguments["passwd"] = arguments.pop("password")
        missing = {"user", "passwd"} - arguments.keys()
        if missing:
            raise TypeError("credentials need 'username' and 'password'")
        arguments.setdefault("uri", self.root_url)
        arguments.setdefault("realm", DEFAULT_REALM)
        return arguments

    def disconnect(self) -> None:
        """Disconnect: stop the polling thread (promptly) and drop the opener."""
        stop, thread = self._stop, self._poll_thread
        self._stop = self._poll_thread = None
        if stop is not None:
            stop.set()
        if thread is not None and thread is not threading.current_thread():
            # The thread wakes at once.  A download in progress is not waited
            # for long: its result is discarded (see update_index).
            thread.join(1.0)
        with self._index_lock:
            self._opener = None
        self._connected = False

    def is_connected(self) -> bool:
        """Whether or not the store is currently connected."""
        return self._opener is not None

    def _poll_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.poll):
            try:
                self.update_index()
            except Exception:
                # Keep serving the last good index and try again next time.
                logger.exception("StaticURLStore: cannot update the index from %s",
                                 self.root_url + self.query_path)

    # -- index -------------------------------------------------------------

    def update_index(self) -> None:
        """Request the most recent version of the metadata.

        This downloads the JSON index at the query path, replaces the local
        copy, and emits events for the differences with the previous copy
        (none on the first download).  The download happens without holding
        any lock; if two updates overlap, the index downloaded last is never
        replaced by one downloaded earlier.

        Raises
        ------
        StoreError
            If the store is not connected, or the index cannot be downloaded
            or is malformed; the previous index is kept.

        Events
        ------
        StoreDeleteEvent
            For each key that disappeared, with its old metadata.
        StoreSetEvent
            For each new key, with its metadata.
        StoreUpdateEvent
            For each key whose metadata changed, with the new metadata.
        """
        with self._index_lock:
            opener = self._opener
            self._fetches += 1
            ticket = self._fetches
        if opener is None:
            raise StoreError("StaticURLStore is not connected")
        index = self._download_index(opener)
        with self._index_lock:
            if self._opener is not opener:
                return  # disconnected (or reconnected) during the download
            if ticket < self._applied:
                return  # a later download has already been applied
            self._applied = ticket
            old, self._index = self._index, index
        if old is None:
            return
        for key, metadata in old.items():
            if key not in index:
                self._notify_delete(key, copy_metadata(metadata))
        for key, metadata in index.items():
            if key not in old:
                self._notify_set(key, copy_metadata(metadata), False)
        for key, metadata in index.items():
            if key in old and old[key] != metadata:
                self._notify_set(key, copy_metadata(metadata), True)

    def _download_index(self, opener: Any) -> dict[str, dict[str, Any]]:
        url = self.root_url + self.query_path
        try:
            with opener.open(url, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            error.close()
            error_class = AuthorizationError if error.code in (401, 403) else StoreError
            raise error_class(f"cannot fetch the index {url}: HTTP {error.code} "
                              f"{error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise StoreError(f"cannot fetch the index {url}: {reason}") from error
        try:
            index = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as error:
            raise StoreError(f"the index {url} is not UTF-8 JSON: {error}") from None
        if not isinstance(index, dict):
            raise StoreError(f"the index {url} must be a JSON object, "
                             f"not {type(index).__name__}")
        for key, metadata in index.items():
            if not isinstance(metadata, dict):
                raise StoreError(f"the index {url} gives key {key!r} metadata that is not "
                                 f"an object: {metadata!r}")
        return index

    def _current_index(self) -> dict[str, dict[str, Any]]:
        index = self._index
        if index is None:
            raise StoreError("StaticURLStore is not connected")
        return index

    def _metadata_of(self, key: str) -> dict[str, Any]:
        check_key(key)
        return self._current_index()[key]

    def _data_url(self, key: str) -> str:
        if any(segment in (".", "..") for segment in key.split("/")):
            raise StoreError(f"key {key!r} has '.' or '..' path segments, so it cannot be "
                             "fetched from a static URL layout")
        return (self.root_url + urllib.parse.quote(self.data_path, safe="/:@!$&'()*+,;=~")
                + urllib.parse.quote(key, safe="/"))

    def _opener_for(self, key: str) -> _ErrorMappingOpener:
        opener = self._opener
        if opener is None:
            raise StoreError("StaticURLStore is not connected")
        return _ErrorMappingOpener(opener, key)

    # -- reading -----------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Return ``{'readonly': True}``."""
        return {"readonly": True}

    def get(self, key: str) -> URLValue:
        """Return a :class:`~encore.storage.url_value.URLValue` for *key* (data fetched lazily)."""
        metadata = self._metadata_of(key)
        return URLValue(self._data_url(key), metadata, self._opener_for(key), self.timeout)

    def get_data(self, key: str) -> Any:
        """Open and return the data stream of *key* (the HTTP response)."""
        return self.get(key).data

    def get_data_range(self, key: str, start: int | None = None, end: int | None = None) -> Any:
        """Return the bytes ``start <= i < end`` of the data of *key*."""
        _check_range(start, end)
        return self.get(key).range(start, end)

    def get_metadata(self, key: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """Return a copy of the metadata of *key* from the index."""
        return select_metadata(self._metadata_of(key), select)

    def exists(self, key: str) -> bool:
        """Whether *key* is in the index."""
        check_key(key)
        return key in self._current_index()

    def query(self, select: Iterable[str] | None = None,
              **kwargs: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, metadata)`` for the keys of the index matching *kwargs*."""
        if select is not None:
            select = list(select)
        return self._query(self._current_index(), select, kwargs)

    @staticmethod
    def _query(index: dict[str, dict[str, Any]], select: list[str] | None,
               criteria: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, metadata in index.items():
            if metadata_matches(metadata, criteria):
                yield key, select_metadata(metadata, select)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Yield the keys of the index whose metadata matches *kwargs*."""
        index = self._current_index()
        return (key for key, metadata in index.items() if metadata_matches(metadata, kwargs))

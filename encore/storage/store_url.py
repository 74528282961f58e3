"""Open a key-value store from a URL: the store addresses of the ``encore-store`` command.

:func:`open_store` turns a short string into a connected store, so that a
program, a configuration file or the command line can name any store of
:mod:`encore.storage` -- and compositions of them -- without code.

Store URLs
----------
``memory:``
    A new, empty :class:`~encore.storage.dict_memory_store.DictMemoryStore`.
``sqlite:///abs/path.db``, ``sqlite:relative/path.db``, ``sqlite::memory:``
    A :class:`~encore.storage.sqlite_store.SqliteStore` (the file is created if
    missing).  Options: ``table`` (default ``store``), ``index``
    (``dynamic``, ``static`` or ``none``), ``index_columns`` (comma-separated
    metadata names), ``synchronous`` (``normal``, ``full``, ``extra``),
    ``timeout`` (seconds), ``create`` (also create missing parent directories).
``file:///abs/dir``, ``file:relative/dir`` or a bare path (``./backup``)
    A :class:`~encore.storage.filesystem_store.FileSystemStore`.  The directory
    must already be a store unless ``create`` is given, which creates and
    initialises a missing or empty directory (never a non-empty one that is not
    a store).  Options: ``create``, ``durable``, ``magic`` (the magic file
    name), ``locking`` (a
    :class:`~encore.storage.locking_filesystem_store.LockingFileSystemStore`,
    which also takes ``force_lock_timeout`` and ``poll``, the remote-event poll
    interval; 0 disables the polling thread).
``http://host/path/``, ``https://...``
    A read-only :class:`~encore.storage.static_url_store.StaticURLStore` with
    that root URL.  Options: ``data_path`` (default ``data/``), ``query_path``
    (default ``index.json``) -- the layout :mod:`encore.storage.server`
    serves --, ``poll`` (seconds between index downloads, default 300, 0 for
    none), ``timeout`` and ``wait``.
``encore+http://host:port/``, ``encore+https://...``
    A :class:`~encore.storage.dynamic_url_store.DynamicURLStore` talking to an
    :mod:`encore.storage.server` rooted at that URL (needs the ``requests``
    package).  Options: ``base_path`` (default ``store``), ``query_path``
    (default ``query``), ``timeout`` and ``wait``.
``default:``
    The default store (see below).

Credentials for the two HTTP forms go in the URL: ``http://user:pass@host/``.
``wait`` (seconds, default 0) retries connecting while the server cannot be
reached yet, which is handy right after starting one.

Options come from the URL's query string (``sqlite:///x.db?table=t&index=none``)
or as keyword arguments of :func:`open_store`; keyword arguments win.  Boolean
options accept ``1``/``true``/``yes``/``on`` and ``0``/``false``/``no``/``off``.

Every URL also accepts ``readonly=1``: a read-only view of the store, whose
write methods raise :class:`~encore.storage.abstract_store.ReadOnlyStoreError`.

Composition
-----------
``readonly:<url>``
    A read-only view of any store URL.
``join:<url>|<url>|...``
    A :class:`~encore.storage.joined_store.JoinedStore`, first store first.
``mount:<prefix>|<mount url>|<backing url>``
    A :class:`~encore.storage.mounted_store.MountedStore` of the first store
    at the (percent-encoded) key prefix, over the backing store; the backing
    URL is the rest of the string, so it may itself be a ``join:``.

From Python, a list of URLs (or stores) opens a joined store, and keyword
arguments wrap any store: ``read_only=True`` (a :class:`ReadOnlyView`),
``mounts={prefix: url}`` (a :class:`~encore.storage.mounted_store.MountedStore`
per prefix) and ``credentials={'username': ..., 'password': ...}`` with
optional ``users=<url>`` (a
:class:`~encore.storage.simple_auth_store.SimpleAuthStore` checking the user
records of ``users``, or of the store itself).  Store objects are accepted
wherever a URL is and are used as they are.

The default store
-----------------
With no URL, :func:`open_store` opens ``$ENCORE_STORE`` if that environment
variable is set, and otherwise a sqlite store in the user's data directory
(see :func:`default_store_path`), creating the directory if needed.

Errors
------
A malformed URL, an unknown scheme or an unknown or invalid option raises
:class:`StoreURLError` (a :class:`ValueError`) naming what was wrong and what
is accepted.  A store that cannot be opened raises the store's own error
(:class:`FileNotFoundError` for a directory that is not a store).

.. versionadded:: 1.0
"""

from __future__ import annotations

import os
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .abstract_store import AbstractReadOnlyStore, AuthorizationError, StoreError, Value

__all__ = [
    "ENV_VAR",
    "ReadOnlyView",
    "StoreURLError",
    "default_store_path",
    "default_store_url",
    "open_store",
]

#: The environment variable naming the default store.
ENV_VAR = "ENCORE_STORE"

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
_SCHEMES = (
    "memory:", "sqlite:", "file:", "http:", "https:", "encore+http:", "encore+https:",
    "default:", "readonly:", "join:", "mount:",
)
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class StoreURLError(ValueError):
    """A store URL or one of its options is malformed, unknown or invalid."""


# ---------------------------------------------------------------------------
# The default store


def default_store_path() -> str:
    """Return the file of the default sqlite store.

    ``$XDG_DATA_HOME/encore/store.db`` (``~/.local/share/encore/store.db``
    when unset) on Linux and other Unix systems,
    ``~/Library/Application Support/encore/store.db`` on macOS and
    ``%LOCALAPPDATA%\\encore\\store.db`` on Windows.
    """
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or os.path.join(
            os.path.expanduser("~"), "AppData", "Local")
    elif sys.platform == "darwin":
        base = os.path.join(os.path.expanduser("~"), "Library", "Application Support")
    else:
        base = os.environ.get("XDG_DATA_HOME") or ""
        # The XDG spec says relative paths are invalid and must be ignored.
        if not os.path.isabs(base):
            base = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "encore", "store.db")


def default_store_url() -> str:
    """Return the URL of the default store: ``$ENCORE_STORE``, else the sqlite store file."""
    url = os.environ.get(ENV_VAR, "").strip()
    if url:
        return url
    path = default_store_path().replace(os.sep, "/")
    if not path.startswith("/"):
        path = "/" + path  # a Windows drive: sqlite:///C:/...
    return "sqlite://" + urllib.parse.quote(path) + "?create=1"


# ---------------------------------------------------------------------------
# The read-only view


class ReadOnlyView(AbstractReadOnlyStore):
    """A read-only view of another store: reads are delegated, writes do not exist.

    Looking up a write method raises
    :class:`~encore.storage.abstract_store.ReadOnlyStoreError`, so the view
    can be handed to code (or served by :mod:`encore.storage.server`) that must
    not change the store.  Events are those of the wrapped store: the view
    shares its event manager.

    Parameters
    ----------
    store : AbstractReadOnlyStore
        The store to view.
    """

    def __init__(self, store: Any) -> None:
        if not callable(getattr(store, "get", None)) or not callable(
                getattr(store, "query", None)):
            raise TypeError(f"{store!r} is not a key-value store")
        super().__init__(getattr(store, "event_manager", None))
        self.store = store

    def connect(self, credentials: Any = None) -> None:
        """Connect the wrapped store if it is not connected yet."""
        if not self.store.is_connected():
            self.store.connect(credentials)

    def disconnect(self) -> None:
        """Disconnect the wrapped store."""
        self.store.disconnect()

    def is_connected(self) -> bool:
        """Whether the wrapped store is connected."""
        return self.store.is_connected()

    def info(self) -> dict[str, Any]:
        """The wrapped store's information, with ``readonly`` True."""
        return {**self.store.info(), "readonly": True}

    def get(self, key: str) -> Value:
        """Delegate to the wrapped store."""
        return self.store.get(key)

    def query(self, select: Iterable[str] | None = None,
              **kwargs: Any) -> Iterator[tuple[str, dict]]:
        """Delegate to the wrapped store."""
        return self.store.query(select, **kwargs)

    def exists(self, key: str) -> bool:
        """Delegate to the wrapped store."""
        return self.store.exists(key)

    def get_data(self, key: str) -> Any:
        """Delegate to the wrapped store."""
        return self.store.get_data(key)

    def get_data_range(self, key: str, start: int | None = None, end: int | None = None) -> Any:
        """Delegate to the wrapped store."""
        return self.store.get_data_range(key, start, end)

    def get_metadata(self, key: str, select: Iterable[str] | None = None) -> dict[str, Any]:
        """Delegate to the wrapped store."""
        return self.store.get_metadata(key, select)

    def query_keys(self, **kwargs: Any) -> Iterator[str]:
        """Delegate to the wrapped store."""
        return self.store.query_keys(**kwargs)

    def glob(self, pattern: str) -> Iterator[str]:
        """Delegate to the wrapped store."""
        return self.store.glob(pattern)

    def __repr__(self) -> str:
        return f"ReadOnlyView({self.store!r})"


# ---------------------------------------------------------------------------
# Option parsing


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise StoreURLError(f"option {name!r} must be a boolean (1/0, true/false, yes/no, on/off), "
                        f"not {value!r}")


def _as_float(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StoreURLError(f"option {name!r} must be a number, not {value!r}") from None
    if number != number or number < 0:
        raise StoreURLError(f"option {name!r} must be a non-negative number, not {value!r}")
    return number


def _as_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise StoreURLError(f"option {name!r} must be a string, not {value!r}")
    return value


def _as_names(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Iterable) and all(isinstance(part, str) for part in value):
        return list(value)
    raise StoreURLError(f"option {name!r} must be comma-separated names, not {value!r}")


def _as_index(name: str, value: Any) -> str | None:
    if value is None or value is False:
        return None
    text = str(value).strip().lower()
    if text in ("none", "", "off"):
        return None
    if text in ("dynamic", "static"):
        return text
    raise StoreURLError(f"option {name!r} must be 'dynamic', 'static' or 'none', not {value!r}")


_Converter = Callable[[str, Any], Any]

#: The options each scheme accepts, with their converters.  ``readonly`` is
#: accepted everywhere and handled by :func:`_open_leaf`.
_OPTIONS: dict[str, dict[str, _Converter]] = {
    "memory": {},
    "sqlite": {"table": _as_str, "index": _as_index, "index_columns": _as_names,
               "synchronous": _as_str, "timeout": _as_float, "create": _as_bool},
    "file": {"create": _as_bool, "durable": _as_bool, "magic": _as_str, "locking": _as_bool,
             "force_lock_timeout": _as_float, "poll": _as_float},
    "http": {"data_path": _as_str, "query_path": _as_str, "poll": _as_float,
             "timeout": _as_float, "wait": _as_float},
    "encore+http": {"base_path": _as_str, "query_path": _as_str, "timeout": _as_float,
                    "wait": _as_float},
}


def _parse_query(query: str, url: str) -> dict[str, str]:
    options: dict[str, str] = {}
    if not query:
        return options
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise StoreURLError(f"malformed options {query!r} in store URL {url!r}; "
                            "expected name=value pairs joined by '&'") from None
    for name, value in pairs:
        if name in options:
            raise StoreURLError(f"option {name!r} given twice in store URL {url!r}")
        options[name] = value
    return options


def _take_options(kind: str, url: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Convert *given* options for a store of *kind*; reject unknown ones."""
    accepted = _OPTIONS[kind]
    if "readonly" in given:
        _as_bool("readonly", given["readonly"])  # validate before opening anything
    unknown = sorted(set(given) - set(accepted) - {"readonly"})
    if unknown:
        names = ", ".join(sorted([*accepted, "readonly"]))
        raise StoreURLError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"for {kind} store URL {url!r}; accepted: {names}")
    return {name: accepted[name](name, value) for name, value in given.items()
            if name != "readonly"}


# ---------------------------------------------------------------------------
# Opening


def open_store(url: Any = None, **options: Any) -> Any:
    """Open (and by default connect) the store a URL names.

    See :mod:`encore.storage.store_url` for the URL forms and their options.

    Parameters
    ----------
    url : str, path-like, list, store or None
        A store URL, a bare directory path (a filesystem store), a list of
        URLs or stores (a joined store, first one first), a store object
        (returned as is) or None for the default store.
    connect : bool
        Connect the store before returning it (default True).
    read_only : bool
        Return a :class:`ReadOnlyView` of the store.
    mounts : mapping of str to URL, optional
        Mount each store at its key prefix over the store (a
        :class:`~encore.storage.mounted_store.MountedStore` per prefix).
    credentials : dict, optional
        ``{'username': ..., 'password': ...}``: wrap the store in a
        :class:`~encore.storage.simple_auth_store.SimpleAuthStore` and log in
        (when connecting).  Applied after ``mounts``, before ``read_only``.
    users : str or store, optional
        The store holding the user records for ``credentials`` (made by
        :func:`~encore.storage.simple_auth_store.set_user_password`); the
        store itself by default.
    **options
        Options of the store URL (they override those in the URL's query
        string), e.g. ``create=True`` or ``table='store'``.

    Returns
    -------
    store : AbstractReadOnlyStore
        The store, connected unless ``connect=False``.

    Raises
    ------
    StoreURLError
        If the URL is malformed, its scheme unknown, or an option unknown or
        invalid for the scheme.
    FileNotFoundError
        If a filesystem store's directory is not a store (and ``create`` was
        not given).
    StoreError
        If the store cannot be opened (e.g. a server that cannot be reached).

    Examples
    --------
    >>> store = open_store("memory:")
    >>> store.from_bytes("greeting", b"hello")
    >>> store.to_bytes("greeting")
    b'hello'
    """
    connect = _as_bool("connect", options.pop("connect", True))
    read_only = _as_bool("read_only", options.pop("read_only", False))
    mounts = options.pop("mounts", None)
    credentials = options.pop("credentials", None)
    users = options.pop("users", None)
    if users is not None and credentials is None:
        raise StoreURLError("the users option needs credentials")
    store = _open(url, options, connect)
    if mounts:
        store = _mount_all(store, mounts, connect)
    if credentials is not None:
        store = _authenticate(store, credentials, users, connect)
    if read_only:
        store = ReadOnlyView(store)
    return store


def _is_store(obj: Any) -> bool:
    return callable(getattr(obj, "get", None)) and callable(getattr(obj, "query", None))


def _open(url: Any, options: dict[str, Any], connect: bool) -> Any:
    if _is_store(url):
        if options:
            raise StoreURLError(f"options {sorted(options)} cannot apply to a store object")
        if connect and not url.is_connected():
            url.connect()
        return url
    if isinstance(url, (list, tuple)):
        if options:
            raise StoreURLError(f"options {sorted(options)} cannot apply to a list of stores")
        return _join([_open(part, {}, False) for part in url], connect)
    if url is None:
        url = default_store_url()
        if url.startswith("default:"):
            raise StoreURLError(f"${ENV_VAR} must not be 'default:' itself")
    if isinstance(url, os.PathLike):
        return _open_file(os.fspath(url), url, options, connect)
    if not isinstance(url, str):
        raise StoreURLError(f"a store URL must be a str, a path, a list or a store, not "
                            f"{type(url).__name__}")
    return _open_url(url.strip(), options, connect)


def _open_url(url: str, options: dict[str, Any], connect: bool) -> Any:
    if not url:
        raise StoreURLError("empty store URL; use 'default:' for the default store")
    match = _SCHEME_RE.match(url)
    if match is None:
        # No scheme (or a one-letter Windows drive): a bare path, which may
        # carry options after a '?' unless the whole string names a file.
        path, query = url, ""
        if "?" in url and not os.path.exists(url):
            path, _, query = url.partition("?")
        given = {**_parse_query(query, url), **options}
        return _open_file(path, url, given, connect)
    scheme = match.group(1).lower()
    rest = url[match.end():]
    if scheme == "default":
        if rest:
            raise StoreURLError(f"'default:' takes nothing after the colon, got {url!r}")
        default = default_store_url()
        if default.lower().startswith("default:"):
            raise StoreURLError(f"${ENV_VAR} must not be 'default:' itself")
        return _open_url(default, options, connect)
    if scheme == "readonly":
        return ReadOnlyView(_open_url(rest, options, connect))
    if scheme == "join":
        if options:
            raise StoreURLError(f"options {sorted(options)} cannot apply to a joined store")
        parts = [part.strip() for part in rest.split("|")]
        if not rest.strip() or not all(parts):
            raise StoreURLError(f"'join:' needs store URLs separated by '|', got {url!r}")
        return _join([_open_url(part, {}, False) for part in parts], connect)
    if scheme == "mount":
        if options:
            raise StoreURLError(f"options {sorted(options)} cannot apply to a mounted store")
        pieces = rest.split("|", 2)
        if len(pieces) != 3 or not pieces[1].strip() or not pieces[2].strip():
            raise StoreURLError("'mount:' needs '<prefix>|<mount url>|<backing url>', "
                                f"got {url!r}")
        prefix = urllib.parse.unquote(pieces[0])
        mount = _open_url(pieces[1].strip(), {}, False)
        backing = _open_url(pieces[2].strip(), {}, False)
        return _mount(prefix, mount, backing, connect)
    split = urllib.parse.urlsplit(url)
    given = {**_parse_query(split.query, url), **options}
    if split.fragment:
        raise StoreURLError(f"store URLs take no '#fragment': {url!r}")
    if scheme == "memory":
        if rest.partition("?")[0]:
            raise StoreURLError(f"'memory:' takes no path, got {url!r}")
        return _finish(_open_memory(_take_options("memory", url, given)), given, connect)
    if scheme == "sqlite":
        return _open_sqlite(split, url, given, connect)
    if scheme == "file":
        if split.netloc not in ("", "localhost"):
            raise StoreURLError(f"file: URLs must be local (no host), got {url!r}")
        return _open_file(_url_path(split.path), url, given, connect)
    if scheme in ("http", "https"):
        return _open_static(split, url, given, connect)
    if scheme in ("encore+http", "encore+https"):
        return _open_dynamic(split, url, given, connect)
    accepted = ", ".join(_SCHEMES)
    raise StoreURLError(f"unknown store URL scheme {scheme + ':'!r} in {url!r}; "
                        f"accepted: {accepted}, or a directory path")


def _url_path(path: str) -> str:
    path = urllib.parse.unquote(path)
    if os.name == "nt" and re.match(r"^/[A-Za-z]:", path):
        path = path[1:]
    return path


def _finish(store: Any, given: Mapping[str, Any], connect: bool) -> Any:
    """Connect a leaf store if asked, and apply the generic ``readonly`` option."""
    if connect and not store.is_connected():
        store.connect()
    if _as_bool("readonly", given.get("readonly", False)):
        store = ReadOnlyView(store)
    return store


def _open_memory(options: dict[str, Any]) -> Any:
    from .dict_memory_store import DictMemoryStore

    return DictMemoryStore()


def _open_sqlite(split: urllib.parse.SplitResult, url: str, given: dict[str, Any],
                 connect: bool) -> Any:
    from .sqlite_store import SqliteStore

    if split.netloc:
        raise StoreURLError(f"sqlite URLs take no host: use 'sqlite:///abs/path.db' or "
                            f"'sqlite:relative/path.db', got {url!r}")
    options = _take_options("sqlite", url, given)
    location = _url_path(split.path)
    if not location:
        raise StoreURLError(f"sqlite URL without a database path: {url!r}; "
                            "use 'sqlite:///abs/path.db' or 'sqlite::memory:'")
    create = options.pop("create", False)
    if location != ":memory:":
        parent = os.path.dirname(os.path.abspath(location))
        if create:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        elif not os.path.isdir(parent):
            raise FileNotFoundError(f"cannot create sqlite database {location!r}: directory "
                                    f"{parent!r} does not exist (add create=1 to create it)")
    store = SqliteStore(location, **options)
    return _finish(store, given, connect)


def _open_file(path: str, url: Any, given: Mapping[str, Any], connect: bool) -> Any:
    from .filesystem_store import FileSystemStore, init_shared_store

    options = _take_options("file", str(url), given)
    if not path:
        raise StoreURLError(f"file store URL without a path: {url!r}")
    create = options.pop("create", False)
    locking = options.pop("locking", False)
    magic = options.pop("magic", ".FSStore")
    durable = options.pop("durable", False)
    locking_options = {name: options.pop(name) for name in ("force_lock_timeout", "poll")
                       if name in options}
    if locking_options and not locking:
        raise StoreURLError(f"options {sorted(locking_options)} need locking=1: {url!r}")
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(os.path.join(path, magic)):
        if not create:
            reason = "does not exist" if not os.path.exists(path) else "is not a store"
            raise FileNotFoundError(f"{path!r} {reason} (create it with the create option, "
                                    f"e.g. '{path}?create=1' or --create)")
        if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
            raise FileExistsError(f"refusing to turn {path!r} into a store: it exists and is "
                                  "not an empty directory")
        os.makedirs(path, exist_ok=True)
        init_shared_store(path, magic)
    if locking:
        from .locking_filesystem_store import LockingFileSystemStore

        extra: dict[str, Any] = {}
        if "force_lock_timeout" in locking_options:
            extra["force_lock_timeout"] = locking_options["force_lock_timeout"]
        if "poll" in locking_options:
            extra["remote_event_poll_interval"] = locking_options["poll"]
        store = LockingFileSystemStore(path, magic_fname=magic, durable=durable, **extra)
    else:
        store = FileSystemStore(path, magic, durable=durable)
    return _finish(store, given, connect)


def _split_credentials(split: urllib.parse.SplitResult) -> tuple[str, tuple[str, str] | None]:
    """Return the URL's ``scheme-less`` network location without credentials, and them."""
    host = split.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{split.port}" if split.port is not None else "")
    if split.username is None:
        return netloc, None
    return netloc, (urllib.parse.unquote(split.username),
                    urllib.parse.unquote(split.password or ""))


def _check_host(split: urllib.parse.SplitResult, url: str) -> None:
    try:
        split.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise StoreURLError(f"bad port in store URL {url!r}") from None
    if not split.hostname:
        raise StoreURLError(f"store URL without a host: {url!r}")


def _with_wait(wait: float, attempt: Callable[[], None]) -> None:
    """Run *attempt*, retrying for *wait* seconds while the server cannot be reached."""
    deadline = time.monotonic() + wait
    while True:
        try:
            attempt()
            return
        except AuthorizationError:
            raise
        except (StoreError, OSError):
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


def _open_static(split: urllib.parse.SplitResult, url: str, given: dict[str, Any],
                 connect: bool) -> Any:
    from .static_url_store import StaticURLStore

    _check_host(split, url)
    options = _take_options("http", url, given)
    netloc, credentials = _split_credentials(split)
    path = split.path if split.path.endswith("/") else split.path + "/"
    root_url = urllib.parse.urlunsplit((split.scheme, netloc, path, "", ""))
    wait = options.pop("wait", 0.0)
    store = StaticURLStore(root_url, options.pop("data_path", "data/"),
                           options.pop("query_path", "index.json"), **options)
    if connect:
        auth = None if credentials is None else \
            {"username": credentials[0], "password": credentials[1]}
        _with_wait(wait, lambda: store.connect(auth))
    return _finish(store, given, False)


def _open_dynamic(split: urllib.parse.SplitResult, url: str, given: dict[str, Any],
                  connect: bool) -> Any:
    try:
        from .dynamic_url_store import DynamicURLStore
    except ImportError as error:
        raise StoreURLError(f"{url!r} needs the 'requests' package: {error}") from error

    _check_host(split, url)
    options = _take_options("encore+http", url, given)
    netloc, credentials = _split_credentials(split)
    scheme = split.scheme.lower().removeprefix("encore+")
    root = urllib.parse.urlunsplit((scheme, netloc, split.path.rstrip("/"), "", ""))
    base_path = options.pop("base_path", "store").strip("/")
    query_path = options.pop("query_path", "query").strip("/")
    wait = options.pop("wait", 0.0)
    store = DynamicURLStore(f"{root}/{base_path}", f"{root}/{query_path}", **options)
    if connect:
        if credentials is None:
            store.connect()
        else:
            import requests

            session = requests.Session()
            session.auth = credentials
            store.connect((credentials[0], session))
        if wait:
            # connect() does not touch the network; probe the server with a
            # cheap request so that "wait" means "until it answers".
            _with_wait(wait, lambda: store.exists(""))
    return _finish(store, given, False)


def _join(stores: Sequence[Any], connect: bool) -> Any:
    from .joined_store import JoinedStore

    if not stores:
        raise StoreURLError("a joined store needs at least one store")
    store = JoinedStore(list(stores))
    if connect:
        store.connect()
    return store


def _mount(prefix: str, mount: Any, backing: Any, connect: bool) -> Any:
    from .mounted_store import MountedStore

    store = MountedStore(prefix, mount, backing)
    if connect:
        store.connect()
    return store


def _authenticate(store: Any, credentials: Any, users: Any, connect: bool) -> Any:
    from .simple_auth_store import SimpleAuthStore, recommended_encoder

    if not isinstance(credentials, Mapping):
        raise StoreURLError("credentials must be a dict with 'username' and 'password'")
    user_store = None if users is None else _open(users, {}, connect)
    auth = SimpleAuthStore(store, recommended_encoder(), user_key_store=user_store)
    if connect:
        auth.connect(dict(credentials))
    return auth


def _mount_all(store: Any, mounts: Mapping[str, Any], connect: bool) -> Any:
    if not isinstance(mounts, Mapping):
        raise StoreURLError(f"mounts must be a mapping of key prefix to store URL, "
                            f"not {type(mounts).__name__}")
    # Longest prefix outermost, so the most specific mount answers first.
    for prefix in sorted(mounts, key=len):
        if not isinstance(prefix, str):
            raise StoreURLError(f"mount prefixes must be str, not {prefix!r}")
        store = _mount(prefix, _open(mounts[prefix], {}, False), store, connect)
    return store

"""Tests of :func:`encore.storage.open_store`: store URLs, options, composition, errors."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from encore.storage import open_store
from encore.storage.abstract_store import ReadOnlyStoreError, StoreError
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.filesystem_store import FileSystemStore, init_shared_store
from encore.storage.joined_store import JoinedStore
from encore.storage.locking_filesystem_store import LockingFileSystemStore
from encore.storage.mounted_store import MountedStore
from encore.storage.server import StoreServer
from encore.storage.sqlite_store import SqliteStore
from encore.storage.static_url_store import StaticURLStore
from encore.storage.store_url import (
    ENV_VAR,
    ReadOnlyView,
    StoreURLError,
    default_store_path,
    default_store_url,
)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Never let a test see (or create) the real default store."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    return home


def file_url(path) -> str:
    return "file://" + str(path).replace(os.sep, "/")


# -- memory and sqlite ---------------------------------------------------------------------------


def test_memory_url_opens_a_connected_empty_dict_store():
    store = open_store("memory:")
    assert isinstance(store, DictMemoryStore)
    assert store.is_connected()
    assert list(store.query_keys()) == []
    assert open_store("memory:") is not store


def test_memory_url_refuses_a_path():
    with pytest.raises(StoreURLError, match="takes no path"):
        open_store("memory:/x")


def test_sqlite_absolute_url_with_options(tmp_path):
    url = f"sqlite://{tmp_path}/data.db?table=things&index=static&index_columns=a,b"
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    assert store.location == str(tmp_path / "data.db")
    assert (store.table, store.index) == ("things", "static")
    assert {"a", "b"} <= store.index_columns
    store.from_bytes("k", b"v")
    store.disconnect()
    # Reopened from the same file: the value is still there.
    assert open_store(f"sqlite://{tmp_path}/data.db?table=things").to_bytes("k") == b"v"


def test_sqlite_relative_url_and_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:rel.db")
    assert os.path.abspath(store.location) == str(tmp_path / "rel.db")
    memory = open_store("sqlite::memory:?index=none")
    assert memory.location == ":memory:" and memory.index is None


def test_sqlite_percent_encoded_path(tmp_path):
    store = open_store(f"sqlite://{tmp_path}/with%20space.db")
    assert store.location == str(tmp_path / "with space.db")


def test_keyword_options_override_the_query_string(tmp_path):
    store = open_store(f"sqlite://{tmp_path}/x.db?table=a", table="b")
    assert store.table == "b"


def test_sqlite_missing_directory_needs_create(tmp_path):
    url = f"sqlite://{tmp_path}/sub/dir/x.db"
    with pytest.raises(FileNotFoundError, match="create"):
        open_store(url)
    assert not (tmp_path / "sub").exists()
    store = open_store(url + "?create=1")
    store.from_bytes("k", b"v")
    assert (tmp_path / "sub" / "dir" / "x.db").is_file()


@pytest.mark.parametrize("url, message", [
    ("sqlite://host/x.db", "no host"),
    ("sqlite:", "without a database path"),
    ("sqlite::memory:?index=sometimes", "'dynamic', 'static' or 'none'"),
    ("sqlite::memory:?timeout=soon", "must be a number"),
    ("sqlite::memory:?timeout=-1", "non-negative"),
    ("sqlite::memory:?colour=blue", "unknown option 'colour'.*accepted: create, index"),
    ("sqlite::memory:?table=a&table=b", "given twice"),
    ("sqlite::memory:?table", "malformed options"),
    ("memory:#frag", "fragment"),
    ("memory:?readonly=perhaps", "must be a boolean"),
])
def test_bad_options_raise_store_url_error_naming_the_problem(url, message):
    with pytest.raises(StoreURLError, match=message):
        open_store(url)


def test_store_url_error_is_a_value_error():
    assert issubclass(StoreURLError, ValueError)


@pytest.mark.parametrize("url", ["ftp://host/x", "s3://bucket", "redis:"])
def test_unknown_scheme_names_it_and_the_accepted_ones(url):
    with pytest.raises(StoreURLError) as info:
        open_store(url)
    message = str(info.value)
    assert url.split(":")[0] + ":" in message
    for accepted in ("memory:", "sqlite:", "file:", "http:", "encore+http:", "join:"):
        assert accepted in message


@pytest.mark.parametrize("bad", [42, b"memory:", object()])
def test_url_of_the_wrong_type(bad):
    with pytest.raises(StoreURLError, match="must be a str"):
        open_store(bad)


def test_empty_url_is_an_error():
    with pytest.raises(StoreURLError, match="empty store URL"):
        open_store("  ")


# -- filesystem ----------------------------------------------------------------------------------


def test_file_url_opens_an_existing_store(tmp_path):
    init_shared_store(tmp_path)
    store = open_store(file_url(tmp_path))
    assert isinstance(store, FileSystemStore)
    assert store.path == str(tmp_path)


def test_bare_path_is_a_filesystem_store(tmp_path, monkeypatch):
    init_shared_store(tmp_path)
    monkeypatch.chdir(tmp_path.parent)
    store = open_store(tmp_path.name)
    assert isinstance(store, FileSystemStore) and store.path == str(tmp_path)
    assert open_store(tmp_path).path == str(tmp_path)  # a path-like object too


def test_missing_directory_is_not_created_unless_asked(tmp_path):
    target = tmp_path / "new"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_store(file_url(target))
    assert not target.exists()
    store = open_store(file_url(target) + "?create=1")
    store.from_bytes("k", b"v")
    assert (target / ".FSStore").is_file()
    assert open_store(str(target)).to_bytes("k") == b"v"


def test_create_keyword_and_bare_path_options(tmp_path):
    assert isinstance(open_store(tmp_path / "a", create=True), FileSystemStore)
    assert isinstance(open_store(f"{tmp_path}/b?create=yes"), FileSystemStore)


def test_existing_directory_that_is_not_a_store(tmp_path):
    (tmp_path / "precious.txt").write_text("do not touch")
    with pytest.raises(FileNotFoundError, match="is not a store"):
        open_store(str(tmp_path))
    with pytest.raises(FileExistsError, match="not an empty directory"):
        open_store(str(tmp_path), create=True)
    assert sorted(os.listdir(tmp_path)) == ["precious.txt"]


def test_empty_directory_is_initialised_with_create(tmp_path):
    store = open_store(str(tmp_path), create=True)
    assert isinstance(store, FileSystemStore)


def test_locking_filesystem_store_options(tmp_path):
    url = file_url(tmp_path) + "?create=1&locking=1&poll=0&force_lock_timeout=2.5"
    store = open_store(url)
    try:
        assert isinstance(store, LockingFileSystemStore)
        assert store.force_lock_timeout == 2.5
        assert store.remote_event_poll_interval == 0
    finally:
        store.disconnect()


def test_locking_options_need_locking(tmp_path):
    with pytest.raises(StoreURLError, match="need locking=1"):
        open_store(file_url(tmp_path) + "?create=1&poll=1")


def test_file_url_with_a_remote_host_is_refused():
    with pytest.raises(StoreURLError, match="must be local"):
        open_store("file://server/share")


# -- default store -------------------------------------------------------------------------------


def test_default_store_is_sqlite_in_the_user_data_directory(isolated_home):
    if sys.platform.startswith(("win", "darwin")):
        pytest.skip("the XDG layout is checked on Linux")
    expected = isolated_home / ".local" / "share" / "encore" / "store.db"
    assert default_store_path() == str(expected)
    store = open_store()
    assert isinstance(store, SqliteStore)
    store.from_bytes("k", b"v")
    assert expected.is_file()
    assert open_store("default:").to_bytes("k") == b"v"


def test_xdg_data_home_is_honoured_when_absolute(tmp_path, monkeypatch):
    if sys.platform.startswith(("win", "darwin")):
        pytest.skip("XDG_DATA_HOME is a Unix convention")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == str(tmp_path / "xdg" / "encore" / "store.db")
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    assert "relative" not in default_store_path()


def test_environment_variable_overrides_the_default(tmp_path, monkeypatch, isolated_home):
    monkeypatch.setenv(ENV_VAR, f"sqlite://{tmp_path}/env.db")
    assert default_store_url() == f"sqlite://{tmp_path}/env.db"
    open_store().from_bytes("k", b"v")
    assert (tmp_path / "env.db").is_file()
    assert not (isolated_home / ".local").exists()


def test_default_pointing_at_itself_is_refused(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "default:")
    with pytest.raises(StoreURLError, match="must not be 'default:'"):
        open_store()
    with pytest.raises(StoreURLError, match="must not be 'default:'"):
        open_store("default:")


def test_default_takes_nothing_after_the_colon():
    with pytest.raises(StoreURLError, match="takes nothing"):
        open_store("default:x")


# -- composition ---------------------------------------------------------------------------------


def test_readonly_option_and_prefix(tmp_path):
    for url in (f"sqlite://{tmp_path}/r.db?readonly=1", f"readonly:sqlite://{tmp_path}/r.db"):
        view = open_store(url)
        assert isinstance(view, ReadOnlyView)
        assert view.info()["readonly"] is True
        with pytest.raises(ReadOnlyStoreError):
            view.set_data  # noqa: B018 -- looking the method up is what raises
        assert not hasattr(view, "from_bytes")


def test_read_only_view_reads_through(tmp_path):
    store = open_store(f"sqlite://{tmp_path}/r.db")
    store.set("a/b", (__import__("io").BytesIO(b"data"), {"kind": "x"}))
    view = open_store(store, read_only=True)
    assert view.to_bytes("a/b") == b"data"
    assert view.get_metadata("a/b") == {"kind": "x"}
    assert list(view.glob("a/*")) == ["a/b"]
    assert list(view.query_keys(kind="x")) == ["a/b"]
    assert view.exists("a/b") and not view.exists("nope")
    assert view.get_data_range("a/b", 1, 3).read() == b"at"
    with pytest.raises(KeyError):
        view.get("nope")


def test_join_url_joins_in_order(tmp_path):
    first = open_store(f"sqlite://{tmp_path}/1.db")
    second = open_store(f"sqlite://{tmp_path}/2.db")
    first.from_bytes("both", b"first")
    second.from_bytes("both", b"second")
    second.from_bytes("only2", b"two")
    first.disconnect()
    second.disconnect()
    joined = open_store(f"join:sqlite://{tmp_path}/1.db | sqlite://{tmp_path}/2.db")
    assert isinstance(joined, JoinedStore)
    assert joined.to_bytes("both") == b"first"
    assert joined.to_bytes("only2") == b"two"
    # The same from a list, mixing URLs and a store object.
    listed = open_store([f"sqlite://{tmp_path}/1.db", DictMemoryStore()])
    assert isinstance(listed, JoinedStore) and listed.is_connected()


@pytest.mark.parametrize("url", ["join:", "join:memory:||memory:"])
def test_bad_join(url):
    with pytest.raises(StoreURLError, match="separated by '|'"):
        open_store(url)


def test_mount_url(tmp_path):
    backing = open_store(tmp_path / "fs", create=True)
    backing.from_bytes("cache/a", b"backing")
    store = open_store(f"mount:cache/|memory:|{tmp_path}/fs")
    assert isinstance(store, MountedStore) and store.mount_point == "cache/"
    assert store.to_bytes("cache/a") == b"backing"
    store.from_bytes("cache/b", b"mounted")
    assert not backing.exists("cache/b")
    assert store.to_bytes("cache/b") == b"mounted"


def test_mount_prefix_is_percent_decoded():
    assert open_store("mount:a%7Cb/|memory:|memory:").mount_point == "a|b/"


def test_bad_mount():
    with pytest.raises(StoreURLError, match="<prefix>"):
        open_store("mount:x/|memory:")


def test_mounts_keyword():
    shallow, deep = DictMemoryStore(), DictMemoryStore()
    store = open_store("memory:", mounts={"tmp/": shallow, "tmp/deep/": deep})
    # The most specific mount is outermost, so it answers first.
    assert isinstance(store, MountedStore) and store.mount_point == "tmp/deep/"
    assert store.backing_store.mount_point == "tmp/"
    store.from_bytes("tmp/deep/x", b"1")
    shallow.from_bytes("y", b"2")
    assert deep.to_bytes("x") == b"1"
    assert sorted(store.query_keys()) == ["tmp/deep/x", "tmp/y"]
    assert store.to_bytes("tmp/y") == b"2"
    with pytest.raises(StoreURLError, match="mapping"):
        open_store("memory:", mounts=["tmp/"])


def test_credentials_wrap_in_a_simple_auth_store(tmp_path):
    from encore.storage.simple_auth_store import (
        AuthenticationError,
        PBKDF2Encoder,
        SimpleAuthStore,
        set_user_password,
    )

    users = open_store(tmp_path / "users", create=True)
    # A cheap encoder keeps the test fast; records say how they were made.
    set_user_password(users, "ann", "s3cret", encoder=PBKDF2Encoder(iterations=1000))
    url = f"sqlite://{tmp_path}/data.db"
    store = open_store(url, credentials={"username": "ann", "password": "s3cret"},
                       users=users)
    assert isinstance(store, SimpleAuthStore) and store.username == "ann"
    store.from_bytes("k", b"v")
    assert open_store(url).to_bytes("k") == b"v"
    with pytest.raises(AuthenticationError):
        open_store(url, credentials={"username": "ann", "password": "wrong"}, users=users)
    with pytest.raises(StoreURLError, match="needs credentials"):
        open_store(url, users=users)


def test_store_objects_pass_through_and_get_connected():
    store = DictMemoryStore()
    assert open_store(store) is store and store.is_connected()
    with pytest.raises(StoreURLError, match="cannot apply"):
        open_store(store, table="x")


def test_connect_false_leaves_the_store_disconnected(tmp_path):
    store = open_store(f"sqlite://{tmp_path}/x.db", connect=False)
    assert not store.is_connected()


# -- HTTP stores against a real server ------------------------------------------------------------


@pytest.fixture
def served():
    backing = DictMemoryStore()
    backing.connect()
    backing.set("greeting", (__import__("io").BytesIO(b"hello"), {"lang": "en"}))
    with StoreServer(backing) as server:
        yield backing, server


def test_static_http_url(served):
    _, server = served
    store = open_store(server.url + "/?poll=0")
    try:
        assert isinstance(store, StaticURLStore)
        assert store.root_url == server.url + "/"
        assert (store.data_path, store.query_path) == ("data/", "index.json")
        assert store.to_bytes("greeting") == b"hello"
        assert store.get_metadata("greeting") == {"lang": "en"}
    finally:
        store.disconnect()


def test_dynamic_http_url_reads_and_writes(served):
    backing, server = served
    store = open_store("encore+" + server.url + "/?wait=5")
    try:
        assert store.base_url == server.base_url and store.query_url == server.query_url
        assert store.to_bytes("greeting") == b"hello"
        store.from_bytes("new", b"written")
        assert backing.to_bytes("new") == b"written"
    finally:
        store.disconnect()


def test_credentials_in_the_url(served):
    from encore.storage.abstract_store import AuthorizationError
    from encore.storage.server import password_checker

    backing, _ = served
    with StoreServer(backing, authenticate=password_checker({"ann": "s3cret"})) as server:
        host = server.url.removeprefix("http://")
        good = open_store(f"encore+http://ann:s3cret@{host}/")
        assert good.to_bytes("greeting") == b"hello"
        good.disconnect()
        bad = open_store(f"encore+http://ann:wrong@{host}/")
        with pytest.raises(AuthorizationError):
            bad.to_bytes("greeting")
        bad.disconnect()
        static = open_store(f"http://ann:s3cret@{host}/?poll=0")
        assert static.to_bytes("greeting") == b"hello"
        static.disconnect()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_fails_after_wait():
    port = free_port()
    with pytest.raises((StoreError, OSError)):
        open_store(f"http://127.0.0.1:{port}/?wait=0.3&timeout=1")


@pytest.mark.parametrize("url, message", [
    ("http:///path", "without a host"),
    ("http://host:99999/", "bad port"),
    ("http://host/?colour=1", "unknown option 'colour'"),
    ("encore+http://host/?poll=1", "unknown option 'poll'"),
])
def test_bad_http_urls(url, message):
    with pytest.raises(StoreURLError, match=message):
        open_store(url)

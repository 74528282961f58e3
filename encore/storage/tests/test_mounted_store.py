"""MountedStore: every conformance mixin, plus mounting, copy-on-write, push and events.

It also composes MountedStore over JoinedStore over SqliteStore +
FileSystemStore and runs the read and write suites on the result.
"""

from __future__ import annotations

import shutil
import tempfile
import unittest
from io import BytesIO

from encore.events.api import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import StoreEvent, StoreModificationEvent
from encore.storage.joined_store import JoinedStore
from encore.storage.mounted_store import MountedStore
from encore.storage.tests.abstract_test import (
    StoreBadInputTestMixin,
    StoreConcurrencyTestMixin,
    StoreEventsTestMixin,
    StoreKeysTestMixin,
    StoreLargeValueTestMixin,
    StoreReadTestMixin,
    StoreTransactionTestMixin,
    StoreWriteTestMixin,
    populate_fixture,
)


def fixture_items():
    scratch = DictMemoryStore(EventManager())
    populate_fixture(scratch)
    for key, metadata in sorted(scratch.query()):
        yield key, scratch.to_bytes(key), metadata


def make_children():
    mount, backing = DictMemoryStore(EventManager()), DictMemoryStore(EventManager())
    mount.connect()
    backing.connect()
    return mount, backing


class MountedStoreFixture:
    """``mount_point=''``; keys alternate between the stores, deletable keys are mounted.

    ``delete`` only removes keys of the mount store (a backing-only key
    raises KeyError), so 'test1' and 'existing_key*' live there.
    """

    def setUp(self):
        self.mount, self.backing = make_children()
        for index, (key, data, metadata) in enumerate(fixture_items()):
            mounted = key == "test1" or key.startswith("existing_key") or index % 2 == 0
            target = self.mount if mounted else self.backing
            target.set(key, (BytesIO(data), metadata))
        self.store = MountedStore("", self.mount, self.backing, event_manager=EventManager())
        self.store.connect()


class MountedStoreReadTest(MountedStoreFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class MountedStoreBackingOnlyReadTest(StoreReadTestMixin, unittest.TestCase):
    """Everything falls through to the backing store under a non-empty mount point."""

    def setUp(self):
        self.mount, self.backing = make_children()
        for key, data, metadata in fixture_items():
            self.backing.set(key, (BytesIO(data), metadata))
        self.store = MountedStore("key", self.mount, self.backing)
        self.store.connect()


class MountedStoreWriteTest(MountedStoreFixture, StoreWriteTestMixin, unittest.TestCase):
    def test_delete(self):
        # Upstream overrides this too: only mount-store keys can be deleted.
        key = next(k for k in self.mount.query_keys() if k.startswith("key"))
        self.store.delete(key)
        assert not self.store.exists(key)


class MountedStoreKeysTest(MountedStoreFixture, StoreKeysTestMixin, unittest.TestCase):
    pass


class MountedStoreEventsTest(MountedStoreFixture, StoreEventsTestMixin, unittest.TestCase):
    pass


class MountedStoreTransactionTest(
    MountedStoreFixture, StoreTransactionTestMixin, unittest.TestCase
):
    pass


class MountedStoreLargeValueTest(
    MountedStoreFixture, StoreLargeValueTestMixin, unittest.TestCase
):
    large_value_size = 8 * 1048576
    large_value_held_in_memory = True


class MountedStoreConcurrencyTest(
    MountedStoreFixture, StoreConcurrencyTestMixin, unittest.TestCase
):
    concurrency_threads = 4


class MountedStoreBadInputTest(MountedStoreFixture, StoreBadInputTestMixin, unittest.TestCase):
    pass


class Recorder:
    def __init__(self, manager, cls=StoreModificationEvent):
        self.events = []
        manager.connect(cls, self)

    def __call__(self, event):
        self.events.append(event)

    def summary(self):
        return [(type(event).__name__, event.key, event.metadata) for event in self.events]


class MountedStoreBehaviourTest(unittest.TestCase):
    def setUp(self):
        self.mount, self.backing = make_children()
        self.store = MountedStore("m/", self.mount, self.backing, event_manager=EventManager())
        self.store.connect()

    def put(self, store, key, data, **metadata):
        store.set(key, (BytesIO(data), metadata))

    def test_attributes(self):
        assert self.store.mount_point == "m/"
        assert self.store.stores == [self.mount, self.backing]
        assert self.store.info() == {"readonly": False}

    def test_bad_construction(self):
        with self.assertRaises(TypeError):
            MountedStore(None, self.mount, self.backing)
        with self.assertRaises(ValueError):
            MountedStore("m/", self.mount, self.mount)
        with self.assertRaises(TypeError):
            MountedStore("m/", object(), self.backing)

    def test_mount_answers_first_under_mount_point(self):
        self.put(self.mount, "a", b"mounted", src="mount")
        self.put(self.backing, "m/a", b"backing", src="backing")
        assert self.store.to_bytes("m/a") == b"mounted"
        assert self.store.get_metadata("m/a") == {"src": "mount"}

    def test_backing_answers_otherwise(self):
        self.put(self.backing, "m/b", b"backing")
        self.put(self.backing, "other", b"other")
        # A mount-store key outside the mount point's view is not 'other'.
        self.put(self.mount, "other", b"never visible as 'other'")
        assert self.store.to_bytes("m/b") == b"backing"
        assert self.store.to_bytes("other") == b"other"
        assert self.store.to_bytes("m/other") == b"never visible as 'other'"
        with self.assertRaises(KeyError) as raised:
            self.store.get("m/missing")
        assert raised.exception.args == ("m/missing",)

    def test_writes_only_under_mount_point(self):
        self.store.set("m/new", (BytesIO(b"new"), {"a": 1}))
        assert self.mount.to_bytes("new") == b"new"
        assert not self.backing.exists("m/new")
        for call in (
            lambda: self.store.set("other", (BytesIO(b""), {})),
            lambda: self.store.set_data("other", BytesIO(b"")),
            lambda: self.store.set_metadata("other", {}),
            lambda: self.store.update_metadata("other", {}),
            lambda: self.store.delete("other"),
            lambda: self.store.push("other"),
        ):
            with self.assertRaises(KeyError) as raised:
                call()
            assert raised.exception.args == ("other",)

    def test_set_data_copy_on_write_keeps_backing_metadata(self):
        self.put(self.backing, "m/k", b"backing", level="backing")
        self.store.set_data("m/k", BytesIO(b"new"))
        assert self.store.to_bytes("m/k") == b"new"
        assert self.store.get_metadata("m/k") == {"level": "backing"}
        assert self.backing.to_bytes("m/k") == b"backing"

    def test_set_metadata_copy_on_write_keeps_backing_data(self):
        self.put(self.backing, "m/k", b"backing", level="backing")
        self.store.set_metadata("m/k", {"level": "new"})
        assert self.store.to_bytes("m/k") == b"backing"
        assert self.mount.get_metadata("k") == {"level": "new"}
        assert self.backing.get_metadata("m/k") == {"level": "backing"}

    def test_update_metadata_merges_onto_backing(self):
        self.put(self.backing, "m/k", b"backing", level="backing", keep=True)
        self.store.update_metadata("m/k", {"level": "new"})
        assert self.store.get_metadata("m/k") == {"level": "new", "keep": True}
        assert self.mount.to_bytes("k") == b"backing"
        with self.assertRaises(KeyError) as raised:
            self.store.update_metadata("m/missing", {})
        assert raised.exception.args == ("m/missing",)

    def test_delete_only_from_mount(self):
        self.put(self.backing, "m/k", b"backing")
        with self.assertRaises(KeyError) as raised:
            self.store.delete("m/k")
        assert raised.exception.args == ("m/k",)
        self.store.set_data("m/k", BytesIO(b"override"))
        self.store.delete("m/k")
        # The backing copy is visible again.
        assert self.store.to_bytes("m/k") == b"backing"

    def test_push(self):
        self.store.set("m/k", (BytesIO(b"pushed"), {"p": 1}))
        self.store.push("m/k")
        assert not self.mount.exists("k")
        assert self.backing.to_bytes("m/k") == b"pushed"
        assert self.store.get_metadata("m/k") == {"p": 1}
        assert self.store.to_bytes("m/k") == b"pushed"
        with self.assertRaises(KeyError) as raised:
            self.store.push("m/k")
        assert raised.exception.args == ("m/k",)

    def test_push_failure_keeps_mount_copy(self):
        class Refusing(DictMemoryStore):
            def set(self, key, value, buffer_size=1048576):
                raise OSError("backing unavailable")

        store = MountedStore("m/", self.mount, Refusing(EventManager()))
        self.put(self.mount, "k", b"kept")
        with self.assertRaises(OSError):
            store.push("m/k")
        assert store.to_bytes("m/k") == b"kept"

    def test_query_shadows_by_existence(self):
        self.put(self.mount, "k", b"", colour="red")
        self.put(self.backing, "m/k", b"", colour="blue")
        self.put(self.backing, "m/j", b"", colour="blue")
        self.put(self.backing, "k", b"", colour="blue")  # not under the mount point
        assert sorted(self.store.query_keys(colour="blue")) == ["k", "m/j"]
        assert sorted(self.store.query_keys(colour="red")) == ["m/k"]
        assert sorted(self.store.query(colour="blue")) == [
            ("k", {"colour": "blue"}), ("m/j", {"colour": "blue"})]
        assert sorted(self.store.query_keys()) == ["k", "m/j", "m/k"]
        assert sorted(self.store.glob("m/*")) == ["m/j", "m/k"]

    def test_disconnect_keeps_children_and_reconnects(self):
        self.store.disconnect()
        assert self.store.stores == [self.mount, self.backing]
        assert not self.mount.is_connected() and not self.backing.is_connected()
        self.store.connect()
        assert self.store.is_connected()
        assert self.store.mount_store is self.mount

    # -- events ------------------------------------------------------------

    def test_mount_events_carry_full_keys(self):
        recorder = Recorder(self.store.event_manager)
        self.store.set("m/k", (BytesIO(b"x"), {"a": 1}))
        assert recorder.summary() == [("StoreSetEvent", "m/k", {"a": 1})]
        assert recorder.events[0].source is self.store

    def test_copy_on_write_is_an_update(self):
        self.put(self.backing, "m/k", b"backing", a=1)
        recorder = Recorder(self.store.event_manager)
        self.store.set_data("m/k", BytesIO(b"new"))
        assert recorder.summary() == [("StoreUpdateEvent", "m/k", {"a": 1})]

    def test_push_emits_one_update(self):
        self.store.set("m/k", (BytesIO(b"x"), {"a": 1}))
        recorder = Recorder(self.store.event_manager)
        self.store.push("m/k")
        assert recorder.summary() == [("StoreUpdateEvent", "m/k", {"a": 1})]

    def test_shadowed_backing_change_not_relayed(self):
        self.put(self.mount, "k", b"x")
        recorder = Recorder(self.store.event_manager)
        self.put(self.backing, "m/k", b"hidden")
        self.put(self.backing, "elsewhere", b"visible")
        assert [event.key for event in recorder.events] == ["elsewhere"]

    def test_progress_events_relayed_with_full_key(self):
        recorder = Recorder(self.store.event_manager, StoreEvent)
        self.store.set("m/big", (BytesIO(b"x" * 300000), {}), 65536)
        progress = [event for event in recorder.events if hasattr(event, "operation_id")]
        assert progress and all(event.key == "m/big" for event in progress)
        assert all(event.source is self.store for event in progress)

    def test_transaction_covers_push(self):
        self.store.set("m/k", (BytesIO(b"x"), {}))
        with self.assertRaises(ZeroDivisionError), self.store.transaction("push"):
            self.store.push("m/k")
            1 / 0  # noqa: B018
        assert self.mount.exists("k")
        assert not self.backing.exists("m/k")


class CompositionFixture:
    """MountedStore over JoinedStore over SqliteStore + FileSystemStore.

    Keys alternate between the two joined stores; the mount store is an
    empty SqliteStore mounted at '' in front of the join.
    """

    resolution = "second"

    def setUp(self):
        sqlite_store = _import_or_skip("encore.storage.sqlite_store").SqliteStore
        filesystem_module = _import_or_skip("encore.storage.filesystem_store")
        self.directory = tempfile.mkdtemp()
        filesystem_module.init_shared_store(self.directory)
        sql = sqlite_store()
        files = filesystem_module.FileSystemStore(self.directory)
        mount = sqlite_store()
        for child in (sql, files, mount):
            child.connect()
        for index, (key, data, metadata) in enumerate(fixture_items()):
            (sql if index % 2 else files).set(key, (BytesIO(data), metadata))
        self.joined = JoinedStore([sql, files])
        self.store = MountedStore("", mount, self.joined)
        self.store.connect()

    def tearDown(self):
        self.store.disconnect()
        shutil.rmtree(self.directory, ignore_errors=True)


def _import_or_skip(name):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise unittest.SkipTest(f"{name} is not available: {error}") from None


class CompositionReadTest(CompositionFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class CompositionWriteTest(CompositionFixture, StoreWriteTestMixin, unittest.TestCase):
    def test_delete(self):
        # Only mount-store keys can be deleted through a MountedStore.
        self.store.set_data("test1", BytesIO(b"mounted"))
        self.store.delete("test1")
        # The joined store's copy shows through again.
        assert self.store.to_bytes("test1") == b"test2\n"


class MountedStoreModelTest(unittest.TestCase):
    """Property test: the mounted view equals a model of the two stores."""

    def test_view_matches_model(self):
        from hypothesis import given, settings
        from hypothesis import strategies as st

        short_keys = st.sampled_from(["a", "b", "m/a", "m/b"])
        content = st.dictionaries(short_keys, st.integers(0, 2), max_size=4)

        @settings(max_examples=60, deadline=None)
        @given(content, content)
        def check(mounted, backing):
            mount, back = DictMemoryStore(EventManager()), DictMemoryStore(EventManager())
            for store, items in ((mount, mounted), (back, backing)):
                for key, colour in items.items():
                    store.set(key, (BytesIO(b""), {"colour": colour}))
            store = MountedStore("m/", mount, back, event_manager=EventManager())
            model = dict(backing)
            model.update({"m/" + key: colour for key, colour in mounted.items()})
            for colour in range(3):
                expected = sorted(k for k, v in model.items() if v == colour)
                assert sorted(store.query_keys(colour=colour)) == expected
            for key, colour in model.items():
                assert store.get_metadata(key) == {"colour": colour}

        check()

"""JoinedStore: every conformance mixin, plus shadowing, copy-on-write, delete and events."""

from __future__ import annotations

import unittest
from io import BytesIO

from encore.events.api import EventManager
from encore.storage.abstract_store import AuthorizationError
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import (
    StoreDeleteEvent,
    StoreEvent,
    StoreModificationEvent,
    StoreSetEvent,
    StoreUpdateEvent,
)
from encore.storage.joined_store import JoinedStore
from encore.storage.mounted_store import MountedStore
from encore.storage.tests.abstract_test import (
    TEST1_MD,
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


def spread_fixture(stores):
    """Write the conformance fixture round-robin over *stores*, 'test1' into the 2nd."""
    scratch = DictMemoryStore(EventManager())
    populate_fixture(scratch)
    for index, (key, metadata) in enumerate(sorted(scratch.query())):
        target = stores[1] if key == "test1" else stores[index % len(stores)]
        target.set(key, (BytesIO(scratch.to_bytes(key)), metadata))


def make_children(n=3):
    # Each child has its own manager, so the composite's manager only carries
    # the composite's own (relayed) events, which is what the mixins record.
    children = [DictMemoryStore(EventManager()) for _ in range(n)]
    for child in children:
        child.connect()
    return children


class JoinedStoreFixture:
    def setUp(self):
        self.children = make_children()
        spread_fixture(self.children)
        self.store = JoinedStore(self.children, event_manager=EventManager())
        self.store.connect()


class JoinedStoreReadTest(JoinedStoreFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class JoinedStoreWriteTest(JoinedStoreFixture, StoreWriteTestMixin, unittest.TestCase):
    def test_multiset_metadata_lands_in_first_store(self):
        keys = [f"existing_key{i}" for i in range(10)]
        self.store.multiset_metadata(keys, [{"meta1": i, "meta2": True} for i in range(10)])
        for i, key in enumerate(keys):
            assert self.children[0].get_metadata(key) == {"meta1": i, "meta2": True}


class JoinedStoreKeysTest(JoinedStoreFixture, StoreKeysTestMixin, unittest.TestCase):
    pass


class JoinedStoreEventsTest(JoinedStoreFixture, StoreEventsTestMixin, unittest.TestCase):
    pass


class JoinedStoreTransactionTest(JoinedStoreFixture, StoreTransactionTestMixin, unittest.TestCase):
    pass


class JoinedStoreLargeValueTest(JoinedStoreFixture, StoreLargeValueTestMixin, unittest.TestCase):
    large_value_size = 8 * 1048576
    large_value_held_in_memory = True


class JoinedStoreConcurrencyTest(
    JoinedStoreFixture, StoreConcurrencyTestMixin, unittest.TestCase
):
    concurrency_threads = 4


class JoinedStoreBadInputTest(JoinedStoreFixture, StoreBadInputTestMixin, unittest.TestCase):
    pass


class Recorder:
    def __init__(self, manager, cls=StoreModificationEvent):
        self.events = []
        manager.connect(cls, self)

    def __call__(self, event):
        self.events.append(event)

    def summary(self):
        return [(type(event).__name__, event.key, event.metadata) for event in self.events]


class JoinedStoreBehaviourTest(unittest.TestCase):
    def setUp(self):
        self.top, self.bottom = make_children(2)
        self.store = JoinedStore([self.top, self.bottom], event_manager=EventManager())
        self.store.connect()

    def put(self, store, key, data, **metadata):
        store.set(key, (BytesIO(data), metadata))

    def test_first_store_wins_reads(self):
        self.put(self.top, "k", b"top", level="top")
        self.put(self.bottom, "k", b"bottom", level="bottom")
        assert self.store.to_bytes("k") == b"top"
        assert self.store.get_metadata("k") == {"level": "top"}
        assert self.store.get("k").metadata == {"level": "top"}

    def test_query_shadows_by_existence(self):
        # The lower copy matches, the higher one does not: the key must not
        # appear through its stale lower copy.
        self.put(self.top, "k", b"top", colour="red")
        self.put(self.bottom, "k", b"bottom", colour="blue")
        self.put(self.bottom, "other", b"x", colour="blue")
        assert sorted(self.store.query_keys(colour="blue")) == ["other"]
        assert sorted(self.store.query(colour="blue")) == [("other", {"colour": "blue"})]
        assert sorted(self.store.query_keys(colour="red")) == ["k"]
        assert sorted(self.store.query_keys()) == ["k", "other"]
        assert sorted(self.store.glob("*")) == ["k", "other"]

    def test_query_select_projects_each_layer(self):
        self.put(self.top, "a", b"", x=1, y=2)
        self.put(self.bottom, "b", b"", x=3, z=4)
        assert sorted(self.store.query(["x"])) == [("a", {"x": 1}), ("b", {"x": 3})]

    def test_set_goes_to_first_store(self):
        self.put(self.bottom, "k", b"bottom", level="bottom")
        self.store.set("k", (BytesIO(b"new"), {"level": "new"}))
        assert self.top.to_bytes("k") == b"new"
        assert self.bottom.to_bytes("k") == b"bottom"
        assert self.store.to_bytes("k") == b"new"

    def test_set_data_copies_metadata_up(self):
        self.put(self.bottom, "k", b"bottom", level="bottom")
        self.store.set_data("k", BytesIO(b"new"))
        assert self.top.get_metadata("k") == {"level": "bottom"}
        assert self.store.to_bytes("k") == b"new"
        assert self.bottom.to_bytes("k") == b"bottom"

    def test_set_metadata_copies_data_up(self):
        self.put(self.bottom, "k", b"bottom", level="bottom")
        self.store.set_metadata("k", {"level": "new"})
        assert self.top.to_bytes("k") == b"bottom"
        assert self.store.get_metadata("k") == {"level": "new"}
        assert self.bottom.get_metadata("k") == {"level": "bottom"}

    def test_update_metadata_merges_onto_lower_copy(self):
        self.put(self.bottom, "k", b"bottom", level="bottom", keep=1)
        self.store.update_metadata("k", {"level": "new"})
        assert self.store.get_metadata("k") == {"level": "new", "keep": 1}
        assert self.top.to_bytes("k") == b"bottom"

    def test_set_metadata_new_key_creates_it_in_first_store(self):
        self.store.set_metadata("new", {"a": 1})
        assert self.top.get_metadata("new") == {"a": 1}
        assert self.top.to_bytes("new") == b""

    def test_update_metadata_missing_key(self):
        with self.assertRaises(KeyError) as raised:
            self.store.update_metadata("missing", {"a": 1})
        assert raised.exception.args == ("missing",)

    def test_delete_removes_every_copy(self):
        self.put(self.top, "k", b"top")
        self.put(self.bottom, "k", b"bottom")
        self.store.delete("k")
        assert not self.store.exists("k")
        assert not self.top.exists("k") and not self.bottom.exists("k")
        with self.assertRaises(KeyError):
            self.store.delete("k")

    def test_delete_failure_leaves_visible_value(self):
        class Undeletable(DictMemoryStore):
            def delete(self, key):
                raise PermissionError("read-only copy")

        bottom = Undeletable(EventManager())
        self.put(self.top, "k", b"top")
        self.put(bottom, "k", b"bottom")
        store = JoinedStore([self.top, bottom])
        with self.assertRaises(PermissionError):
            store.delete("k")
        # Lower copies go first, so the visible value did not change.
        assert store.to_bytes("k") == b"top"

    def test_writes_skip_stores_that_refuse_the_key(self):
        # A MountedStore refuses keys outside its mount point with KeyError.
        mount, backing = make_children(2)
        mounted = MountedStore("cache/", mount, backing)
        store = JoinedStore([mounted, self.bottom])
        store.set("cache/a", (BytesIO(b"a"), {}))
        store.set("elsewhere", (BytesIO(b"b"), {}))
        assert mount.to_bytes("a") == b"a"
        assert self.bottom.to_bytes("elsewhere") == b"b"

    def test_write_never_lands_below_the_holder(self):
        mount, backing = make_children(2)
        self.put(backing, "outside", b"visible")
        mounted = MountedStore("cache/", mount, backing)
        store = JoinedStore([mounted, self.bottom])
        # 'outside' is visible through the MountedStore, which refuses writes
        # to it; writing into the lower store would be hidden, so it fails.
        with self.assertRaises(KeyError):
            store.set("outside", (BytesIO(b"hidden"), {}))
        assert not self.bottom.exists("outside")

    def test_no_store_accepts(self):
        mount, backing = make_children(2)
        store = JoinedStore([MountedStore("cache/", mount, backing)])
        with self.assertRaises(KeyError) as raised:
            store.set("elsewhere", (BytesIO(b""), {}))
        assert raised.exception.args == ("elsewhere",)

    def test_empty_join(self):
        store = JoinedStore([])
        assert list(store.query_keys()) == []
        assert not store.exists("k")
        with self.assertRaises(KeyError):
            store.get("k")
        with self.assertRaises(KeyError):
            store.set("k", (BytesIO(b""), {}))
        assert store.user_tag is None

    def test_rejects_non_stores(self):
        with self.assertRaises(TypeError):
            JoinedStore([object()])

    def test_disconnect_keeps_children_and_reconnects(self):
        self.store.disconnect()
        assert not self.store.is_connected()
        assert self.store.stores == [self.top, self.bottom]
        assert not self.top.is_connected() and not self.bottom.is_connected()
        self.store.connect()
        assert self.store.is_connected()
        assert self.top.is_connected() and self.bottom.is_connected()

    def test_connect_failure_undoes_partial_connect(self):
        class Failing(DictMemoryStore):
            def connect(self, credentials=None):
                raise ConnectionError("down")

        first = DictMemoryStore(EventManager())
        store = JoinedStore([first, Failing(EventManager())])
        with self.assertRaises(ConnectionError):
            store.connect()
        assert not first.is_connected()
        assert not store.is_connected()

    def test_info(self):
        assert self.store.info() == {"readonly": False}

    def test_user_tag_and_permissions_delegate(self):
        class Authorizing(DictMemoryStore):
            user_tag = "alice"

            def get_permissions(self, key):
                self.get(key)
                return {"owned": {"alice"}}

            def set_permissions(self, key, permissions):
                self.last = (key, permissions)

        top = Authorizing(EventManager())
        self.put(top, "k", b"")
        store = JoinedStore([top, self.bottom])
        assert store.user_tag == "alice"
        assert store.get_permissions("k") == {"owned": {"alice"}}
        store.update_permissions("k", {"read": {"bob"}})
        assert top.last == ("k", {"owned": {"alice"}, "read": {"bob"}})
        self.put(self.bottom, "plain", b"")
        with self.assertRaises(AuthorizationError):
            store.get_permissions("plain")
        with self.assertRaises(KeyError):
            store.get_permissions("missing")

    # -- events ------------------------------------------------------------

    def test_events_relayed_with_composite_source(self):
        recorder = Recorder(self.store.event_manager)
        self.put(self.top, "k", b"direct", a=1)
        assert recorder.summary() == [("StoreSetEvent", "k", {"a": 1})]
        assert recorder.events[0].source is self.store

    def test_shadowed_change_is_not_relayed(self):
        self.put(self.top, "k", b"top")
        recorder = Recorder(self.store.event_manager)
        self.put(self.bottom, "k", b"hidden")
        assert recorder.events == []

    def test_set_over_lower_copy_is_an_update(self):
        self.put(self.bottom, "k", b"bottom")
        recorder = Recorder(self.store.event_manager)
        self.put(self.top, "k", b"top", a=2)
        assert recorder.summary() == [("StoreUpdateEvent", "k", {"a": 2})]

    def test_delete_uncovering_lower_copy_is_an_update(self):
        self.put(self.top, "k", b"top", level="top")
        self.put(self.bottom, "k", b"bottom", level="bottom")
        recorder = Recorder(self.store.event_manager)
        self.top.delete("k")
        assert recorder.summary() == [("StoreUpdateEvent", "k", {"level": "bottom"})]

    def test_joined_delete_emits_one_delete(self):
        self.put(self.top, "k", b"top")
        self.put(self.bottom, "k", b"bottom")
        recorder = Recorder(self.store.event_manager)
        self.store.delete("k")
        assert [type(event) for event in recorder.events] == [StoreDeleteEvent]

    def test_shared_manager_sees_child_and_composite_events(self):
        manager = EventManager()
        child = DictMemoryStore(manager)
        store = JoinedStore([child], event_manager=manager)
        recorder = Recorder(manager, StoreEvent)
        store.set("k", (BytesIO(b"x"), {}))
        sources = [event.source for event in recorder.events
                   if isinstance(event, StoreSetEvent)]
        # Both arrive; their order depends on the order listeners connected.
        assert len(sources) == 2
        assert {id(source) for source in sources} == {id(child), id(store)}

    def test_relay_does_not_keep_composite_alive(self):
        import gc
        import weakref

        store = JoinedStore([self.top])
        ref = weakref.ref(store)
        del store
        gc.collect()
        assert ref() is None
        # The child still works and emits without the dead listener.
        self.put(self.top, "k", b"")

    def test_transaction_rolls_back_every_child(self):
        self.put(self.bottom, "k", b"bottom")
        recorder = Recorder(self.store.event_manager)
        with self.assertRaises(ZeroDivisionError), self.store.transaction("fail"):
            self.store.set("new", (BytesIO(b"n"), {}))
            self.store.delete("k")
            1 / 0  # noqa: B018
        assert self.store.to_bytes("k") == b"bottom"
        assert not self.store.exists("new")
        assert recorder.events == []

    def test_transaction_events_after_commit(self):
        recorder = Recorder(self.store.event_manager, StoreEvent)
        with self.store.transaction("ok"):
            self.store.set("a", (BytesIO(b"a"), {}))
            assert [e for e in recorder.events if isinstance(e, StoreModificationEvent)] == []
        names = [type(event).__name__ for event in recorder.events]
        assert names == ["StoreTransactionStartEvent", "StoreTransactionEndEvent",
                         "StoreSetEvent"]

    def test_nested_joined_stores_relay(self):
        inner = JoinedStore([self.top], event_manager=EventManager())
        outer = JoinedStore([inner, self.bottom], event_manager=EventManager())
        recorder = Recorder(outer.event_manager)
        outer.set("k", (BytesIO(b"x"), {"n": 1}))
        assert recorder.summary() == [("StoreSetEvent", "k", {"n": 1})]
        assert recorder.events[0].source is outer
        assert self.top.to_bytes("k") == b"x"

    def test_set_data_keeps_metadata_event(self):
        self.put(self.bottom, "k", b"bottom", **TEST1_MD)
        recorder = Recorder(self.store.event_manager)
        self.store.set_data("k", BytesIO(b"new"))
        assert [type(e) for e in recorder.events] == [StoreUpdateEvent]
        assert recorder.events[0].metadata == TEST1_MD


def _import_or_skip(name):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise unittest.SkipTest(f"{name} is not available: {error}") from None


class SqliteFileSystemJoinFixture:
    """JoinedStore over a SqliteStore and a FileSystemStore, fixture spread over both."""

    resolution = "second"

    def setUp(self):
        import shutil
        import tempfile

        sqlite_module = _import_or_skip("encore.storage.sqlite_store")
        filesystem_module = _import_or_skip("encore.storage.filesystem_store")
        self.directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.directory, True)
        filesystem_module.init_shared_store(self.directory)
        children = [sqlite_module.SqliteStore(),
                    filesystem_module.FileSystemStore(self.directory)]
        for child in children:
            child.event_manager = EventManager()
            child.connect()
        spread_fixture(children)
        self.store = JoinedStore(children, event_manager=EventManager())
        self.store.connect()
        self.addCleanup(self.store.disconnect)


class SqliteFileSystemJoinReadTest(
    SqliteFileSystemJoinFixture, StoreReadTestMixin, unittest.TestCase
):
    pass


class SqliteFileSystemJoinWriteTest(
    SqliteFileSystemJoinFixture, StoreWriteTestMixin, unittest.TestCase
):
    pass


class SqliteFileSystemJoinEventsTest(
    SqliteFileSystemJoinFixture, StoreEventsTestMixin, unittest.TestCase
):
    pass


class SqliteFileSystemJoinTransactionTest(
    SqliteFileSystemJoinFixture, StoreTransactionTestMixin, unittest.TestCase
):
    pass


class SqliteFileSystemJoinKeysTest(
    SqliteFileSystemJoinFixture, StoreKeysTestMixin, unittest.TestCase
):
    pass


class SqliteFileSystemJoinBadInputTest(
    SqliteFileSystemJoinFixture, StoreBadInputTestMixin, unittest.TestCase
):
    pass


class JoinedStoreModelTest(unittest.TestCase):
    """Property test: the joined view equals a model where the first store wins."""

    def test_view_matches_model(self):
        from hypothesis import given, settings
        from hypothesis import strategies as st

        keys = st.sampled_from(["a", "b", "c", "d"])
        layer = st.dictionaries(keys, st.integers(0, 2), max_size=4)

        @settings(max_examples=60, deadline=None)
        @given(st.lists(layer, min_size=1, max_size=3), keys)
        def check(layers, deleted):
            children = [DictMemoryStore(EventManager()) for _ in layers]
            for child, content in zip(children, layers, strict=True):
                for key, colour in content.items():
                    child.set(key, (BytesIO(f"{key}{colour}".encode()), {"colour": colour}))
            store = JoinedStore(children, event_manager=EventManager())
            model = {}
            for content in reversed(layers):
                model.update(content)
            for key in "abcd":
                assert store.exists(key) == (key in model)
                if key in model:
                    assert store.get_metadata(key) == {"colour": model[key]}
            for colour in range(3):
                expected = sorted(k for k, v in model.items() if v == colour)
                assert sorted(store.query_keys(colour=colour)) == expected
            if deleted in model:
                store.delete(deleted)
                assert not store.exists(deleted)
                assert deleted not in set(store.query_keys())

        check()

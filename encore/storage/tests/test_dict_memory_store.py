"""DictMemoryStore: every conformance mixin, plus the store's own behaviour."""

from __future__ import annotations

import threading
import unittest
from io import BytesIO

from encore.events.api import EventManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import StoreEvent, StoreModificationEvent
from encore.storage.string_value import StringValue
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
    populate_read_fixture,
    populate_write_fixture,
)


class DictMemoryStoreFixture:
    def setUp(self):
        self.store = DictMemoryStore(EventManager())
        self.store.connect()
        populate_fixture(self.store)


class DictMemoryStoreReadTest(DictMemoryStoreFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class DictMemoryStoreWriteTest(DictMemoryStoreFixture, StoreWriteTestMixin, unittest.TestCase):
    def test_set_data_keeps_metadata(self):
        self.store.set_data("test1", BytesIO(b"test4"))
        self.assertEqual(self.store.get_metadata("test1"), TEST1_MD)


class DictMemoryStoreKeysTest(DictMemoryStoreFixture, StoreKeysTestMixin, unittest.TestCase):
    pass


class DictMemoryStoreEventsTest(DictMemoryStoreFixture, StoreEventsTestMixin, unittest.TestCase):
    pass


class DictMemoryStoreTransactionTest(
    DictMemoryStoreFixture, StoreTransactionTestMixin, unittest.TestCase
):
    pass


class DictMemoryStoreLargeValueTest(
    DictMemoryStoreFixture, StoreLargeValueTestMixin, unittest.TestCase
):
    # 8 MiB keeps CI fast; users keep the 64 MiB default.
    large_value_size = 8 * 1048576
    large_value_held_in_memory = True


class DictMemoryStoreConcurrencyTest(
    DictMemoryStoreFixture, StoreConcurrencyTestMixin, unittest.TestCase
):
    pass


class DictMemoryStoreBadInputTest(
    DictMemoryStoreFixture, StoreBadInputTestMixin, unittest.TestCase
):
    pass


class TestPytestStyleMixinUse(StoreReadTestMixin):
    """The mixins also run as plain pytest classes, calling setUp from setup_method."""

    def setUp(self):
        self.store = DictMemoryStore(EventManager())
        self.store.connect()
        populate_read_fixture(self.store)


class SeparateFixturesTest(StoreReadTestMixin, unittest.TestCase):
    def setUp(self):
        self.store = DictMemoryStore(EventManager())
        populate_read_fixture(self.store)
        populate_write_fixture(self.store)


class DictMemoryStoreBehaviourTest(unittest.TestCase):
    def setUp(self):
        self.events = []
        self.manager = EventManager()
        self.manager.connect(StoreEvent, self.events.append)
        self.store = DictMemoryStore(self.manager)

    def test_uses_explicit_event_manager(self):
        self.assertIs(self.store.event_manager, self.manager)
        self.store.from_bytes("k", b"x" * 10, buffer_size=4)
        self.assertTrue(self.events)
        self.assertTrue(all(event.source is self.store for event in self.events))

    def test_default_event_manager_is_global(self):
        from encore.events.api import get_event_manager

        self.assertIs(DictMemoryStore().event_manager, get_event_manager())

    def test_progress_events_go_to_store_manager(self):
        other = EventManager()
        seen = []
        other.connect(StoreEvent, seen.append)
        self.store.event_manager = other
        self.store.set("k", (BytesIO(b"x" * 100), {}), 10)
        self.assertEqual(self.events, [])
        self.assertGreater(len(seen), 3)

    def test_connect_and_info(self):
        self.assertFalse(self.store.is_connected())
        self.store.connect()
        self.assertTrue(self.store.is_connected())
        self.store.disconnect()
        self.assertFalse(self.store.is_connected())
        self.assertEqual(self.store.info(), {"readonly": False})

    def test_get_returns_string_value_with_times(self):
        self.store.set("k", (BytesIO(b"abc"), {"a": 1}))
        value = self.store.get("k")
        self.assertIsInstance(value, StringValue)
        self.assertEqual(value.size, 3)
        self.assertLessEqual(value.created, value.modified)

    def test_update_keeps_created(self):
        self.store.set("k", (BytesIO(b"abc"), {}))
        created = self.store.get("k").created
        self.store.set("k", (BytesIO(b"def"), {}))
        self.assertEqual(self.store.get("k").created, created)

    def test_set_does_not_close_stream(self):
        stream = BytesIO(b"abc")
        self.store.set("k", (stream, {}))
        self.assertFalse(stream.closed)

    def test_set_accepts_value(self):
        self.store.set("k", StringValue(b"abc", {"a": 1}))
        self.assertEqual(self.store.to_bytes("k"), b"abc")
        self.store.set("copy", self.store.get("k"))
        self.assertEqual(self.store.get_metadata("copy"), {"a": 1})

    def test_from_bytes_keeps_metadata(self):
        self.store.set("k", (BytesIO(b"abc"), {"a": 1}))
        self.store.from_bytes("k", b"new")
        self.assertEqual(self.store.get_metadata("k"), {"a": 1})

    def test_set_metadata_on_new_key_creates_empty_data(self):
        self.store.set_metadata("k", {"a": 1})
        self.assertEqual(self.store.to_bytes("k"), b"")

    def test_update_metadata_emits_update(self):
        self.store.set("k", (BytesIO(b"abc"), {"a": 1}))
        del self.events[:]
        self.store.update_metadata("k", {"b": 2})
        mods = [e for e in self.events if isinstance(e, StoreModificationEvent)]
        self.assertEqual([(e.action, e.metadata) for e in mods], [("update", {"a": 1, "b": 2})])

    def test_event_metadata_is_a_copy(self):
        self.store.set("k", (BytesIO(b"abc"), {"a": 1}))
        self.events[-1].metadata["a"] = 99
        self.assertEqual(self.store.get_metadata("k"), {"a": 1})

    def test_transaction_blocks_other_writers_until_commit(self):
        started = threading.Event()
        done = threading.Event()

        def writer():
            started.set()
            self.store.from_bytes("other", b"x")
            done.set()

        with self.store.transaction("isolated"):
            self.store.from_bytes("mine", b"y")
            thread = threading.Thread(target=writer, daemon=True)
            thread.start()
            self.assertTrue(started.wait(10))
            self.assertFalse(done.wait(0.05))
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertEqual(self.store.to_bytes("other"), b"x")

    def test_readers_not_blocked_by_transaction(self):
        self.store.from_bytes("k", b"v")
        result = []
        with self.store.transaction("read"):
            thread = threading.Thread(target=lambda: result.append(self.store.to_bytes("k")))
            thread.start()
            thread.join(10)
        self.assertEqual(result, [b"v"])


if __name__ == "__main__":
    unittest.main()

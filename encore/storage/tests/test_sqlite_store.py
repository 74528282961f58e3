"""SqliteStore: every conformance mixin, for ':memory:' and for a file, in each index mode."""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest

from encore.events.api import EventManager
from encore.storage.sqlite_store import SqliteStore
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


class MemoryFixture:
    """A connected in-memory store holding both fixtures."""

    index = "dynamic"

    def make_store(self) -> SqliteStore:
        return SqliteStore(index=self.index, event_manager=EventManager())

    def setUp(self):
        super().setUp()
        self.store = self.make_store()
        self.store.connect()
        populate_fixture(self.store)

    def tearDown(self):
        self.store.disconnect()
        super().tearDown()


class FileFixture(MemoryFixture):
    """A connected store in a database file in a fresh temporary directory."""

    def make_store(self) -> SqliteStore:
        self.directory = tempfile.mkdtemp()
        path = os.path.join(self.directory, "store.db")
        return SqliteStore(path, index=self.index, event_manager=EventManager())

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.directory, ignore_errors=True)


class StaticFixture(MemoryFixture):
    index = "static"

    def make_store(self) -> SqliteStore:
        return SqliteStore(index="static", index_columns=["a_str", "query_test2", "meta1"],
                           event_manager=EventManager())


class NoIndexFixture(MemoryFixture):
    index = None


class SqliteMemoryReadTest(MemoryFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class SqliteMemoryWriteTest(MemoryFixture, StoreWriteTestMixin, unittest.TestCase):
    def test_set_data_keeps_metadata(self):
        from io import BytesIO

        self.store.set_data("test1", BytesIO(b"test4"))
        self.assertEqual(self.store.get_metadata("test1"), TEST1_MD)


class SqliteMemoryKeysTest(MemoryFixture, StoreKeysTestMixin, unittest.TestCase):
    arbitrary_keys = (*StoreKeysTestMixin.arbitrary_keys, "nul\x00inside", "\x00", "")


class SqliteMemoryEventsTest(MemoryFixture, StoreEventsTestMixin, unittest.TestCase):
    pass


class SqliteMemoryTransactionTest(MemoryFixture, StoreTransactionTestMixin, unittest.TestCase):
    pass


class SqliteMemoryLargeValueTest(MemoryFixture, StoreLargeValueTestMixin, unittest.TestCase):
    # 8 MiB keeps CI fast and still spans several chunks; users keep 64 MiB.
    large_value_size = 8 * 1048576 + 12345


class SqliteMemoryConcurrencyTest(MemoryFixture, StoreConcurrencyTestMixin, unittest.TestCase):
    pass


class SqliteMemoryBadInputTest(MemoryFixture, StoreBadInputTestMixin, unittest.TestCase):
    pass


class SqliteFileReadTest(FileFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class SqliteFileWriteTest(FileFixture, StoreWriteTestMixin, unittest.TestCase):
    pass


class SqliteFileKeysTest(FileFixture, StoreKeysTestMixin, unittest.TestCase):
    pass


class SqliteFileEventsTest(FileFixture, StoreEventsTestMixin, unittest.TestCase):
    pass


class SqliteFileTransactionTest(FileFixture, StoreTransactionTestMixin, unittest.TestCase):
    pass


class SqliteFileLargeValueTest(FileFixture, StoreLargeValueTestMixin, unittest.TestCase):
    large_value_size = 8 * 1048576 + 12345


class SqliteFileConcurrencyTest(FileFixture, StoreConcurrencyTestMixin, unittest.TestCase):
    pass


class SqliteFileBadInputTest(FileFixture, StoreBadInputTestMixin, unittest.TestCase):
    pass


class SqliteStaticReadTest(StaticFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class SqliteStaticWriteTest(StaticFixture, StoreWriteTestMixin, unittest.TestCase):
    pass


class SqliteStaticTransactionTest(StaticFixture, StoreTransactionTestMixin, unittest.TestCase):
    pass


class SqliteNoIndexReadTest(NoIndexFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class SqliteNoIndexWriteTest(NoIndexFixture, StoreWriteTestMixin, unittest.TestCase):
    pass

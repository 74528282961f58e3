"""The abstract store: a store implementing only the primitives passes the suites."""

from __future__ import annotations

import io
import time
import unittest
import warnings
from io import BytesIO

from encore.events.api import EventManager
from encore.storage.abstract_store import (
    AbstractAuthorizingStore,
    AbstractReadOnlyStore,
    AbstractStore,
    AuthorizationError,
    ReadOnlyStoreError,
    StoreError,
    Value,
    check_key,
    check_metadata,
    copy_metadata,
    metadata_matches,
    select_metadata,
)
from encore.storage.string_value import StringValue
from encore.storage.tests.abstract_test import (
    StoreBadInputTestMixin,
    StoreEventsTestMixin,
    StoreKeysTestMixin,
    StoreLargeValueTestMixin,
    StoreReadTestMixin,
    StoreWriteTestMixin,
    populate_fixture,
    populate_read_fixture,
)


class MinimalStore(AbstractStore):
    """Implements only the four primitives; everything else is inherited."""

    def __init__(self, event_manager=None):
        super().__init__(event_manager)
        self._data = {}

    def get(self, key):
        check_key(key)
        data, metadata, modified = self._data[key]
        return StringValue(data, metadata, modified, modified)

    def query(self, select=None, **kwargs):
        for key, (_, metadata, _) in list(self._data.items()):
            if metadata_matches(metadata, kwargs):
                yield key, select_metadata(metadata, select)

    def set(self, key, value, buffer_size=1048576):
        check_key(key)
        data, metadata, size = self._unpack_value(value)
        payload = b"".join(self._iter_chunks(key, data, metadata, size, buffer_size))
        existed = key in self._data
        self._data[key] = (payload, metadata, time.time())
        self._notify_set(key, copy_metadata(metadata), existed)

    def delete(self, key):
        check_key(key)
        _, metadata, _ = self._data.pop(key)
        self._notify_delete(key, metadata)


class MinimalFixture:
    def setUp(self):
        self.store = MinimalStore(EventManager())
        self.store.connect()
        populate_fixture(self.store)


class MinimalReadTest(MinimalFixture, StoreReadTestMixin, unittest.TestCase):
    pass


class MinimalWriteTest(MinimalFixture, StoreWriteTestMixin, unittest.TestCase):
    pass


class MinimalKeysTest(MinimalFixture, StoreKeysTestMixin, unittest.TestCase):
    pass


class MinimalEventsTest(MinimalFixture, StoreEventsTestMixin, unittest.TestCase):
    pass


class MinimalBadInputTest(MinimalFixture, StoreBadInputTestMixin, unittest.TestCase):
    pass


class MinimalLargeValueTest(MinimalFixture, StoreLargeValueTestMixin, unittest.TestCase):
    large_value_size = 4 * 1048576
    large_value_held_in_memory = True


class GreedyStore(MinimalStore):
    """Holds three copies of every value while storing it: must fail the memory bound."""

    def set(self, key, value, buffer_size=1048576):
        data, metadata, _ = self._unpack_value(value)
        payload = data.read()
        copies = [bytearray(payload), bytearray(payload)]
        self._data[key] = (bytes(copies[0]), metadata, time.time())


class LargeValueMixinDetectsGreedyStore(unittest.TestCase):
    def test_memory_bound_catches_extra_copies(self):
        class Check(StoreLargeValueTestMixin):
            large_value_size = 32 * 1048576
            large_value_held_in_memory = True

        check = Check()
        check.store = GreedyStore(EventManager())
        with self.assertRaises(AssertionError):
            check.test_large_value_streams_in_and_out()


class LegacyStore(AbstractStore):
    """Written against the original API: implements the methods directly and
    never calls ``AbstractStore.__init__``."""

    def __init__(self):
        self.event_manager = EventManager()
        self._data = {}

    def get(self, key):
        return StringValue(*self._data[key])

    def get_data(self, key):
        return BytesIO(self._data[key][0])

    def query(self, select=None, **kwargs):
        return ((k, select_metadata(m, select)) for k, (_, m) in self._data.items()
                if metadata_matches(m, kwargs))

    def set(self, key, value, buffer_size=1048576):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            data, metadata = value
        self._data[key] = (data.read(), dict(metadata))

    def delete(self, key):
        del self._data[key]


class LegacyStoreTest(StoreReadTestMixin, unittest.TestCase):
    def setUp(self):
        self.store = LegacyStore()
        populate_read_fixture(self.store)

    def test_transactions_work_without_init(self):
        with self.store.transaction("legacy"):
            self.store.from_bytes("x", b"1")
        self.assertEqual(self.store.to_bytes("x"), b"1")


class ReadOnly(AbstractReadOnlyStore):
    def get(self, key):
        raise KeyError(key)

    def query(self, select=None, **kwargs):
        return iter(())


class AbstractnessTest(unittest.TestCase):
    def test_cannot_instantiate_abstract_classes(self):
        for cls in (AbstractReadOnlyStore, AbstractStore, AbstractAuthorizingStore, Value):
            with self.assertRaises(TypeError):
                cls()

    def test_missing_primitive_is_reported(self):
        class NoDelete(AbstractStore):
            get = MinimalStore.get
            query = MinimalStore.query
            set = MinimalStore.set

        with self.assertRaisesRegex(TypeError, "delete"):
            NoDelete()

    def test_exceptions(self):
        self.assertTrue(issubclass(StoreError, RuntimeError))
        self.assertTrue(issubclass(AuthorizationError, StoreError))
        self.assertTrue(issubclass(ReadOnlyStoreError, StoreError))

    def test_read_only_store_rejects_writes(self):
        store = ReadOnly(EventManager())
        self.assertFalse(hasattr(store, "set"))
        with self.assertRaisesRegex(ReadOnlyStoreError, "read-only"):
            store.set("k", (BytesIO(b""), {}))
        with self.assertRaises(AttributeError):
            store.no_such_attribute  # noqa: B018
        self.assertEqual(store.info(), {"readonly": True})

    def test_read_only_store_defaults(self):
        store = ReadOnly(EventManager())
        self.assertFalse(store.exists("k"))
        self.assertEqual(list(store.glob("*")), [])
        with self.assertRaises(KeyError):
            store.get_metadata("k")


class DefaultsTest(unittest.TestCase):
    def setUp(self):
        self.store = MinimalStore(EventManager())
        self.store.set("a", (BytesIO(b"0123456789"), {"x": 1, "y": [1]}))

    def test_get_data_range_bounds(self):
        self.assertEqual(self.store.get_data_range("a").read(), b"0123456789")
        self.assertEqual(self.store.get_data_range("a", 3).read(), b"3456789")
        self.assertEqual(self.store.get_data_range("a", None, 3).read(), b"012")
        self.assertEqual(self.store.get_data_range("a", 5, 2).read(), b"")
        with self.assertRaises(ValueError):
            self.store.get_data_range("a", -1, 2)
        with self.assertRaises(TypeError):
            self.store.get_data_range("a", "1", 2)

    def test_glob_is_case_sensitive_and_crosses_slashes(self):
        for key in ("A/b.jpg", "a/c.jpg", "a.txt"):
            self.store.from_bytes(key, b"")
        self.assertEqual(sorted(self.store.glob("a*")), ["a", "a.txt", "a/c.jpg"])
        self.assertEqual(sorted(self.store.glob("*.jpg")), ["A/b.jpg", "a/c.jpg"])
        with self.assertRaises(TypeError):
            list(self.store.glob(b"*"))

    def test_multiset_consumes_keys_once(self):
        keys = iter(["k1", "k2"])
        values = iter([(BytesIO(b"1"), {}), (BytesIO(b"2"), {})])
        self.store.multiset(keys, values)
        self.assertEqual(self.store.to_bytes("k2"), b"2")

    def test_to_file_failure_leaves_target_untouched(self):
        import os
        import tempfile

        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "out")
            with open(path, "wb") as stream:
                stream.write(b"old")
            with self.assertRaises(KeyError):
                self.store.to_file("missing", path)
            with open(path, "rb") as stream:
                self.assertEqual(stream.read(), b"old")
            self.store.to_file("a", path)
            with open(path, "rb") as stream:
                self.assertEqual(stream.read(), b"0123456789")
            self.assertEqual(os.listdir(directory), ["out"])

    def test_select_helpers(self):
        self.assertEqual(select_metadata({"a": 1, "b": 2}, ["a", "c"]), {"a": 1})
        with self.assertRaises(TypeError):
            select_metadata({"a": 1}, "a")
        nested = {"l": [1]}
        copied = copy_metadata(nested)
        copied["l"].append(2)
        self.assertEqual(nested, {"l": [1]})
        with self.assertRaises(TypeError):
            check_metadata([("a", 1)])
        with self.assertRaisesRegex(TypeError, "bytes"):
            check_key(b"a")

    def test_update_permissions_default(self):
        class Auth(AbstractAuthorizingStore, MinimalStore):
            user_tag = "me"

            def __init__(self):
                MinimalStore.__init__(self, EventManager())
                self.perms = {"owned": {"me"}}

            def get_permissions(self, key):
                return self.perms

            def set_permissions(self, key, permissions):
                self.perms = permissions

        store = Auth()
        store.update_permissions("a", {"owned": {"you"}, "read": {"all"}})
        self.assertEqual(store.perms, {"owned": {"me", "you"}, "read": {"all"}})


class ValueProtocolTest(unittest.TestCase):
    def test_tuple_protocol_warns(self):
        value = StringValue(b"abc", {"a": 1})
        self.assertEqual(len(value), 2)
        with self.assertWarns(DeprecationWarning):
            data, metadata = value
        self.assertEqual((data.read(), metadata), (b"abc", {"a": 1}))
        with self.assertWarns(DeprecationWarning):
            self.assertEqual(value[1], {"a": 1})
        with self.assertWarns(DeprecationWarning), self.assertRaises(IndexError):
            value[2]

    def test_with_value_closes_data(self):
        value = StringValue(b"abc")
        with value as data:
            self.assertEqual(data.read(), b"abc")
        self.assertTrue(data.closed)

    def test_default_permissions_not_owned(self):
        with self.assertRaisesRegex(AuthorizationError, "not owned"):
            StringValue(b"").permissions  # noqa: B018

    def test_iterdata(self):
        self.assertEqual(list(StringValue(b"abcde").iterdata(2)), [b"ab", b"cd", b"e"])

    def test_unpack_value_rejects_bad_values(self):
        for bad in (b"x", (BytesIO(b""),), (BytesIO(b""), {}, 1), None):
            with self.assertRaises(TypeError):
                AbstractStore._unpack_value(bad)
        with self.assertRaises(TypeError):
            AbstractStore._unpack_value((io.StringIO("t"), {}))


if __name__ == "__main__":
    unittest.main()

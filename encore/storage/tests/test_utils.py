"""Stream, transaction and progress utilities of encore.storage.utils."""

from __future__ import annotations

import threading
import unittest
from io import BytesIO, StringIO

from encore.events.api import EventManager, ProgressManager
from encore.storage.dict_memory_store import DictMemoryStore
from encore.storage.events import (
    StoreEvent,
    StoreProgressEndEvent,
    StoreProgressStartEvent,
    StoreProgressStepEvent,
    StoreSetEvent,
    StoreTransactionEndEvent,
    StoreTransactionStartEvent,
)
from encore.storage.utils import (
    BufferIteratorIO,
    DummyTransactionContext,
    SimpleTransactionContext,
    StoreProgressManager,
    add_context_manager_support,
    buffer_iterator,
    hashing_file,
    tee,
)


class BufferIteratorTest(unittest.TestCase):
    def test_chunks_and_progress_after_every_read(self):
        steps = []
        chunks = list(buffer_iterator(BytesIO(b"abcdefg"), 3, lambda step: steps.append(step)))
        self.assertEqual(chunks, [b"abc", b"def", b"g"])
        self.assertEqual(steps, [3, 6, 7, 7])

    def test_max_bytes(self):
        source = BytesIO(b"abcdefg")
        self.assertEqual(list(buffer_iterator(source, 3, max_bytes=5)), [b"abc", b"de"])
        self.assertEqual(source.read(), b"fg")

    def test_text_stream_is_type_error(self):
        with self.assertRaisesRegex(TypeError, "binary"):
            list(buffer_iterator(StringIO("text")))

    def test_bytearray_chunks_become_bytes(self):
        class Source:
            def __init__(self):
                self.parts = [bytearray(b"ab"), b""]

            def read(self, size):
                return self.parts.pop(0)

        self.assertEqual(list(buffer_iterator(Source())), [b"ab"])


class BufferIteratorIOTest(unittest.TestCase):
    def make(self):
        return BufferIteratorIO(iter([b"abc", b"", b"defg", b"h"]))

    def test_read_sizes(self):
        stream = self.make()
        self.assertEqual(stream.read(2), b"ab")
        self.assertEqual(stream.read(4), b"cdef")
        self.assertEqual(stream.read(10), b"gh")
        self.assertEqual(stream.read(10), b"")

    def test_read_all_variants(self):
        for call in (lambda s: s.read(), lambda s: s.read(-1), lambda s: s.read(None)):
            self.assertEqual(call(self.make()), b"abcdefgh")

    def test_read_all_large(self):
        chunks = [bytes([i]) * 1048576 for i in range(3)]
        self.assertEqual(BufferIteratorIO(iter(chunks)).read(), b"".join(chunks))

    def test_context_manager_closes(self):
        with self.make() as stream:
            self.assertEqual(stream.read(1), b"a")
        self.assertTrue(stream.closed)
        with self.assertRaises(ValueError):
            stream.read()

    def test_readinto_and_read1(self):
        stream = self.make()
        buffer = bytearray(5)
        self.assertEqual(stream.readinto(buffer), 5)
        self.assertEqual(bytes(buffer), b"abcde")
        self.assertEqual(stream.read1(), b"fg")
        self.assertEqual(stream.read1(), b"h")
        self.assertEqual(stream.read1(), b"")


class TeeTest(unittest.TestCase):
    def test_tee(self):
        first, second, third = tee(BytesIO(b"x" * 10 + b"y"), 3, buffer_size=4)
        self.assertEqual(first.read(), b"x" * 10 + b"y")
        self.assertEqual(second.read(3), b"xxx")
        self.assertEqual(third.read(), b"x" * 10 + b"y")
        self.assertEqual(second.read(), b"x" * 7 + b"y")


class ContextManagerSupportTest(unittest.TestCase):
    def test_existing_context_managers_pass_through(self):
        stream = BytesIO(b"a")
        self.assertIs(add_context_manager_support(stream), stream)

    def test_plain_object_gains_with_support(self):
        class Reader:
            def __init__(self):
                self.closed = False

            def read(self, size=-1):
                return b"data"

        reader = Reader()
        wrapped = add_context_manager_support(reader)
        with wrapped as inner:
            self.assertIs(inner, reader)
            self.assertEqual(wrapped.read(), b"data")
        self.assertFalse(reader.closed)


class HashingFileTest(unittest.TestCase):
    def test_hashes_what_is_read_and_closes(self):
        import hashlib

        source = BytesIO(b"hello world")
        digest = hashlib.sha256()
        with hashing_file(source, digest) as wrapped:
            self.assertEqual(wrapped.read(5), b"hello")
            self.assertEqual(wrapped.read(), b" world")
        self.assertEqual(wrapped.len, 11)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(b"hello world").hexdigest())
        self.assertTrue(source.closed)


class DummyTransactionTest(unittest.TestCase):
    def test_singleton_and_no_events(self):
        store = DictMemoryStore(EventManager())
        first = DummyTransactionContext(store)
        self.assertIs(DummyTransactionContext(store), first)
        self.assertIs(store._transaction, first)
        with first as entered:
            self.assertIs(entered, first)
        with self.assertRaises(KeyError), first:
            raise KeyError("propagates")


class SimpleTransactionTest(unittest.TestCase):
    def setUp(self):
        self.manager = EventManager()
        self.events = []
        self.manager.connect(StoreEvent, self.events.append)
        self.store = DictMemoryStore(self.manager)

    def test_singleton_enter_returns_none(self):
        context = SimpleTransactionContext(self.store)
        self.assertIs(SimpleTransactionContext(self.store), context)
        self.assertIs(self.store.transaction("x"), context)
        with context as entered:
            self.assertIsNone(entered)

    def test_notes_and_states(self):
        with self.store.transaction("my notes"):
            pass
        start, end = self.events
        self.assertIsInstance(start, StoreTransactionStartEvent)
        self.assertEqual(start.notes, "my notes")
        self.assertIsInstance(end, StoreTransactionEndEvent)
        self.assertEqual(end.state, "done")

    def test_direct_emits_are_captured_and_reemitted(self):
        # A store that emits on its manager itself (original style) still gets
        # its events held back until commit.
        with self.store.transaction("direct"):
            self.manager.emit(StoreSetEvent(self.store, key="k", metadata={}))
            self.assertEqual([type(e) for e in self.events], [StoreTransactionStartEvent])
        kinds = [type(e) for e in self.events]
        self.assertEqual(kinds, [StoreTransactionStartEvent, StoreTransactionEndEvent,
                                 StoreSetEvent])

    def test_store_without_rollback_still_delivers_events(self):
        class Store:
            event_manager = self.manager
            _transaction = None

        store = Store()
        with self.assertRaises(RuntimeError), SimpleTransactionContext(store):
            self.manager.emit(StoreSetEvent(store, key="k", metadata={}))
            raise RuntimeError("boom")
        self.assertEqual([type(e) for e in self.events],
                         [StoreTransactionStartEvent, StoreTransactionEndEvent, StoreSetEvent])
        self.assertEqual(self.events[1].state, "failed")

    def test_commit_failure_rolls_back_and_raises(self):
        calls = []

        class Store:
            event_manager = self.manager
            _transaction = None

            def _begin_transaction(self):
                calls.append("begin")

            def _commit_transaction(self):
                raise OSError("disk full")

            def _rollback_transaction(self):
                calls.append("rollback")

        with self.assertRaises(OSError), SimpleTransactionContext(Store()):
            pass
        self.assertEqual(calls, ["begin", "rollback"])
        self.assertEqual(self.events[-1].state, "failed")

    def test_other_threads_wait_for_transaction(self):
        order = []
        inside = threading.Event()

        def other():
            inside.wait(10)
            with self.store.transaction("second"):
                order.append("second")

        thread = threading.Thread(target=other, daemon=True)
        thread.start()
        with self.store.transaction("first"):
            inside.set()
            thread.join(0.05)
            order.append("first")
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertEqual(order, ["first", "second"])


class StoreProgressManagerTest(unittest.TestCase):
    def test_event_types_and_payload(self):
        manager = EventManager()
        events = []
        manager.connect(StoreEvent, events.append)
        self.assertTrue(issubclass(StoreProgressManager, ProgressManager))
        with StoreProgressManager(manager, source="s", message="m", steps=2, key="k") as progress:
            progress(step=1)
        self.assertEqual([type(e) for e in events],
                         [StoreProgressStartEvent, StoreProgressStepEvent, StoreProgressEndEvent])
        self.assertTrue(all(e.key == "k" and e.source == "s" for e in events))
        self.assertEqual(events[0].steps, 2)


if __name__ == "__main__":
    unittest.main()

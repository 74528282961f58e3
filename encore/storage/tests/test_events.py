"""The storage event hierarchy."""

from __future__ import annotations

import unittest

from encore.events.api import (
    BaseEvent,
    ProgressEndEvent,
    ProgressEvent,
    ProgressStartEvent,
    ProgressStepEvent,
)
from encore.storage import events


class StorageEventsTest(unittest.TestCase):
    def test_hierarchy(self):
        expected = {
            "StoreEvent": (BaseEvent,),
            "StoreTransactionEvent": (events.StoreEvent,),
            "StoreTransactionStartEvent": (events.StoreTransactionEvent,),
            "StoreTransactionEndEvent": (events.StoreTransactionEvent,),
            "StoreKeyEvent": (events.StoreEvent,),
            "StoreModificationEvent": (events.StoreKeyEvent,),
            "StoreSetEvent": (events.StoreModificationEvent,),
            "StoreUpdateEvent": (events.StoreModificationEvent,),
            "StoreDeleteEvent": (events.StoreModificationEvent,),
            "StoreProgressEvent": (ProgressEvent, events.StoreKeyEvent),
            "StoreProgressStartEvent": (events.StoreProgressEvent, ProgressStartEvent),
            "StoreProgressStepEvent": (events.StoreProgressEvent, ProgressStepEvent),
            "StoreProgressEndEvent": (events.StoreProgressEvent, ProgressEndEvent),
        }
        self.assertEqual(set(events.__all__), set(expected))
        for name, bases in expected.items():
            cls = getattr(events, name)
            for base in bases:
                self.assertTrue(issubclass(cls, base), (name, base))

    def test_actions(self):
        self.assertEqual(events.StoreSetEvent.action, "set")
        self.assertEqual(events.StoreUpdateEvent.action, "update")
        self.assertEqual(events.StoreDeleteEvent.action, "delete")
        self.assertIsNone(events.StoreModificationEvent.action)

    def test_construction(self):
        source = object()
        event = events.StoreSetEvent(source, key="k", metadata={"a": 1})
        self.assertIs(event.source, source)
        self.assertEqual((event.key, event.metadata, event.action), ("k", {"a": 1}, "set"))


if __name__ == "__main__":
    unittest.main()

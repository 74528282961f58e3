"""The abstract key-value store API and its stores."""

from .store_url import open_store

__all__ = ["open_store"]

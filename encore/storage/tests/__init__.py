"""Tests for :mod:`encore.storage`."""

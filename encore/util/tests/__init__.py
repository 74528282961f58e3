"""Tests for :mod:`encore.util`."""

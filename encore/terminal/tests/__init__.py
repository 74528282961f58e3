"""Tests for :mod:`encore.terminal`."""

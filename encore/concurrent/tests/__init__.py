"""Tests for :mod:`encore.concurrent`."""

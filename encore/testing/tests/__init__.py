"""Tests for :mod:`encore.testing`."""

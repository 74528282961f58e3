"""Tests for :mod:`encore.events`."""

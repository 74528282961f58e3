"""Helpers for writing tests of code built on encore."""

"""Executors and work schedulers built on :mod:`concurrent.futures`."""

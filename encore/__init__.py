"""encore: the core utilities at the bottom of a Python application's stack.

The subpackages are independent: :mod:`encore.events` (application-wide event
dispatch), :mod:`encore.storage` (the abstract key-value store API and its
stores), :mod:`encore.concurrent` (thread tools and work schedulers),
:mod:`encore.terminal` (progress display), :mod:`encore.util` and
:mod:`encore.testing`.
"""

__version__ = "0.9.0.dev0"

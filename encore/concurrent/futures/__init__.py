"""Executors and work schedulers built on :mod:`concurrent.futures`.

Import the modules directly for the full API; the package itself re-exports
only :class:`~encore.concurrent.futures.synchronous.SynchronousExecutor`:

* :mod:`.enhanced_thread_pool_executor`: ``EnhancedThreadPoolExecutor``
* :mod:`.synchronous`: ``SynchronousExecutor``
* :mod:`.future`: ``Future`` (with ``traceback()``)
* :mod:`.abc_work_scheduler`, :mod:`.asynchronizer`, :mod:`.serializer`,
  :mod:`.serializing_asynchronizer`, :mod:`.delayed_asynchronizer`: the work
  schedulers.
"""

from encore.concurrent.futures.synchronous import SynchronousExecutor

__all__ = ["SynchronousExecutor"]

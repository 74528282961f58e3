"""The public facade of :mod:`encore.terminal`: import terminal helpers from here.

Example
-------
Show every progress event of the global event manager on standard output::

    from encore.events.api import ProgressManager
    from encore.terminal.api import ProgressDisplay

    with ProgressDisplay():
        with ProgressManager(message="Copying files", steps=3) as progress:
            for step in range(1, 4):
                progress(step=step)
"""

from encore.terminal.progress_display import ProgressDisplay, ProgressWriter, SpinWriter
from encore.terminal.utils import write_static

__all__ = ["ProgressDisplay", "ProgressWriter", "SpinWriter", "write_static"]

"""Sphinx configuration for the encore documentation."""

import doctest
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "_ext")))

import encore

project = "encore"
author = "the encore developers"
copyright = "2026, the encore developers"
version = release = encore.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
    "encore_docs",
]

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # Facades re-export names through ``__all__``; documenting a module's own
    # definitions only (and listing re-exports with ``.. reexports::``) keeps
    # every object documented exactly once.
    "ignore-module-all": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_numpy_docstring = True
napoleon_google_docstring = False

# The usage pages' examples are executed by ``sphinx-build -b doctest``.  Only
# ``.. doctest::`` and ``.. testcode::`` blocks run: ``>>>`` examples inside
# docstrings belong to their modules and assume module globals.  Each page
# runs in a fresh namespace, in a scratch working directory, with a fresh
# global event manager, so pages cannot affect each other.
doctest_test_doctest_blocks = ""
# Check exception messages too (Sphinx ignores their detail by default).
doctest_default_flags = doctest.ELLIPSIS | doctest.DONT_ACCEPT_TRUE_FOR_1
doctest_global_setup = """
import os as _os, tempfile as _tempfile
from encore.events.package_globals import use_event_manager as _use_event_manager
_doc_cwd = _os.getcwd()
_doc_tmp = _tempfile.TemporaryDirectory()
_os.chdir(_doc_tmp.name)
_doc_event_manager = _use_event_manager()
_doc_event_manager.__enter__()
"""
doctest_global_cleanup = """
_doc_event_manager.__exit__(None, None, None)
_os.chdir(_doc_cwd)
_doc_tmp.cleanup()
"""


def _python_docs_reachable() -> bool:
    """Whether the Python inventory can be fetched; offline builds skip intersphinx.

    The build runs with ``-W``; an unreachable inventory would otherwise turn a
    missing network into a failed documentation build.
    """
    import socket

    try:
        socket.create_connection(("docs.python.org", 443), timeout=3).close()
    except OSError:
        return False
    return True


intersphinx_mapping = (
    {"python": ("https://docs.python.org/3", None)} if _python_docs_reachable() else {}
)
intersphinx_timeout = 10

html_theme = "alabaster"
html_static_path = ["_static"]
exclude_patterns = ["build"]
nitpicky = False

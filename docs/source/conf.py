"""Sphinx configuration for the encore documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import encore  # noqa: E402

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
]

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_numpy_docstring = True
napoleon_google_docstring = False



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

"""Sphinx helpers for the encore documentation.

``.. reexports:: package.module`` lists the names a facade module re-exports
(its ``__all__``), each linked to the module that defines and documents it, so
facade pages need no hand-maintained member lists and autodoc never documents
an object twice.
"""

from __future__ import annotations

import importlib

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

_ROLES = {"class": "class", "function": "func", "module": "mod"}


def _role(obj: object) -> str:
    if isinstance(obj, type):
        return "class"
    if callable(obj):
        return "func"
    return "data"


def _summary(obj: object) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.split())


class ReexportsDirective(Directive):
    """List a facade module's ``__all__`` with links to the defining modules."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        if not exported:
            raise self.error(f"{name} has no __all__ to list")
        lines = []
        for export in exported:
            obj = getattr(module, export)
            home = getattr(obj, "__module__", name)
            role = _role(obj)
            summary = _summary(obj) if role != "data" else ""
            entry = f"* :{role}:`{export} <{home}.{export}>`"
            if home != name:
                entry += f" (from :mod:`{home}`)"
            if summary:
                entry += f" -- {summary}"
            lines.append(entry)
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source=name), self.content_offset, container)
        return container.children


def setup(app):
    app.add_directive("reexports", ReexportsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

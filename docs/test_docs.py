"""Checks that keep the documentation complete and its examples executable.

* Every public module of ``encore`` has an ``automodule`` directive somewhere in
  ``docs/source`` (the test modules are excluded, except the public
  conformance suites in ``encore.storage.tests.abstract_test``).
* Every ``>>>`` example sits inside a ``.. doctest::`` directive: the Sphinx
  configuration executes only those, so a bare example would silently never
  run.
* Every usage page has executed examples.
* The usage pages' examples pass, run by ``sphinx-build -b doctest`` in a
  subprocess (``.ci/run`` runs the same build with ``-W``).
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parent
SOURCE = DOCS / "source"
ROOT = DOCS.parent
PACKAGE = ROOT / "encore"

#: Modules under a ``tests`` package that are public API, not tests.
PUBLIC_TEST_MODULES = {"encore.storage.tests.abstract_test"}

#: Pages that teach a package and must therefore contain executed examples.
USAGE_PAGES = [
    "index.rst",
    "events/usage.rst",
    "storage/usage.rst",
    "storage/events.rst",
    "storage/utils.rst",
    "storage/server.rst",
    "storage/urls.rst",
    "storage/tutorial.rst",
    "concurrent.rst",
    "terminal.rst",
    "util.rst",
    "testing.rst",
] + [f"storage/stores/{p.name}" for p in sorted((SOURCE / "storage" / "stores").glob("*.rst"))]

AUTOMODULE = re.compile(r"^\s*\.\. automodule::\s*(\S+)\s*$", re.MULTILINE)
EXECUTED = re.compile(r"^\s*\.\. (doctest|testcode)::", re.MULTILINE)


def public_modules() -> list[str]:
    """Return the dotted names of every public module and package of encore."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        private = any(p.startswith("_") and p != "__main__" for p in parts)
        in_tests = "tests" in parts and name not in PUBLIC_TEST_MODULES
        if not private and not in_tests:
            names.append(name)
    return names


def rst_files() -> list[pathlib.Path]:
    return sorted(SOURCE.rglob("*.rst"))


def documented_modules() -> set[str]:
    found: set[str] = set()
    for path in rst_files():
        found.update(AUTOMODULE.findall(path.read_text(encoding="utf-8")))
    return found


def test_public_module_list_is_sane():
    modules = public_modules()
    assert "encore.events.event_manager" in modules
    assert "encore.storage.tests.abstract_test" in modules
    assert "encore.storage.__main__" in modules
    assert not [m for m in modules if m.endswith(".conftest") or ".tests.test_" in m]


def test_every_public_module_has_an_automodule_directive():
    missing = sorted(set(public_modules()) - documented_modules())
    assert not missing, f"modules without an automodule directive in docs/source: {missing}"


def test_automodule_directives_name_real_modules():
    unknown = sorted(documented_modules() - set(public_modules()))
    assert not unknown, f"automodule directives for unknown or private modules: {unknown}"


def bare_examples(text: str) -> list[int]:
    """Return the line numbers of ``>>>`` lines that are not inside ``.. doctest::``."""
    lines = text.splitlines()
    bad = []
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped.startswith(">>>"):
            continue
        indent = len(line) - len(stripped)
        owner = None
        for above in reversed(lines[:number]):
            if above.strip() and len(above) - len(above.lstrip()) < indent:
                owner = above.strip()
                break
        if owner is None or not owner.startswith(".. doctest::"):
            bad.append(number + 1)
    return bad


def test_bare_examples_detected():
    assert bare_examples("Text\n\n>>> 1 + 1\n2\n") == [3]
    assert bare_examples("Text::\n\n    >>> 1 + 1\n    2\n") == [3]
    assert bare_examples(".. doctest::\n\n   >>> 1 + 1\n   2\n") == []


@pytest.mark.parametrize("path", rst_files(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_every_example_is_executed(path):
    lines = bare_examples(path.read_text(encoding="utf-8"))
    assert not lines, f"{path}: '>>>' outside a '.. doctest::' directive at lines {lines}"


@pytest.mark.parametrize("page", USAGE_PAGES)
def test_usage_page_has_executed_examples(page):
    text = (SOURCE / page).read_text(encoding="utf-8")
    assert EXECUTED.search(text), f"{page} has no '.. doctest::' or '.. testcode::' examples"


@pytest.mark.slow
def test_usage_page_examples_pass(tmp_path):
    # A subprocess, because the examples install global state (the global
    # event manager) and change the working directory.  Warnings are not
    # errors here: .ci/run builds with -W; this test is about the examples.
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "doctest",
         "-d", str(tmp_path / "doctrees"), str(SOURCE), str(tmp_path / "doctest")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    report = (tmp_path / "doctest" / "output.txt")
    summary = report.read_text(encoding="utf-8") if report.exists() else ""
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{summary[-3000:]}"
    assert " 0 failures in tests" in summary, summary[-3000:]

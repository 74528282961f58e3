"""The README's tour is executed, so the first code a newcomer reads cannot rot."""

from __future__ import annotations

import contextlib
import io
import re
import textwrap
from pathlib import Path

from encore.events.package_globals import use_event_manager

README = Path(__file__).resolve().parents[1] / "README.rst"


def tour_source() -> str:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)
    assert block, "README.rst has no python code block"
    return textwrap.dedent(block.group(1))


def test_readme_tour_runs_and_prints_what_it_says() -> None:
    source = tour_source()
    expected = [line.split("# prints: ", 1)[1].strip()
                for line in source.splitlines() if "# prints: " in line]
    output = io.StringIO()
    # A private global manager: the tour's listener must not outlive the test.
    with use_event_manager(), contextlib.redirect_stdout(output):
        exec(compile(source, str(README), "exec"), {})
    printed = output.getvalue().splitlines()
    assert printed == expected

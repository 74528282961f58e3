"""Run the README's "main job" commands, as a newcomer pasting them would.

The commands are the literal block that follows the README line containing
``Run the main job``.  They run in one ``bash`` (they start a server in the
background and stop it with ``kill $!``) in a temporary directory, with a
temporary ``HOME`` and no ``$ENCORE_STORE`` or ``$XDG_DATA_HOME``, so the default
store is created under the temporary home and never in the real user's data
directory.  Adjustments, and nothing else: the line activating ``.venv`` is
skipped (this interpreter's scripts directory is put first on ``PATH``
instead), and the port 8080 is replaced by a free one so parallel runs do not
collide.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from encore.storage import open_store
from encore.storage.store_url import ENV_VAR

README = Path(__file__).resolve().parents[3] / "README.rst"
MARKER = "Run the main job"
TIMEOUT = 120


def main_job_commands(text: str) -> list[str] | None:
    """Return the commands of the literal block after the MARKER line, or None."""
    lines = text.splitlines()
    position = next((i for i, line in enumerate(lines) if MARKER in line), None)
    if position is None:
        return None
    # The paragraph may span lines; the block starts after the line ending in '::'.
    while position < len(lines) and not lines[position].rstrip().endswith("::"):
        position += 1
    commands: list[str] = []
    for line in lines[position + 1:]:
        if not line.strip():
            continue  # blank lines before and inside the block; it ends at a dedent
        if not line[:1].isspace():
            break
        commands.append(line.strip())
    return commands or None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_main_job(commands: list[str], workdir: Path, home: Path) -> subprocess.CompletedProcess:
    """Run *commands* in one bash in *workdir*; return the finished process."""
    port = str(free_port())
    script = ["set -e"]
    for command in commands:
        if re.fullmatch(r"(\.|source)\s+\S*\.venv/bin/activate", command):
            continue
        script.append(command.replace("8080", port))
    environment = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "XDG_DATA_HOME")}
    scripts = str(Path(sys.executable).parent)
    environment.update(HOME=str(home), PATH=scripts + os.pathsep + environment.get("PATH", ""),
                       PYTHONIOENCODING="utf-8")
    process = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=workdir, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        # A server left running by a failed command belongs to the group we started.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if process.returncode is None:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_parser_finds_the_block():
    text = ("Intro\n\nRun the main job: do\nthings::\n\n    one\n    two --x\n\n"
            "    three\n\nAfter.\n")
    assert main_job_commands(text) == ["one", "two --x", "three"]
    assert main_job_commands("nothing here\n") is None


@pytest.mark.skipif(shutil.which("bash") is None, reason="the README commands need bash")
def test_readme_main_job(tmp_path):
    if not README.is_file():
        pytest.skip(f"{README} not found (not running from a source checkout)")
    commands = main_job_commands(README.read_text(encoding="utf-8"))
    if commands is None:
        pytest.skip(f"README.rst has no literal block after a line containing {MARKER!r} yet")
    if not (Path(sys.executable).parent / "encore-store").exists():
        pytest.skip("the encore-store console script is not installed (pip install -e .)")
    home = tmp_path / "home"
    home.mkdir()
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = run_main_job(commands, workdir, home)
    stdout = result.stdout.decode("utf-8", "replace")
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"the README commands failed:\n{stdout}\n{stderr}"

    # Every key fetched with 'get' printed exactly the value in the default store.
    default = home / ".local" / "share" / "encore" / "store.db"
    if sys.platform.startswith("linux"):
        assert default.is_file(), "the default store was not created under the temporary HOME"
    store = open_store(f"sqlite://{default}") if default.is_file() else None
    fetched = [shlex.split(command)[2] for command in commands
               if command.startswith("encore-store get ")]
    assert fetched, "the README sequence should fetch a key back"
    for key in fetched:
        if store is not None:
            assert store.to_bytes(key).decode() in stdout
    # The directory store copy has what the default store has.
    if store is not None:
        copies = [Path(workdir, shlex.split(command)[3]) for command in commands
                  if command.startswith("encore-store cp ")]
        for copy in copies:
            copied = open_store(str(copy))
            assert sorted(copied.query_keys()) == sorted(store.query_keys())

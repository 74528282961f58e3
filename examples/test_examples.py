"""Run the example programs as a user would, and check what they print.

Each example runs in a subprocess (with a timeout) on a temporary location;
the tests check the exit status, standard error and the output line by line.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from encore.terminal.tests.virtual_terminal import VirtualTerminal

EXAMPLES = Path(__file__).resolve().parent
TIMEOUT = 120


def run(script: Path, *args: str, cwd: Path | None = None, **env: str):
    """Run ``python script *args``; return the result with decoded outputs.

    Outputs are captured as bytes and decoded by hand: text mode would turn
    the carriage returns of terminal output into newlines.
    """
    environment = {**os.environ, "PYTHONIOENCODING": "utf-8", **env}
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        env=environment,
        cwd=cwd,
        timeout=TIMEOUT,
        check=False,
    )
    result.stdout = result.stdout.decode("utf-8").replace("\r\n", "\n")
    result.stderr = result.stderr.decode("utf-8").replace("\r\n", "\n")
    return result


# -- examples/progress.py -----------------------------------------------------------------------

PROGRESS = EXAMPLES / "progress.py"

#: How every operation of the demo ends, in plain mode.
PLAIN_ENDINGS = {
    "Copying 20 files": "Done.",
    "Scanning catalogue": "WARNING: 2 unreadable sections skipped",
    "  tokenise": "Done.",
    "  sort": "Done.",
    "  merge": "Done.",
    "Building index": "Done.",
    "Downloading alpha.tar": "Done.",
    "Downloading beta.tar": "Done.",
    "Downloading gamma.tar": "Done.",
    "Uploading report": "EXCEPTION: connection reset by peer",
}
SUMMARY = ["Finished: 1 job(s) failed", "  upload: connection reset by peer"]


def test_progress_plain_output():
    result = run(PROGRESS, "--delay", "0")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert all(c == "\n" or c.isprintable() for c in out), "control characters in plain output"
    lines = out.splitlines()
    assert lines[-2:] == SUMMARY
    by_operation: dict[str, list[str]] = {}
    for line in lines[:-2]:
        label, _, rest = line.partition(":")
        assert label in PLAIN_ENDINGS, line
        by_operation.setdefault(label, []).append(rest)
    assert set(by_operation) == set(PLAIN_ENDINGS)
    for label, rests in by_operation.items():
        # A header, the first step (always shown), possibly more steps, the ending.
        assert rests[0] == "", label
        assert rests[-1] == f" {PLAIN_ENDINGS[label]}", label
        for rest in rests[1:-1]:
            assert re.fullmatch(r" (\d+/\d+ \(\d+%\)|step \d+: section [A-O])", rest), rest
    assert by_operation["Copying 20 files"][1] == " 1/20 (5%)"
    assert by_operation["Uploading report"][1:] == [
        " 1/10 (10%)",
        " EXCEPTION: connection reset by peer",
    ]
    # Nested stages finish inside the build; the build finishes last of the four.
    order = [line for line in lines if line.endswith(": Done.")]
    assert order.index("Building index: Done.") > order.index("  merge: Done.")


def test_progress_terminal_output():
    result = run(PROGRESS, "--delay", "0", "--mode", "terminal", COLUMNS="100")
    assert result.returncode == 0, result.stderr
    screen = VirtualTerminal(100).feed(result.stdout).screen()

    def bar(step: int, stars: int) -> str:
        return f"{step:5d} [{'*' * stars:<70}]"

    assert screen[:3] == ["Copying 20 files:", bar(20, 70), "Done."]
    assert screen[3] == "Scanning catalogue:"
    assert re.fullmatch(r"[\\|/-] section O", screen[4])
    assert screen[5] == "WARNING: 2 unreadable sections skipped"
    assert screen[6:18] == [
        "  tokenise:", bar(8, 70), "Done.",
        "  sort:", bar(8, 70), "Done.",
        "  merge:", bar(8, 70), "Done.",
        "Building index:", bar(3, 70), "Done.",
    ]
    downloads = sorted(tuple(screen[i : i + 3]) for i in range(18, 27, 3))
    assert downloads == [
        ("Downloading alpha.tar:", bar(12, 70), "Done."),
        ("Downloading beta.tar:", bar(15, 70), "Done."),
        ("Downloading gamma.tar:", bar(9, 70), "Done."),
    ]
    assert screen[27:] == [
        "Uploading report:",
        bar(5, 35),
        "EXCEPTION: connection reset by peer",
        *SUMMARY,
    ]


def test_progress_readme_command_runs_from_repository_root():
    # Exactly the README's demo command, at its default speed.
    result = run(PROGRESS, cwd=EXAMPLES.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == SUMMARY


def test_progress_rejects_bad_delay():
    result = run(PROGRESS, "--delay", "-1")
    assert result.returncode == 2
    assert "--delay must not be negative" in result.stderr


# -- examples/storage/todo.py -------------------------------------------------------------------

TODO = EXAMPLES / "storage" / "todo.py"
PERSISTENT = ["file", "sqlite"]


def _require(store: str) -> None:
    module = {
        "memory": "encore.storage.dict_memory_store",
        "file": "encore.storage.filesystem_store",
        "sqlite": "encore.storage.sqlite_store",
    }[store]
    pytest.importorskip(module, reason=f"{module} is not available yet")


def todo(store: str, location: Path, *command: str):
    return run(TODO, "--store", store, "--location", str(location), *command)


@pytest.mark.parametrize("store", PERSISTENT)
def test_todo_persists_between_runs(store, tmp_path):
    _require(store)
    location = tmp_path / ("items" if store == "file" else "items.db")
    steps = [
        (["list"], "Nothing to do.\n"),
        (["add", "buy", "milk"], "Added #1: buy milk\n"),
        (["add", "café ☕ with friends"], "Added #2: café ☕ with friends\n"),
        (["add", "write report"], "Added #3: write report\n"),
        (["done", "1"], "Completed #1: buy milk\n"),
        (["list"], "#1 [x] buy milk\n#2 [ ] café ☕ with friends\n#3 [ ] write report\n"),
        (["list", "--pending"], "#2 [ ] café ☕ with friends\n#3 [ ] write report\n"),
        (["remove", "3"], "Removed #3: write report\n"),
        (["add", "call mum"], "Added #3: call mum\n"),
        (["clear"], "Removed 1 completed item.\n"),
        (["list"], "#2 [ ] café ☕ with friends\n#3 [ ] call mum\n"),
    ]
    for command, expected in steps:
        result = todo(store, location, *command)
        assert (result.returncode, result.stderr, result.stdout) == (0, "", expected), command
    assert location.exists()


@pytest.mark.parametrize("store", ["memory", *PERSISTENT])
def test_todo_several_commands_in_one_run(store, tmp_path):
    _require(store)
    result = todo(
        store, tmp_path / "loc", "add", "milk", "+", "add", "eggs", "+", "done", "2", "+", "list"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Added #1: milk\nAdded #2: eggs\nCompleted #2: eggs\n#1 [ ] milk\n#2 [x] eggs\n"
    )


def test_todo_memory_store_forgets(tmp_path):
    _require("memory")
    todo("memory", tmp_path, "add", "ephemeral")
    assert todo("memory", tmp_path, "list").stdout == "Nothing to do.\n"


@pytest.mark.parametrize("store", ["memory", *PERSISTENT])
@pytest.mark.parametrize("command", [["done", "7"], ["remove", "7"]])
def test_todo_unknown_item_is_an_error(store, command, tmp_path):
    _require(store)
    result = todo(store, tmp_path / "loc", *command)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "todo.py: error: no item #7\n"


def test_todo_error_stops_later_commands(tmp_path):
    _require("file")
    result = todo("file", tmp_path / "loc", "add", "a", "+", "done", "5", "+", "add", "b")
    assert result.returncode == 1
    assert result.stdout == "Added #1: a\n"
    assert todo("file", tmp_path / "loc", "list").stdout == "#1 [ ] a\n"


def test_todo_typo_changes_nothing(tmp_path):
    _require("file")
    result = todo("file", tmp_path / "loc", "add", "a", "+", "frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
    assert todo("file", tmp_path / "loc", "list").stdout == "Nothing to do.\n"


def test_todo_bad_location_is_reported(tmp_path):
    _require("file")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = todo("file", blocker, "list")
    assert result.returncode == 1
    assert result.stderr.startswith("todo.py: error: cannot open the file store:")


def test_todo_needs_a_command(tmp_path):
    result = todo("memory", tmp_path)
    assert result.returncode == 2
    assert "a command is needed" in result.stderr


# -- examples/storage/todo_list.py, in process ---------------------------------------------------


@pytest.fixture
def todo_list():
    _require("memory")
    from encore.storage.dict_memory_store import DictMemoryStore

    path = EXAMPLES / "storage" / "todo_list.py"
    spec = importlib.util.spec_from_file_location("todo_list", path)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is built.
    sys.modules["todo_list"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["todo_list"]
    store = DictMemoryStore()
    store.connect()
    yield module, module.TodoList(store), store
    store.disconnect()


def test_todo_list_metadata_layout(todo_list):
    module, todos, store = todo_list
    item = todos.add("  trim me  ")
    assert item == module.Item(1, "trim me", False, item.created)
    metadata = store.get_metadata("todo-000001")
    assert metadata == {"type": "todo-item", "number": 1, "done": False, "created": item.created}
    assert store.to_bytes("todo-000001") == b"trim me"
    todos.complete(1)
    assert store.get_metadata("todo-000001")["done"] is True


def test_todo_list_ignores_other_keys(todo_list):
    _, todos, store = todo_list
    store.from_bytes("unrelated", b"x")
    todos.add("one")
    assert [item.text for item in todos] == ["one"]


def test_todo_list_rejects_empty_text(todo_list):
    _, todos, _ = todo_list
    with pytest.raises(ValueError, match="needs some text"):
        todos.add("   ")
    assert todos.items() == []


def test_todo_list_missing_items(todo_list):
    module, todos, _ = todo_list
    with pytest.raises(module.NoSuchItem) as info:
        todos.complete(3)
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "no item #3"
    with pytest.raises(module.NoSuchItem):
        todos.remove(3)

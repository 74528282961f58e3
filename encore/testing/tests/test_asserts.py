"""Tests for :mod:`encore.testing.asserts`."""

from __future__ import annotations

import os
import sys

import pytest

from encore.testing.asserts import (
    assert_python_failure,
    assert_python_ok,
    strip_python_stderr,
)


def test_ok_returns_code_and_outputs():
    code = "import sys; print('hi'); print(' warn ', file=sys.stderr)"
    rc, out, err = assert_python_ok("-c", code)
    assert rc == 0
    assert out.strip() == b"hi"
    assert err == b"warn"


def test_ok_raises_with_stderr_on_failure():
    with pytest.raises(AssertionError) as info:
        assert_python_ok("-c", "import sys; sys.stderr.write('bad thing'); sys.exit(3)")
    assert str(info.value) == "Process return code is 3, stderr follows:\nbad thing"


def test_failure_returns_code():
    rc, out, err = assert_python_failure("-c", "raise SystemExit(5)")
    assert (rc, out, err) == (5, b"", b"")
    rc, _, err = assert_python_failure("-c", "1/0")
    assert rc == 1
    assert err.endswith(b"ZeroDivisionError: division by zero")


def test_failure_raises_on_success():
    with pytest.raises(AssertionError, match="return code is 0"):
        assert_python_failure("-c", "pass")


def test_without_env_vars_python_variables_are_ignored(monkeypatch):
    monkeypatch.setenv("PYTHONENCORETEST", "1")
    code = "import sys; print(sys.flags.ignore_environment)"
    assert assert_python_ok("-c", code)[1].strip() == b"1"


def test_env_vars_are_passed_and_drop_dash_e(monkeypatch):
    monkeypatch.setenv("ENCORE_PARENT", "kept")
    code = (
        "import os, sys; "
        "print(sys.flags.ignore_environment, os.environ['ENCORE_CHILD'], "
        "os.environ.get('ENCORE_PARENT'))"
    )
    out = assert_python_ok("-c", code, ENCORE_CHILD="given")[1]
    assert out.split() == [b"0", b"given", b"kept"]


def test_cleanenv_starts_from_empty_environment(monkeypatch):
    monkeypatch.setenv("ENCORE_PARENT", "kept")
    code = "import os; print(sorted(k for k in os.environ if k.startswith('ENCORE')))"
    out = assert_python_ok("-c", code, __cleanenv=True, ENCORE_ONLY="1")[1]
    assert out.strip() == b"['ENCORE_ONLY']"


def test_cwd_option(tmp_path):
    code = "import os; print(os.getcwd())"
    out = assert_python_ok("-c", code, __cwd=str(tmp_path))[1]
    assert os.path.samefile(out.decode().strip(), tmp_path)


def test_timeout_option():
    with pytest.raises(AssertionError, match="did not finish within 0.5 s"):
        assert_python_ok("-c", "import time; time.sleep(30)", __timeout=0.5)


def test_unknown_option_is_rejected():
    with pytest.raises(TypeError, match="__isolated"):
        assert_python_ok("-c", "pass", __isolated=True)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (b"[12345 refs]\n", b""),
        (b"  error text\n[7 refs, 3 blocks]\r\n", b"error text"),
        (b"Traceback...\nValueError\n[1 refs]", b"Traceback...\nValueError"),
        (b"no refs here [abc refs]", b"no refs here [abc refs]"),
    ],
)
def test_strip_python_stderr(raw, clean):
    assert strip_python_stderr(raw) == clean


def test_runs_the_current_interpreter():
    out = assert_python_ok("-c", "import sys; print(sys.executable)")[1]
    assert out.decode().strip() == sys.executable

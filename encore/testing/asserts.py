"""Run a Python subprocess and assert how it exits.

These helpers follow CPython's ``test.support.script_helper``: they are for
tests that must observe a fresh interpreter, such as what happens at
interpreter exit. Each runs ``sys.executable`` with the given arguments, waits
for it (with a timeout, so a hung child fails the test instead of hanging it)
and returns ``(returncode, stdout, stderr)`` as bytes.

Keyword arguments become environment variables of the child. Names that
start with two underscores are options instead:

``__cleanenv=True``
    Start from an empty environment rather than a copy of ``os.environ``.
``__cwd=path``
    Run the child in ``path``.
``__timeout=seconds``
    Give up (and fail) after this long; 300 seconds by default.

When no environment variables are given, ``-E`` is passed so that the
child ignores ``PYTHON*`` variables (``PYTHONPATH`` included) from the
parent's environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

__all__ = ["assert_python_failure", "assert_python_ok", "strip_python_stderr"]

#: Seconds a child may run before the assertion fails.
DEFAULT_TIMEOUT = 300.0

_OPTIONS = ("__cleanenv", "__cwd", "__timeout")

# Debug builds print "[12345 refs]" (or "[1 refs, 2 blocks]") at exit.
_REFS_LINE = re.compile(rb"\[\d+ refs(?:, \d+ blocks)?\]\r?\n?")


def strip_python_stderr(stderr: bytes) -> bytes:
    """Remove debug-build reference-count lines and surrounding whitespace.

    Parameters
    ----------
    stderr : bytes
        The standard error output of a Python process.

    Returns
    -------
    bytes
        ``stderr`` without ``[NNN refs]`` lines, stripped.
    """
    return _REFS_LINE.sub(b"", stderr).strip()


def _assert_python(
    expected_success: bool, *args: str, **env_vars: Any
) -> tuple[int, bytes, bytes]:
    """Run ``sys.executable *args`` and assert success or failure."""
    unknown = [name for name in env_vars if name.startswith("__") and name not in _OPTIONS]
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(sorted(unknown))}; known: {_OPTIONS}")
    cleanenv = bool(env_vars.pop("__cleanenv", False))
    cwd = env_vars.pop("__cwd", None)
    timeout = float(env_vars.pop("__timeout", DEFAULT_TIMEOUT))
    cmd = [sys.executable]
    if not env_vars and not cleanenv:
        cmd.append("-E")
    cmd.extend(args)
    if cleanenv:
        env: dict[str, str] = {}
        if sys.platform == "win32" and "SYSTEMROOT" in os.environ:
            # The interpreter cannot start on Windows without it.
            env["SYSTEMROOT"] = os.environ["SYSTEMROOT"]
    else:
        env = os.environ.copy()
    env.update({name: str(value) for name, value in env_vars.items()})
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"Process did not finish within {timeout} s: {cmd!r}\n"
            f"stderr so far:\n{(exc.stderr or b'').decode('utf-8', 'replace')}"
        ) from None
    rc = proc.returncode
    err = strip_python_stderr(proc.stderr)
    if (rc == 0) != expected_success:
        raise AssertionError(
            f"Process return code is {rc}, stderr follows:\n{err.decode('utf-8', 'replace')}"
        )
    return rc, proc.stdout, err


def assert_python_ok(*args: str, **env_vars: Any) -> tuple[int, bytes, bytes]:
    """Assert that ``python *args`` exits with status 0.

    Parameters
    ----------
    *args : str
        Arguments to the interpreter, e.g. ``'-c', 'print(1)'``.
    **env_vars
        Environment variables for the child, and the ``__`` options described
        in the module documentation.

    Returns
    -------
    tuple
        ``(returncode, stdout, stderr)``; both outputs are bytes and stderr is
        passed through :func:`strip_python_stderr`.

    Raises
    ------
    AssertionError
        If the exit status is not 0 (the message includes stderr), or the
        child runs past its timeout.
    """
    return _assert_python(True, *args, **env_vars)


def assert_python_failure(*args: str, **env_vars: Any) -> tuple[int, bytes, bytes]:
    """Assert that ``python *args`` exits with a non-zero status.

    Takes the same arguments and returns the same tuple as
    :func:`assert_python_ok`.

    Raises
    ------
    AssertionError
        If the exit status is 0, or the child runs past its timeout.
    """
    return _assert_python(False, *args, **env_vars)

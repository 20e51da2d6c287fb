"""Signals at a point the test chooses (issue 20): a child Python process whose ``os.replace`` is wrapped so that,
right after the ``after``-th atomic rename onto a path matching ``pattern`` (fnmatch, e.g. ``*/cells/*/*.npz``:
a finished cell; every results file is written by ``honestbench.core.io.atomic_path``), it creates a ready file
and sleeps. :func:`signal_when_paused` sends the signal only once that file exists, so the signal always lands
right after that file was written: the child can never finish first, and never gets further, however fast or
slow the machine. The child gets Python's own SIGINT handler (Ctrl-C raises KeyboardInterrupt) even when the
test runner was started with SIGINT ignored (``pytest &`` in a script, nohup), which a child inherits: otherwise
it would ignore the test's Ctrl-C. A test-side wrapper: nothing of this is in ``honestbench/``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: seconds a paused child waits for its signal before it gives up (exit 3, a message on stderr): a bound for a
#: broken test, never reached when the test works
PAUSE_S = 600

_HOOK = """\
import fnmatch, os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises, even where the runner ignores SIGINT
_real, _done = os.replace, []
def _replace(src, dst, **kw):
    _real(src, dst, **kw)
    if fnmatch.fnmatch(os.fspath(dst), {pattern!r}):
        _done.append(dst)
        if len(_done) == {after}:
            open({ready!r}, "w").close()
            time.sleep({pause})
            sys.stderr.write("pausing: no signal came\\n")
            os._exit(3)
os.replace = _replace
"""


def paused_program(program: str, pattern: str, after: int, ready: Path) -> str:
    """``program`` (Python source for ``python -c``) preceded by the pausing ``os.replace`` wrapper."""
    return _HOOK.format(pattern=pattern, after=int(after), ready=str(ready), pause=PAUSE_S) + program


def start_paused(program: str, args: list[str], pattern: str, after: int, ready: Path, **kw) -> subprocess.Popen:
    """``python -c PROGRAM ARGS`` pausing after the ``after``-th rename onto ``pattern`` (module docstring)."""
    return subprocess.Popen([sys.executable, "-c", paused_program(program, pattern, after, ready), *args], **kw)


def signal_when_paused(proc: subprocess.Popen, ready: Path, sig: signal.Signals) -> tuple[str, str]:
    """Wait until ``proc`` has paused (its ready file exists), send ``sig``, wait for it to end: (stdout, stderr).
    Fails the test when the child ends before it pauses (the pattern never matched often enough)."""
    try:
        while not ready.exists():  # the child sleeps PAUSE_S after creating it: no deadline to race here
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"the child ended (exit {proc.returncode}) before its pause point: {(err or '')[-2000:]}")
            time.sleep(0.01)
        proc.send_signal(sig)
        return proc.communicate(timeout=PAUSE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def bench_env() -> dict[str, str]:
    """The environment of a child ``bench`` process: one thread (the tests' machines are small and shared)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "BENCH_THREADS": "1"}

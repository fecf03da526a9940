"""flock-based file locks: exclusive, bounded waits, released by the kernel when the holder dies."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cl_pipeline.storage.locks import LockTimeout, audit_lock_path, file_lock

_HOLD = """
import sys, time
from cl_pipeline.storage.locks import file_lock
with file_lock(sys.argv[1], timeout=0, what="test"):
    print("held", flush=True)
    time.sleep(600)
"""


def _holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_held_lock_times_out_naming_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "x.lock"
    proc = _holder(path)
    try:
        waits: list[str] = []
        start = time.monotonic()
        with pytest.raises(LockTimeout) as info, file_lock(path, timeout=0.5, what="the thing", on_wait=waits.append):
            pass
        assert 0.5 <= time.monotonic() - start < 5
        assert f"pid {proc.pid}" in str(info.value) and "the thing is locked" in str(info.value)
        assert len(waits) == 1 and f"pid {proc.pid}" in waits[0]
    finally:
        proc.kill()
        proc.wait()


def test_a_sigkilled_holder_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    proc = _holder(path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with file_lock(path, timeout=0):  # no wait: the kernel dropped the dead process's lock
        assert f"pid {os.getpid()}" in path.read_text()
    assert path.read_text() == ""  # the holder's note is cleared on release


def test_the_lock_is_exclusive_within_a_process_too(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with file_lock(path, timeout=0), pytest.raises(LockTimeout), file_lock(path, timeout=0):
        pass
    with file_lock(path, timeout=0):
        pass


@pytest.mark.parametrize("timeout", [-1, float("nan"), "5", None], ids=["negative", "nan", "text", "none"])
def test_bad_timeout_is_refused(tmp_path: Path, timeout) -> None:
    with (
        pytest.raises(ValueError, match="timeout must be a number of seconds >= 0"),
        file_lock(tmp_path / "x", timeout),
    ):
        pass


@pytest.mark.parametrize("date", ["2025-1-1", "../etc", "", "2025-01-01/x"], ids=["short", "dots", "empty", "slash"])
def test_audit_lock_path_takes_only_a_date(tmp_path: Path, date: str) -> None:
    with pytest.raises(ValueError, match="date must be YYYY-MM-DD"):
        audit_lock_path(tmp_path, date)
    assert audit_lock_path(tmp_path, "2025-01-01") == tmp_path / "_locks" / "audit-2025-01-01.lock"

"""Advisory file locks between processes: ``fcntl.flock`` on a lock file.

A lock is held by an open file description, so the kernel releases it when the
holding process exits or is killed (SIGKILL included): a lock left by a dead
process never blocks anyone. The lock file is never deleted (deleting a lock file
another process is waiting on would let two processes hold "the" lock); it holds
the pid and command of the current holder, for messages only.

Used for the per-date lock of an audit (``<data dir>/_locks/audit-<date>.lock``)
and for the set-up of a new Dagster instance (``$DAGSTER_HOME/.cl_pipeline-setup.lock``).
"""

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["LOCKS_DIR", "LockTimeout", "audit_lock_path", "file_lock"]

#: Folder of the per-date audit locks, inside the data directory.
LOCKS_DIR = "_locks"

_POLL_SECONDS = 0.2


class LockTimeout(Exception):
    """The lock stayed held by another process for the whole timeout.

    Attributes
    ----------
    path : Path
        The lock file.
    holder : str
        What the holder wrote into the lock file (``"pid 123: cl-pipeline audit ..."``), or ``"unknown"``.
    waited : float
        Seconds waited.
    """

    def __init__(self, path: Path, holder: str, waited: float, what: str) -> None:
        self.path, self.holder, self.waited = path, holder, waited
        super().__init__(
            f"{what} is locked by another process ({holder}); waited {waited:.0f} s for {path}. "
            "Try again when it has finished"
        )


def audit_lock_path(data_dir: Path | str, date: str) -> Path:
    """The lock file of the audit of ``date`` in ``data_dir`` (``date`` must be ``YYYY-MM-DD``)."""
    if not isinstance(date, str) or len(date) != 10 or not date.replace("-", "").isdigit():
        raise ValueError(f"date must be YYYY-MM-DD, got {date!r}")
    return Path(data_dir) / LOCKS_DIR / f"audit-{date}.lock"


def _holder(fd: int) -> str:
    """What the current holder wrote into the lock file."""
    try:
        text = os.pread(fd, 400, 0).decode("utf-8", "replace").strip()
    except OSError:
        return "unknown"
    return text or "unknown"


@contextlib.contextmanager
def file_lock(
    path: Path | str,
    timeout: float,
    what: str = "the lock",
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created with its folder) for the ``with`` block.

    Parameters
    ----------
    path : path
        The lock file.
    timeout : float
        Seconds to wait for a lock another process holds (0: do not wait); then
        :class:`LockTimeout` is raised.
    what : str
        What the lock protects, for the timeout message (``"the audit of 2025-02-01"``).
    on_wait : callable, optional
        Called once with the holder's description when the lock is busy, before waiting.

    Raises
    ------
    LockTimeout
        If the lock stays held by another process for ``timeout`` seconds.
    ValueError
        If ``timeout`` is negative or not a number.
    """
    if not isinstance(timeout, int | float) or not timeout >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        _acquire(fd, path, timeout, what, on_wait)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:300]}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout: float, what: str, on_wait: Callable[[str], None] | None) -> None:
    """Take the lock on ``fd``, polling until ``timeout`` seconds have passed."""
    start, told = time.monotonic(), False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            waited = time.monotonic() - start
            if waited >= timeout:
                raise LockTimeout(path, _holder(fd), waited, what) from None
            if not told and on_wait is not None:
                on_wait(_holder(fd))
                told = True
            time.sleep(min(_POLL_SECONDS, max(timeout - waited, 0.0)))

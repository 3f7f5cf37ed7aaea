"""One trading process per store: an OS-level lock on a sidecar file beside the database.

Two bots writing one store would each believe they own its trades and send orders for them.
`fcntl.flock` on `<store>.lock` makes the second one refuse to start. The kernel drops the lock
when its holder exits in any way — even `kill -9` or a power cut — so a crashed bot never blocks
the next start (a pid file alone would). The holder's pid is written into the file only to name
it in the refusal; the lock itself is the flock, never the file's content or existence.

Within one process the lock is shared and counted: the trading loop and, say, a test that opens
a second connection to the same store are one writer process, not two.
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path


class AlreadyRunningError(RuntimeError):
    """Another live process holds the store's writer lock."""


@dataclass
class _Held:
    descriptor: int
    pid: int
    count: int


_held: dict[str, _Held] = {}
_guard = threading.Lock()


def lock_path(db: Path) -> Path:
    return Path(f"{db}.lock")


class WriterLock:
    """The writer lock of one store, held from construction until `release()`."""

    def __init__(self, db: Path) -> None:
        self.path = lock_path(db)
        self._key = str(self.path.resolve())
        self._released = False
        with _guard:
            held = _held.get(self._key)
            if held is not None and held.pid == os.getpid():
                held.count += 1
                return
            # A forked child inherits the parent's entry (and its descriptor, which shares the
            # parent's lock): it must take a lock of its own, so the entry is dropped here.
            _held.pop(self._key, None)
            _held[self._key] = _Held(self._acquire(), os.getpid(), 1)

    def _acquire(self) -> int:
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            message = f"cannot open the lock file {self.path}: {exc.strerror}"
            raise OSError(exc.errno, message) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(descriptor)
            os.close(descriptor)
            who = f"pid {holder}" if holder else "another process"
            raise AlreadyRunningError(f"already running ({who})") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        return descriptor

    def release(self) -> None:
        """Drop this holder's share; the flock goes when the last one in the process is gone."""
        if self._released:
            return
        self._released = True
        with _guard:
            held = _held.get(self._key)
            if held is None or held.pid != os.getpid():
                return
            held.count -= 1
            if held.count == 0:
                del _held[self._key]
                os.close(held.descriptor)  # closing the descriptor releases the flock


def _read_pid(descriptor: int) -> int | None:
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None

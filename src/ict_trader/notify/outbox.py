"""What every notification channel shares: a bounded queue drained by one daemon thread.

The trading loop calls `send()`, which only puts the notice on the queue (dropping it, with a
warning, when the queue is full) and returns at once; a channel's `_handle` does the network
work on the worker thread, retrying with `_backoff`/`_wait` as the channel sees fit. So a slow,
dead or over-quota service can delay a notification but never an order.

Counters: `sent` (delivered), `failed` (attempted, not delivered), `dropped` (never attempted:
queue full, closed, suspended, still queued when `close` gave up).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Final, Self

from ict_trader.core.events import Notify

log = logging.getLogger("ict_trader.notify.notifier")

_STOP: Final = object()  # tells the worker to exit


class QueuedNotifier:
    """Base of the channels: queue, worker thread, counters, flush-then-stop `close`.

    Subclasses set their own attributes, then call `super().__init__` (which starts the
    worker), and implement `_handle` (one notice, on the worker thread) and `describe`.
    """

    enabled: bool = True

    def __init__(
        self,
        *,
        name: str,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        queue_size: int = 1000,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._sleep = sleep
        self._random = random.Random()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()  # set by close(): abandon retries, exit
        self._closed = False
        self._lock = threading.Lock()  # guards the counters and _closed
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def describe(self) -> str:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ caller side

    def send(self, notice: Notify) -> None:
        try:
            with self._lock:
                if self._closed:
                    self.dropped += 1
                    log.warning("notifier closed; dropped notice %r", notice.title)
                    return
                self._queue.put_nowait(notice)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            log.warning("notification queue full; dropped notice %r", notice.title)
        except Exception:  # never let a notification break the caller
            log.exception("could not queue notice %r", getattr(notice, "title", "?"))

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True  # send() drops from now on, so the queue only shrinks
        deadline = time.monotonic() + timeout
        # Flush: wait for the worker to finish what is queued.
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._queue.all_tasks_done.wait(remaining)
        # Stop: abandon backoff waits, drop whatever is still queued, wake the worker.
        self._stop.set()
        abandoned = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
            abandoned += 1
        if abandoned:
            with self._lock:
                self.dropped += abandoned
            log.warning("notifier closing; dropped %d queued notice(s)", abandoned)
        self._queue.put_nowait(_STOP)  # the queue is empty and nothing else is added
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        if self._thread.is_alive():
            log.warning("notifier thread still busy after %.1f s; leaving it to finish", timeout)

    # ------------------------------------------------------------------ worker side

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                try:
                    if item is _STOP:
                        return
                    assert isinstance(item, Notify)
                    if self._stop.is_set():
                        self._count("dropped")
                    else:
                        self._handle(item)
                except Exception:  # the worker must survive anything
                    self._count("failed")
                    log.exception("notifier failed on a notice")
                finally:
                    self._queue.task_done()
        finally:
            self._cleanup()

    def _handle(self, notice: Notify) -> None:
        raise NotImplementedError

    def _cleanup(self) -> None:
        """Release the channel's resources when the worker exits."""

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def _may_retry(self, notice: Notify, attempt: int, problem: str) -> bool:
        """After failed attempt `attempt`: wait out the backoff and say True to try again, or
        count the notice as failed and say False (attempts used up, or the notifier closing)."""
        if attempt >= self.max_attempts:
            self._count("failed")
            log.error(
                "could not deliver notice %r after %d attempts (%s); dropped",
                notice.title,
                attempt,
                problem,
            )
            return False
        delay = self._backoff(attempt)
        log.warning(
            "notice %r attempt %d failed (%s); retrying in %.2f s",
            notice.title,
            attempt,
            problem,
            delay,
        )
        if not self._wait(delay):
            self._count("failed")
            log.warning("notifier closing; gave up on notice %r", notice.title)
            return False
        return True

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of base * 2^(attempt - 1)."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    def _wait(self, seconds: float) -> bool:
        """Sleep before a retry; False when close() asked to stop meanwhile."""
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self._stop.wait(seconds)
        return not self._stop.is_set()

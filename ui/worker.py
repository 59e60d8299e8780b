"""One background thread for the screens' database work; results come back to the GUI thread.

Why: a history page over 100k inspections, the chart statistics, a review write or the ~50 ms
scrypt hash of a login would each freeze the touchscreen while they run on the GUI thread. The
screens hand such work here as a callable; it runs on the single worker thread (one thread is
enough: SQLite reads and writes are serialised anyway, and FIFO order keeps a write and the re-read
after it in order) and the result is delivered by a queued signal, so the callback runs on the GUI
thread and only draws.

Stale results: a request made with a `key` (one per view, e.g. "this history screen's page")
supersedes any earlier request with the same key that has not been delivered yet; the older
result is dropped, so a slow page can never overwrite the newer filter's page. Requests without a
key (writes) are always delivered. A callback whose owner widget has been deleted is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal

log = logging.getLogger(__name__)


class _Job(QRunnable):
    def __init__(self, worker: DbWorker, ticket: int, fn: Callable[[], Any]):
        super().__init__()
        self.setAutoDelete(True)
        self._worker = worker
        self._ticket = ticket
        self._fn = fn

    def run(self) -> None:
        try:
            result, error = self._fn(), None
        except Exception as exc:  # delivered to the caller's on_error on the GUI thread
            result, error = None, exc
        self._worker.finished.emit(self._ticket, result, error)


class DbWorker(QObject):
    finished = Signal(int, object, object)
    """ticket, result, exception (emitted in the worker thread, received queued on the GUI thread)."""

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._next = 0
        self._pending: dict[int, tuple] = {}
        self._latest: dict[Hashable, int] = {}
        self.finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[Exception], None] | None = None,
        *,
        key: Hashable | None = None,
        owner: QObject | None = None,
    ) -> int:
        """Run `fn()` on the worker thread; `on_done(result)` / `on_error(exc)` run on the GUI thread."""
        self._next += 1
        ticket = self._next
        if key is not None:
            self._latest[key] = ticket
        self._pending[ticket] = (key, owner, on_done, on_error)
        self._pool.start(_Job(self, ticket, fn))
        return ticket

    def busy(self, key: Hashable | None = None) -> bool:
        """Anything (or the request for `key`) not yet delivered."""
        if key is None:
            return bool(self._pending)
        return key in self._latest

    def wait_idle(self, ms: int = 30000) -> bool:
        """Block until the worker thread has run everything (CLI screenshots, shutdown)."""
        return self._pool.waitForDone(ms)

    def _deliver(self, ticket: int, result: Any, error: Any) -> None:
        key, owner, on_done, on_error = self._pending.pop(ticket, (None, None, None, None))
        if key is not None:
            if self._latest.get(key) != ticket:
                return  # superseded by a newer request for the same view
            del self._latest[key]
        if owner is not None and not shiboken6.isValid(owner):
            return
        try:
            if error is None:
                if on_done is not None:
                    on_done(result)
            elif on_error is not None:
                on_error(error)
            else:
                log.error("background database job failed: %s", error, exc_info=error)
        except RuntimeError:
            # The widget went away between the check and the call (deleteLater): nothing to draw.
            log.debug("result for a deleted view dropped", exc_info=True)


_shared: DbWorker | None = None


def shared_worker() -> DbWorker:
    """The process's one database worker (created on first use, after the QApplication)."""
    global _shared
    if _shared is None or not shiboken6.isValid(_shared):
        _shared = DbWorker()
    return _shared


def queued_audit(records, worker: DbWorker | None = None) -> Callable[..., None]:
    """`records.audit` with the same arguments, stored on the database worker.

    An audit row is a small write, but on SQLite with synchronous=FULL it waits for an fsync that can
    take tens of milliseconds on a busy disk; the operator's tap (acknowledge, start, recipe select)
    must not wait for it. The job carries no key, so it is never superseded: every event is stored,
    in the order the GUI made them. Called from another thread (a calibration fit, say), it writes
    there directly: that thread is not the one the operator is watching.
    """
    from PySide6.QtCore import QThread

    def audit(action: str, **kwargs: Any) -> None:
        w = worker or shared_worker()
        if QThread.currentThread() is not w.thread():
            records.audit(action, **kwargs)
            return
        w.submit(lambda: records.audit(action, **kwargs), lambda _r: None)

    return audit


class QueuedLockout:
    """A login lock-out store (ui.auth.LockoutStore) whose writes run on the database worker.

    A wrong PIN wrote the failure count to the records database on the GUI thread: on SQLite with
    synchronous=FULL that write waits for an fsync, and the login screen froze for it on every wrong guess.
    The write is queued in order with the audit rows; reading the count stays at start-up (before the
    first login, when nothing waits for the screen).
    """

    def __init__(self, store, worker: DbWorker | None = None):
        self._store = store
        self._worker = worker

    def load(self):
        return self._store.load()

    def save(self, failures: int, locked_until) -> None:
        def failed(exc: Exception) -> None:
            log.error("login lock-out state could not be stored: %s", exc, exc_info=exc)

        w = self._worker or shared_worker()
        w.submit(lambda: self._store.save(failures, locked_until), lambda _r: None, failed)

"""Keep-latest handoff between a producer thread and a consumer thread (Qt-free).

Why one class: the pipeline (capture -> inference), the UI bridge (inference -> GUI) and the
calibration wizard's feed (results -> pattern finder) all need the same thing: the producer never
waits, a newer item replaces an older one that was not taken yet (counted in `dropped`), and the
consumer sleeps until there is something. With `gated=True` the consumer also waits until the
previous item was acknowledged (`ack()`; e.g. the GUI drew the last picture), so at most one is in
flight and nothing queues up behind a slow consumer.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Latest(Generic[T]):
    def __init__(self, *, gated: bool = False):
        self._cond = threading.Condition()
        self._value: T | None = None
        self._full = False
        self._gated = gated
        self._acked = True
        self._closed = False
        self.dropped = 0
        """Items replaced by a newer one before the consumer took them."""
        self.delivered = 0

    # ------------------------------------------------------------ producer (never blocks)
    def put(self, value: T) -> T | None:
        """Offer `value`; returns the item it replaced (not taken yet), or None."""
        with self._cond:
            replaced = self._value if self._full else None
            if self._full:
                self.dropped += 1
            self._value, self._full = value, True
            self._cond.notify_all()
            return replaced

    def poke(self, value: T) -> None:
        """Offer `value` only when nothing is waiting (wake the consumer without replacing an item)."""
        with self._cond:
            if not self._full:
                self._value, self._full = value, True
                self._cond.notify_all()

    # ------------------------------------------------------------ consumer
    def _ready(self) -> bool:
        return self._full and (self._acked or not self._gated)

    def wait(self, timeout: float | None) -> bool:
        """Sleep until an item may be taken (True), the slot is closed or `timeout` passed (False)."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._ready(), timeout)
            return not self._closed and self._ready()

    def take(self, timeout: float = 0.0) -> T | None:
        """The newest item (waiting up to `timeout`), or None when there is none or the slot is closed."""
        with self._cond:
            if timeout > 0:
                self._cond.wait_for(lambda: self._closed or self._ready(), timeout)
            if self._closed or not self._ready():
                return None
            value, self._value, self._full = self._value, None, False
            self.delivered += 1
            if self._gated:
                self._acked = False
            return value

    def ack(self) -> None:
        """The consumer is done with the last item it took (gated slots send the next one)."""
        with self._cond:
            self._acked = True
            self._cond.notify_all()

    # ------------------------------------------------------------ control
    def open(self) -> None:
        """(Re)open after `close`, acknowledged; an item put meanwhile is still there."""
        with self._cond:
            self._closed = False
            self._acked = True

    def close(self) -> None:
        """Wake every waiting consumer; `take` returns None until `open`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def clear(self) -> int:
        """Drop a waiting item; returns how many were dropped (0 or 1)."""
        with self._cond:
            n = int(self._full)
            self._value, self._full = None, False
            return n

    def __len__(self) -> int:
        with self._cond:
            return int(self._full)

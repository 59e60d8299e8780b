"""What the PLC link needs from a protocol: move the control block in and the status block out.

Why the register images are the interface: the handshake (handshake.py) decides on the control
block's words and bits and answers with the status block (registers.py names both, to the bit).
A transport only carries these images over its protocol: Modbus registers are the images
themselves, OPC UA variables are their fields one by one. Tickets, durable gating, recipe
commands and health stay in the protocol-neutral link (link.py), written once.

Every method runs in the link's own thread, inside its asyncio loop (one owner); a transport that
serves clients (Modbus server, OPC UA server) runs its server in that same loop.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from . import registers as R


@dataclass(slots=True)
class Inbound:
    """What arrived from the PLC since the last turn."""

    control: list[list[int]] = field(default_factory=list)
    """Control-block images after each PLC write, oldest first (a TRIGGER set and cleared between two
    turns is two images, so the handshake still sees both edges)."""
    link_up: bool = True
    """False while a client transport cannot reach the PLC (ERROR 50 after the heartbeat timeout)."""
    conflicts: list[str] = field(default_factory=list)
    """One line per control write refused because another peer is the active master (alarm 51)."""


class Transport(ABC):
    """One PLC protocol endpoint, owned by the link thread."""

    port: int = 0
    """The port in use once open (a server asked for port 0 reads back its ephemeral port)."""

    @abstractmethod
    async def open(self, wake: Callable[[], None]) -> None:
        """Bind or prepare; raise if the endpoint cannot run. `wake()` (thread-safe) starts a link turn
        at once: call it when the PLC wrote something, so TRIGGER is not left waiting for the poll."""

    @abstractmethod
    async def close(self) -> None:
        """Drop every peer and release the endpoint."""

    @abstractmethod
    async def receive(self) -> Inbound:
        """The control images written (server) or read (client) since the last call."""

    @abstractmethod
    async def publish(self, status: list[int]) -> None:
        """Show the status block (R.STATUS_SIZE registers) to the PLC; unchanged blocks may be skipped."""

    def wait_s(self, link_wants_s: float) -> float:
        """How long the link sleeps before its next turn when nothing wakes it (a client polls)."""
        return link_wants_s

    def describe(self) -> str:
        """One line for logs and the 'plc' health lamp."""
        return type(self).__name__

    def start_demo_master(self) -> object | None:
        """Start a built-in PLC master for the demo, if this transport has one and the settings ask for
        it; returns it (with a stop() method) or None."""
        return None


class MemoryTransport(Transport):
    """A PLC in the same process: tests drive the link through it with no sockets.

    The test thread plays the PLC with `write_control` / `set_bits` / `clear_bits` and reads what the
    station shows with `status`; everything crosses threads under one lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._control = [0] * R.CONTROL_SIZE
        self._writes: deque[list[int]] = deque(maxlen=256)
        self._status = [0] * R.STATUS_SIZE
        self._published = threading.Condition(self._lock)
        self._wake: Callable[[], None] | None = None
        self.link_up = True
        self.conflicts: deque[str] = deque(maxlen=32)
        self.opened = False
        self.closed = False

    # ------------------------------------------------------------------ the link's side
    async def open(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self.opened = True

    async def close(self) -> None:
        self.closed = True

    async def receive(self) -> Inbound:
        with self._lock:
            images = list(self._writes)
            self._writes.clear()
            conflicts = list(self.conflicts)
            self.conflicts.clear()
        return Inbound(images, self.link_up, conflicts)

    async def publish(self, status: list[int]) -> None:
        with self._published:
            self._status = list(status)
            self._published.notify_all()

    def describe(self) -> str:
        return "memory"

    # ------------------------------------------------------------------ the PLC's side (any thread)
    def write_control(self, address: int, values: list[int]) -> None:
        """Write control-block registers (0-based within the block), as one PLC write."""
        if address < 0 or address + len(values) > R.CONTROL_SIZE:
            raise ValueError(f"control write {address}..{address + len(values) - 1} outside 0..{R.CONTROL_SIZE - 1}")
        checked = [R.check_u16(v, "control value") for v in values]
        self._write(lambda image: image.__setitem__(slice(address, address + len(checked)), checked))

    def set_bits(self, mask: int) -> None:
        """Set CONTROL bits in one write (read-modify-write under the lock: a heartbeat thread and the
        test thread never overwrite each other's bits)."""
        self._write(lambda image: image.__setitem__(R.CONTROL, image[R.CONTROL] | mask))

    def clear_bits(self, mask: int) -> None:
        self._write(lambda image: image.__setitem__(R.CONTROL, image[R.CONTROL] & ~mask))

    def _write(self, change: Callable[[list[int]], None]) -> None:
        with self._lock:
            change(self._control)
            self._writes.append(list(self._control))
        if self._wake is not None:
            self._wake()

    def control_word(self) -> int:
        with self._lock:
            return self._control[R.CONTROL]

    @property
    def status(self) -> list[int]:
        with self._lock:
            return list(self._status)

    def wait_status(self, cond: Callable[[list[int]], bool], timeout: float) -> list[int] | None:
        """Block until a published status block satisfies `cond`; None on timeout."""
        with self._published:
            if self._published.wait_for(lambda: cond(self._status), timeout):
                return list(self._status)
            return None

"""Modbus TCP transports: the station as the server the PLC polls, or as a client writing into the PLC.

Why the register image needs no translation: the control and status blocks of docs/plc.md are the
images the handshake works on, so a transport only moves words (server: the PLC writes into our
datastore; client: we read and write the PLC's memory every poll).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .. import registers as R
from ..transport import Inbound, Transport
from . import ModbusSettings
from .client import LinkDown, PlcClient
from .server import RegisterServer

log = logging.getLogger(__name__)


class ModbusServerTransport(Transport):
    """The PLC polls the station (Modbus TCP server on plc.host:plc.port, one master at a time)."""

    def __init__(self, cfg: ModbusSettings, port: int):
        self.cfg = cfg
        self.port = port
        self.server: RegisterServer | None = None
        self._last: list[int] | None = None

    async def open(self, wake: Callable[[], None]) -> None:
        server = RegisterServer(
            self.cfg.host, self.port, self.cfg.device_id, wake, master_window_s=self.cfg.heartbeat_timeout_s
        )
        self.port = await server.start()
        self.server = server

    async def close(self) -> None:
        if self.server is not None:
            self.server.drop_connections()
            await self.server.stop()
            self.server = None

    async def receive(self) -> Inbound:
        assert self.server is not None
        return Inbound(self.server.take_control_writes(), True, self.server.take_master_conflicts())

    async def publish(self, status: list[int]) -> None:
        assert self.server is not None
        if status != self._last:
            await self.server.write(R.STATUS_BASE, status)
            self._last = status

    def describe(self) -> str:
        return f"{self.cfg.mode} {self.cfg.host}:{self.port}"

    def start_demo_master(self) -> object | None:
        if not self.cfg.simulator:
            log.info(
                "line PLC simulator off: waiting for a PLC on %s:%d (unit id %d)",
                self.cfg.host,
                self.port,
                self.cfg.device_id,
            )
            return None
        from .simulator import LinePlcSimulator

        log.warning(
            "built-in line PLC simulator RUNNING (plc.simulator = true: the demo, or asked for by name): it is "
            "this station's PLC master at %.1f boards/s; a real PLC writing the control block is refused and "
            "raises the second-master alarm",
            self.cfg.simulator_rate,
        )
        sim = LinePlcSimulator("127.0.0.1", self.port, rate=self.cfg.simulator_rate, boards=0)
        sim.start_thread()
        return sim


class ModbusClientTransport(Transport):
    """The station writes into the PLC's memory (the PLC hosts the Modbus server): poll, then write."""

    def __init__(self, cfg: ModbusSettings, port: int):
        self.cfg = cfg
        self.port = port
        self.client: PlcClient | None = None
        self._last: list[int] | None = None
        self._last_write = 0.0
        self._refusals = _RefusalLog()

    async def open(self, wake: Callable[[], None]) -> None:
        cfg = self.cfg
        self.client = PlcClient(cfg.host, self.port, cfg.device_id, timeout_s=cfg.timeout_s, retries=cfg.retries)

    async def close(self) -> None:
        if self.client is not None:
            self.client.close()

    async def receive(self) -> Inbound:
        """Read the PLC's control block (a blocking request: this loop has nothing else to serve)."""
        client = self.client
        assert client is not None
        images: list[list[int]] = []
        try:
            images.append(client.read(self.cfg.control_base, R.CONTROL_SIZE))
        except LinkDown:
            self._last = None  # rewrite the whole block once the PLC is back
        except ValueError as exc:
            self._refusals.report(exc)
        return Inbound(images, client.up)

    async def publish(self, status: list[int]) -> None:
        client = self.client
        assert client is not None
        now = time.monotonic()
        if client.up and (status != self._last or now - self._last_write > 0.5):
            try:
                client.write(self.cfg.status_base, status)
                self._last, self._last_write = status, now
            except LinkDown:
                self._last = None
            except ValueError as exc:
                self._refusals.report(exc)

    def wait_s(self, link_wants_s: float) -> float:
        poll = self.cfg.poll_ms / 1000
        return poll if self.client is not None and self.client.up else min(0.05, poll * 10)

    def describe(self) -> str:
        return f"{self.cfg.mode} {self.cfg.host}:{self.port}"


class _RefusalLog:
    """Why: a PLC that refuses a request (wrong unit id, register outside its memory) refuses it at every
    poll, 200 times a second; each distinct refusal is logged once per `interval_s`, with a count."""

    def __init__(self, interval_s: float = 10.0):
        self.interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}

    def report(self, exc: ValueError) -> None:
        text, now = str(exc), time.monotonic()
        at, unlogged = self._last.get(text, (None, 0))
        if at is not None and now - at < self.interval_s:
            self._last[text] = (at, unlogged + 1)
            return
        if len(self._last) > 64:  # texts name fixed addresses; this only bounds a PLC that varies its answer
            self._last.clear()
        self._last[text] = (now, 0)
        more = f" ({unlogged} more since the last report)" if unlogged else ""
        log.warning("%s%s; logged at most every %.0f s", text, more, self.interval_s)

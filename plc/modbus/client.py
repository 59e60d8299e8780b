"""Client mode: the station writes its status block into the PLC and polls the PLC's control block.

For PLCs that host the Modbus server (Siemens MB_SERVER, CODESYS ModbusServer). Why explicit
timeouts, our own retries and a fresh client after a failure: pymodbus defaults to 3 s x 3 retries
(9 s of silence on a line running 2 boards/s), and its sync client does not recover from a timed-out
connection by itself (pymodbus #2320), so on any failure we close it, build a new one, and reconnect
with a capped exponential backoff. Used from one thread only (the PLC link thread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

log = logging.getLogger(__name__)


class LinkDown(Exception):
    """The PLC cannot be reached; the message says what failed (host, port, register, reason)."""


class PlcClient:
    def __init__(
        self,
        host: str,
        port: int,
        device_id: int = 1,
        *,
        timeout_s: float = 0.25,
        retries: int = 1,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.host = host
        self.port = port
        self.device_id = device_id
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._clock = clock
        self._client: ModbusTcpClient | None = None
        self._backoff = backoff_initial_s
        self._next_attempt = 0.0
        self.up = False
        self.reconnects = 0
        self.failures = 0
        self.transactions = 0
        self.last_error = ""

    def _new_client(self) -> ModbusTcpClient:
        # retries=0: we retry ourselves, each time on a fresh client (see module docstring).
        return ModbusTcpClient(self.host, port=self.port, timeout=self.timeout_s, retries=0, reconnect_delay=0)

    def _connect(self) -> ModbusTcpClient:
        now = self._clock()
        if self._client is not None:
            return self._client
        if now < self._next_attempt:
            raise LinkDown(
                f"PLC {self.host}:{self.port} down ({self.last_error}); retry in {self._next_attempt - now:.2f} s"
            )
        client = self._new_client()
        if not client.connect():
            client.close()
            self._mark_down(f"cannot connect to {self.host}:{self.port}")
            raise LinkDown(f"PLC {self.host}:{self.port}: cannot connect")
        self._client = client
        if self.reconnects or self.failures:
            log.info("PLC %s:%d reconnected", self.host, self.port)
        self.reconnects += 1
        return client

    def _mark_down(self, why: str) -> None:
        self.failures += 1
        self.last_error = why
        if self.up:
            log.warning("PLC %s:%d link down: %s", self.host, self.port, why)
        self.up = False
        self._next_attempt = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, self.backoff_max_s)

    def _drop(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a broken socket must not hide the original failure
                log.debug("closing the PLC client failed", exc_info=True)
            self._client = None

    def _call(self, what: str, fn: Callable[[ModbusTcpClient], object]) -> object:
        last = ""
        for _attempt in range(self.retries + 1):
            client = self._connect()
            try:
                rsp = fn(client)
            except (ModbusException, OSError) as exc:
                last = f"{what}: {type(exc).__name__}: {exc}"
                self._drop()  # a timed-out sync client is not reused (pymodbus #2320)
                continue
            self.transactions += 1
            if rsp.isError():
                # The PLC answered with a Modbus exception: the link is up, the request is wrong.
                raise ValueError(f"PLC {self.host}:{self.port} refused {what}: {rsp}")
            self.up = True
            self._backoff = self.backoff_initial_s
            return rsp
        self._mark_down(last)
        raise LinkDown(f"PLC {self.host}:{self.port}: {last}")

    def read(self, address: int, count: int) -> list[int]:
        rsp = self._call(
            f"read {count} registers at {address}",
            lambda c: c.read_holding_registers(address, count=count, device_id=self.device_id),
        )
        regs = list(rsp.registers)  # type: ignore[attr-defined]
        if len(regs) != count:
            raise ValueError(f"PLC {self.host}:{self.port}: asked {count} registers at {address}, got {len(regs)}")
        return regs

    def write(self, address: int, values: list[int]) -> None:
        self._call(
            f"write {len(values)} registers at {address}",
            lambda c: c.write_registers(address, values, device_id=self.device_id),
        )

    def close(self) -> None:
        self._drop()
        self.up = False

"""The line PLC simulator over Modbus TCP: the PLC program of plc/simulator.py, polling the station's server.

Why a thin subclass: the rules a PLC checks are the same over every protocol (plc/simulator.py);
here the control and status blocks are the registers themselves, written with function 16 and read
with function 3, through pymodbus' sync client (another stack than the station's server side).
"""

from __future__ import annotations

from typing import Any

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from .. import registers as R
from ..simulator import LinkLost, Refused, SimulatedLinePlc


class LinePlcSimulator(SimulatedLinePlc):
    """A Modbus TCP client that drives the station's handshake (`pcb-inspector plc-sim`, the demo)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        device_id: int = 1,
        request_timeout_s: float = 0.5,
        **kw: Any,
    ):
        """`kw`: the PLC program's settings (rate, boards, poll_s, timeouts, ...; see SimulatedLinePlc)."""
        super().__init__(**kw)
        self.host, self.port, self.device_id = host, port, device_id
        self.request_timeout_s = request_timeout_s
        self._client: ModbusTcpClient | None = None

    def describe(self) -> str:
        return f"{self.host}:{self.port}"

    def _open(self) -> None:
        if self._client is None:
            self._client = ModbusTcpClient(self.host, port=self.port, timeout=self.request_timeout_s, retries=0)
        if not self._client.connect():
            raise LinkLost("connection refused or timed out")

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _send(self, address: int, values: list[int]) -> None:
        assert self._client is not None
        try:
            rsp = self._client.write_registers(address, values, device_id=self.device_id)
        except (ModbusException, OSError) as exc:
            raise LinkLost(str(exc)) from exc
        if rsp.isError():
            raise Refused(str(rsp))

    def _fetch_status(self) -> list[int]:
        assert self._client is not None
        try:
            rsp = self._client.read_holding_registers(R.STATUS_BASE, count=R.STATUS_SIZE, device_id=self.device_id)
        except (ModbusException, OSError) as exc:
            raise LinkLost(str(exc)) from exc
        if rsp.isError():
            raise Refused(str(rsp))
        return list(rsp.registers)

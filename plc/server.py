"""Server mode: the station is a Modbus TCP server and the PLC polls it (like a Cognex In-Sight).

Why the datastore is the register image: what the PLC reads is exactly what the handshake last
wrote, with no second copy to drift. The server, its datastore and the handshake all live in one
asyncio event loop (one owning thread); PLC writes to the control block are captured request by
request in the datastore's `action` hook, so a TRIGGER that is set and cleared between two of our
loop turns is still seen as two edges.

pymodbus 3.16 builds its datastore from `SimDevice`/`SimData` (the older `ModbusDeviceContext` is
converted into the same thing and logs a deprecation warning). Addresses outside the two blocks are
INVALID, so pymodbus answers ILLEGAL_ADDRESS; the action hook answers ILLEGAL_FUNCTION for function
codes the map does not use (coils, discrete inputs) and ILLEGAL_ADDRESS for PLC writes into the
status block. Oversized counts are refused by pymodbus' PDU checks with ILLEGAL_VALUE.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from . import registers as R

log = logging.getLogger(__name__)

CONTROL_END = R.CONTROL_BASE + R.CONTROL_SIZE
STATUS_END = R.STATUS_BASE + R.STATUS_SIZE


class RegisterServer:
    """A Modbus TCP server over the PLC map; every method must be called in its event loop."""

    def __init__(
        self,
        host: str,
        port: int,
        device_id: int,
        on_control: Callable[[], None],
        *,
        max_pending_writes: int = 256,
    ):
        self.host = host
        self.port = port
        self.device_id = device_id
        self._on_control = on_control
        self._internal = False
        self._pending: deque[list[int]] = deque(maxlen=max_pending_writes)
        self.requests = 0
        self.refused = 0
        self._server: ModbusTcpServer | None = None
        self._last_fc: dict[int, tuple[int, int | None]] = {}

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> int:
        device = SimDevice(
            id=self.device_id,
            simdata=[
                SimData(R.CONTROL_BASE, count=R.CONTROL_SIZE, values=0, datatype=DataType.REGISTERS),
                SimData(R.STATUS_BASE, count=R.STATUS_SIZE, values=0, datatype=DataType.REGISTERS),
            ],
            action=self._action,
        )
        self._server = ModbusTcpServer(device, address=(self.host, self.port), trace_packet=self._trace_packet)
        await self._server.serve_forever(background=True)
        sockets = getattr(self._server.transport, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("PLC server listening on %s:%d (device id %d)", self.host, self.port, self.device_id)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    @property
    def connections(self) -> int:
        return len(self._server.active_connections) if self._server else 0

    def drop_connections(self) -> int:
        """Close every PLC connection (used when the station goes down, and to test a cut link)."""
        if self._server is None:
            return 0
        conns = list(self._server.active_connections.values())
        for c in conns:
            c.close()
        return len(conns)

    # ------------------------------------------------------------------ register image
    async def write(self, address: int, values: list[int]) -> None:
        """Station-side write (the status block); PLC writes there are refused."""
        assert self._server is not None
        self._internal = True
        try:
            await self._server.async_setValues(self.device_id, 16, address, values)
        finally:
            self._internal = False

    async def read(self, address: int, count: int) -> list[int]:
        assert self._server is not None
        self._internal = True
        try:
            return list(await self._server.async_getValues(self.device_id, 3, address, count))
        finally:
            self._internal = False

    def take_control_writes(self) -> list[list[int]]:
        """Control-block images after each PLC write since the last call, oldest first."""
        out = list(self._pending)
        self._pending.clear()
        return out

    # ------------------------------------------------------------------ exception replies
    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Give undecodable requests the textbook exception reply.

        pymodbus 3.16 answers a request its decoder refuses (e.g. a read of 126 registers) with
        function code 0x80 and ILLEGAL_FUNCTION; a PLC expects its own function code | 0x80 and
        ILLEGAL_DATA_VALUE. We remember each request's function code by transaction id and rewrite
        that one reply; every other frame passes unchanged.
        """
        try:
            if not sending:
                pos = 0
                while pos + 8 <= len(data):
                    tid, _proto, length = struct.unpack_from(">HHH", data, pos)
                    fc = data[pos + 7]
                    self._last_fc[tid] = (fc, _expected_exception(data[pos + 7 : pos + 6 + length]))
                    if len(self._last_fc) > 256:
                        self._last_fc.pop(next(iter(self._last_fc)))
                    pos += 6 + max(length, 2)
            elif len(data) == 9 and data[7] == 0x80:
                tid = struct.unpack_from(">H", data, 0)[0]
                fc, code = self._last_fc.pop(tid, (None, None))
                if fc is not None and fc < 0x80:
                    return data[:7] + bytes([fc | 0x80, code or data[8]])
        except Exception:  # a trace hook must never break the server
            log.debug("trace_packet failed", exc_info=True)
        return data

    # ------------------------------------------------------------------ datastore hook
    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if self._internal:
            return None
        self.requests += 1
        if set_values is None:
            # FC 6/16 read the written registers back after the write, through this same hook.
            if function_code not in R.READ_FUNCTIONS | R.WRITE_FUNCTIONS:
                self.refused += 1
                return ExcCodes.ILLEGAL_FUNCTION
            return None
        if function_code not in R.WRITE_FUNCTIONS:
            self.refused += 1
            return ExcCodes.ILLEGAL_FUNCTION
        if not (R.CONTROL_BASE <= address and address + count <= CONTROL_END):
            self.refused += 1
            return ExcCodes.ILLEGAL_ADDRESS
        # The write is applied right after this hook returns; record the image it produces.
        off = R.CONTROL_BASE - start_address
        image = list(current_registers[off : off + R.CONTROL_SIZE])
        i = address - R.CONTROL_BASE
        image[i : i + count] = [int(v) & 0xFFFF for v in set_values]
        self._pending.append(image)
        asyncio.get_running_loop().call_soon(self._on_control)
        return None


def _expected_exception(pdu: bytes) -> int | None:
    """ILLEGAL_DATA_VALUE for register counts outside the Modbus limits, else None (keep pymodbus' code)."""
    if len(pdu) >= 5 and pdu[0] in (3, 4):
        count = struct.unpack_from(">H", pdu, 3)[0]
        return int(ExcCodes.ILLEGAL_VALUE) if not 1 <= count <= 125 else None
    if len(pdu) >= 5 and pdu[0] == 16:
        count = struct.unpack_from(">H", pdu, 3)[0]
        return int(ExcCodes.ILLEGAL_VALUE) if not 1 <= count <= 123 else None
    return None

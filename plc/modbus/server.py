"""Server mode: the station is a Modbus TCP server and the PLC polls it (like a Cognex In-Sight).

Why the datastore is the register image: what the PLC reads is exactly what the handshake last
wrote, with no second copy to drift. The server, its datastore and the handshake all live in one
asyncio event loop (one owning thread); PLC writes to the control block are captured request by
request in the datastore's `action` hook, so a TRIGGER that is set and cleared between two of our
loop turns is still seen as two edges.

pymodbus 3.16 builds its datastore from `SimDevice`/`SimData` (the older `ModbusDeviceContext` is
converted into the same thing and logs a deprecation warning). Addresses outside the two blocks are
INVALID, so pymodbus answers ILLEGAL_ADDRESS; the action hook answers ILLEGAL_ADDRESS for PLC writes
into the status block. Oversized counts are refused by pymodbus' PDU checks with ILLEGAL_VALUE.

Why the decoder is cut down to the served function codes: pymodbus' server decodes and answers every
public function code (7 exception status, 8 diagnostics, 11 event counter, 17 server id, 20 file
records, 24 FIFO, 43 device id, ...) from its own control block. docs/plc.md promises ILLEGAL_FUNCTION
for everything but 3, 6, 16 and 23, and a PLC programmer must be able to trust that page; a request
the decoder does not know gets ILLEGAL_FUNCTION with its own function code (see `_trace_packet`).

Why every connection is a `_PlcConnection`: the station must know *which* PLC wrote the control block
(one master at a time, see `_claim_master`) and must answer a wrong unit id itself (pymodbus' SimCore
raises a KeyError with a traceback per request and answers SERVER DEVICE FAILURE).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import struct
import time
from collections import deque
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from .. import registers as R

log = logging.getLogger(__name__)

CONTROL_END = R.CONTROL_BASE + R.CONTROL_SIZE
STATUS_END = R.STATUS_BASE + R.STATUS_SIZE

#: The connection whose request is being served (set per request task; None for station-side calls).
_CONNECTION: contextvars.ContextVar[_PlcConnection | None] = contextvars.ContextVar("plc_connection", default=None)


def _why_not(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, in the system's words ("Address already in use": a second station or a
    demo left running), or None when a bind works now."""
    import socket

    try:
        with socket.create_server((host, port)):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


class _PlcConnection(ServerRequestHandler):
    """One TCP connection to the station's server: knows its peer and answers a wrong unit id itself."""

    def __init__(self, owner: _StationTcpServer):
        super().__init__(owner, owner.trace_packet, owner.trace_pdu, owner.trace_connect)
        self.regs = owner.regs
        self.peer = "unknown peer"
        self.closed = False

    def callback_connected(self) -> None:
        super().callback_connected()
        info = self.transport.get_extra_info("peername") if self.transport is not None else None
        if info:
            self.peer = f"{info[0]}:{info[1]}"

    def callback_disconnected(self, exc: Exception | None) -> None:
        self.closed = True
        super().callback_disconnected(exc)
        self.regs._disconnected(self)

    async def handle_request(self) -> None:
        pdu = self.last_pdu
        if pdu is None:
            return
        if pdu.dev_id != self.regs.device_id:
            self.regs._wrong_unit(self, pdu.dev_id)
            self.server_send(
                ExceptionResponse(
                    pdu.function_code,
                    ExcCodes.GATEWAY_NO_RESPONSE,
                    device_id=pdu.dev_id,
                    transaction=pdu.transaction_id,
                ),
                self.last_addr,
            )
            return
        token = _CONNECTION.set(self)
        try:
            await super().handle_request()
        finally:
            _CONNECTION.reset(token)


class _StationTcpServer(ModbusTcpServer):
    """pymodbus' TCP server with our connection class and only the served function codes decoded."""

    def __init__(self, regs: RegisterServer, context: SimDevice, **kw):
        self.regs = regs
        super().__init__(context, **kw)
        # An instance table shadows pymodbus' class-wide one (as DecodePDU.register does for custom PDUs).
        self.decoder.pdu_table = {fc: pdus for fc, pdus in DecodePDU.pdu_table.items() if fc in R.SERVED_FUNCTIONS}
        missing = R.SERVED_FUNCTIONS - set(self.decoder.pdu_table)
        if missing:
            raise RuntimeError(f"pymodbus has no decoder for function codes {sorted(missing)}")

    def callback_new_connection(self) -> _PlcConnection:
        return _PlcConnection(self)


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
        master_window_s: float = 3.0,
        log_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`master_window_s`: how long a silent master keeps the control block (plc.heartbeat_timeout_s).

        `log_interval_s`: at most one log line per wrong unit id, and per refused master, this often.
        """
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
        self.master_window_s = master_window_s
        self.log_interval_s = log_interval_s
        self._clock = clock
        self._master: _PlcConnection | None = None
        self._master_at = 0.0
        self._last_master_host = ""
        self._last_reconnect_at = -float("inf")
        self._conflicts: deque[str] = deque(maxlen=32)
        self._conflict_logged: tuple[str, float] = ("", 0.0)
        self._conflicts_unlogged = 0
        self.master_conflicts = 0
        """Control-block writes refused because another connection is the active master."""
        self.wrong_unit = 0
        """Requests for another unit id, answered with exception 0B."""
        self._unit_logged: dict[int, float] = {}
        self._unit_unlogged: dict[int, int] = {}

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
        self._server = _StationTcpServer(self, device, address=(self.host, self.port), trace_packet=self._trace_packet)
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus says only "Could not start listen, please check address."
            raise OSError(
                f"cannot listen on {self.host}:{self.port}: {_why_not(self.host, self.port) or exc}"
            ) from None
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

    def take_master_conflicts(self) -> list[str]:
        """One line per control-block write refused since the last call (a second master), oldest first."""
        out = list(self._conflicts)
        self._conflicts.clear()
        return out

    @property
    def master(self) -> str | None:
        """The active master's peer (host:port), or None."""
        m = self._master
        if m is None or m.closed or self._clock() - self._master_at > self.master_window_s:
            return None
        return m.peer

    # ------------------------------------------------------------------ one master at a time
    def _claim_master(self, conn: _PlcConnection) -> ExcCodes | None:
        """Why one master: two PLCs (or a PLC and the built-in simulator) writing TRIGGER, PART_SEQ and
        SERIAL interleave their boards, and results and records carry another board's identity.

        The active master is the open connection whose control-block write was accepted last, for
        `master_window_s` after that write. Another connection's write meanwhile is refused with
        SERVER DEVICE BUSY and reported (the link raises the second-master alarm). A master that
        disconnected or went silent is replaced by the next writer.

        A new connection from the master's own host is that PLC reconnecting while its old connection
        still looks open here (cable pulled, no FIN): it takes over and the old one is closed. Two
        such takeovers within `master_window_s` are two programs on that host taking turns: refused.
        """
        now = self._clock()
        m = self._master
        if m is conn:
            self._master_at = now
            return None
        if m is None or m.closed or now - self._master_at > self.master_window_s:
            host = _host(conn.peer)
            if m is not None and not m.closed:
                log.warning(
                    "PLC master is now %s: the previous master %s has not written the control block for %.1f s",
                    conn.peer,
                    m.peer,
                    now - self._master_at,
                )
            elif host != self._last_master_host:
                log.info("PLC master is now %s (the connection writing the control block)", conn.peer)
            self._master, self._master_at, self._last_master_host = conn, now, host
            return None
        same_host = _host(conn.peer) == _host(m.peer)
        if same_host and now - self._last_reconnect_at >= self.master_window_s:
            log.warning(
                "PLC master is now %s, a new connection from the master's host: the old connection %s "
                "(last write %.1f s ago) is closed (the PLC reconnected)",
                conn.peer,
                m.peer,
                now - self._master_at,
            )
            self._master, self._master_at, self._last_reconnect_at = conn, now, now
            m.closed = True
            m.close()
            return None
        self.master_conflicts += 1
        self.refused += 1
        text = f"{conn.peer} wrote the control block while {m.peer} is the PLC master"
        if same_host:
            text += f" (the second new connection from that host within {self.master_window_s:.1f} s)"
        self._conflicts.append(text)
        asyncio.get_running_loop().call_soon(self._on_control)
        last_text, last_at = self._conflict_logged
        if text != last_text or now - last_at >= self.log_interval_s:
            more = (
                f" ({self._conflicts_unlogged} more refused since the last report)" if self._conflicts_unlogged else ""
            )
            log.error("second PLC master: %s; write refused with exception 06 SERVER DEVICE BUSY%s", text, more)
            self._conflict_logged, self._conflicts_unlogged = (text, now), 0
        else:
            self._conflicts_unlogged += 1
        return ExcCodes.DEVICE_BUSY

    def _disconnected(self, conn: _PlcConnection) -> None:
        if conn is self._master:
            self._master = None
            log.debug("PLC master %s disconnected", conn.peer)

    def _wrong_unit(self, conn: _PlcConnection, unit: int) -> None:
        """One log line per unit id per `log_interval_s`, naming both ids (a PLC retries many times a second)."""
        self.requests += 1
        self.refused += 1
        self.wrong_unit += 1
        now = self._clock()
        last = self._unit_logged.get(unit)
        if last is not None and now - last < self.log_interval_s:
            self._unit_unlogged[unit] = self._unit_unlogged.get(unit, 0) + 1
            return
        self._unit_logged[unit] = now
        n = self._unit_unlogged.pop(unit, 0)
        log.warning(
            "PLC %s addressed unit id %d, but this station serves unit id %d (plc.device_id): "
            "answered exception 0B GATEWAY TARGET DEVICE FAILED TO RESPOND%s",
            conn.peer,
            unit,
            self.device_id,
            f" ({n} more such requests since the last report)" if n else "",
        )

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
                self.refused += 1
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
            if function_code not in R.SERVED_FUNCTIONS:  # cannot happen: the decoder knows no others
                self.refused += 1
                return ExcCodes.ILLEGAL_FUNCTION
            return None
        if function_code not in R.WRITE_FUNCTIONS:
            self.refused += 1
            return ExcCodes.ILLEGAL_FUNCTION
        if not (R.CONTROL_BASE <= address and address + count <= CONTROL_END):
            self.refused += 1
            return ExcCodes.ILLEGAL_ADDRESS
        conn = _CONNECTION.get()
        if conn is not None:
            refusal = self._claim_master(conn)
            if refusal is not None:
                return refusal
        # The write is applied right after this hook returns; record the image it produces.
        off = R.CONTROL_BASE - start_address
        image = list(current_registers[off : off + R.CONTROL_SIZE])
        i = address - R.CONTROL_BASE
        image[i : i + count] = [int(v) & 0xFFFF for v in set_values]
        self._pending.append(image)
        asyncio.get_running_loop().call_soon(self._on_control)
        return None


def _host(peer: str) -> str:
    """'10.0.0.5:49152' -> '10.0.0.5' (IPv6 peers keep their colons)."""
    return peer.rpartition(":")[0]


def _expected_exception(pdu: bytes) -> int | None:
    """ILLEGAL_DATA_VALUE for register counts outside the Modbus limits, else None (keep pymodbus' code)."""
    if len(pdu) >= 5 and pdu[0] in (3, 4):
        count = struct.unpack_from(">H", pdu, 3)[0]
        return int(ExcCodes.ILLEGAL_VALUE) if not 1 <= count <= 125 else None
    if len(pdu) >= 5 and pdu[0] == 16:
        count = struct.unpack_from(">H", pdu, 3)[0]
        return int(ExcCodes.ILLEGAL_VALUE) if not 1 <= count <= 123 else None
    return None

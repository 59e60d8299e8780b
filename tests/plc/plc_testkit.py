"""PLC test set-up: a real station (replay camera in triggered mode, the classical detector, the PLC
link on an ephemeral 127.0.0.1 port) and a PLC played by pyModbusTCP, another Modbus stack.

The detector is inspector.detect.classical.DifferenceDetector, a real golden-board difference
detector (absdiff -> threshold -> connected components), not a mock. `GatedDetector` wraps it and
holds a board until the test opens its gate: a slow accelerator, used to inject a fault while BUSY.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyModbusTCP.client import ModbusClient

from inspector.config import DetectorSection, Recipe, ReplayCamera, StationConfig, StationSection
from inspector.detect.classical import DifferenceDetector
from inspector.health import Health
from inspector.pipeline import Pipeline
from inspector.station import build_station
from plc import registers as R
from plc.modbus import ModbusSettings
from plc.station import PlcLink


class GatedDetector(DifferenceDetector):
    """The real difference detector, but each board waits for `gate` (a slow accelerator)."""

    def __init__(self):
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def detect(self, image, reference=None, thresholds=None):
        self.entered.set()
        self.gate.wait(10)
        return super().detect(image, reference, thresholds)


class ListSink:
    name = "test-list"

    def __init__(self):
        self.results = []
        self.lock = threading.Lock()

    def submit(self, r):
        with self.lock:
            self.results.append(r)

    def by_part(self) -> dict:
        with self.lock:
            return {r.part_seq: r for r in self.results}


def wait_for(cond, timeout=10.0, step=0.005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


@dataclass
class TestStation:
    cfg: StationConfig
    health: Health
    pipeline: Pipeline
    link: PlcLink
    sink: ListSink
    detector: DifferenceDetector
    truth: dict = field(default_factory=dict)
    boards: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.link.port

    def stop(self) -> None:
        try:
            self.pipeline.stop()
        finally:
            self.link.stop()


def start_station(
    boards_dir: Path,
    *,
    mode: str = "server",
    port: int = 0,
    detector: DifferenceDetector | None = None,
    recipes: list[Recipe] | None = None,
    **plc_kw,
) -> TestStation:
    plc_kw.setdefault("heartbeat_timeout_s", 2.0)
    plc = ModbusSettings(mode=mode, simulator=False, **plc_kw)
    cfg = StationConfig(
        # No calibration plug-in: it would look for calibrations in the working directory's database.
        station=StationSection(plugins={"plc": "station"}),
        camera=ReplayCamera(path=boards_dir, trigger="software", fps=None, loop=True),
        detector=DetectorSection(type="classical"),
        plc=plc,
        recipes=recipes or [Recipe()],
    )
    health = Health()
    health.ok("database", "test: not used")
    health.ok("disk", "test: not used")
    detector = detector or DifferenceDetector()
    sink = ListSink()
    # The station's own composition root, so these tests run the station the line runs.
    station = build_station(
        cfg,
        sinks=[sink],
        with_storage=False,
        health=health,
        detector=detector,
        plc_options={"port": port, "startup_grace_s": 60.0},
    )
    pipeline, link = station.pipeline, station.plc
    truth = json.loads((boards_dir / "truth.json").read_text())
    st = TestStation(cfg, health, pipeline, link, sink, detector, truth, sorted(truth))
    link.start()
    pipeline.start()
    return st


class Plc:
    """The line PLC's side of the handshake, over pyModbusTCP (an independent Modbus stack).

    A background thread toggles PLC_HEARTBEAT every 0.2 s; all writes of the CONTROL word go through
    one lock so the heartbeat never overwrites a TRIGGER in flight.
    """

    def __init__(self, port: int, heartbeat: bool = True, timeout: float = 2.0):
        self.port = port
        self.c = ModbusClient(host="127.0.0.1", port=port, unit_id=1, timeout=timeout, auto_open=True)
        self.word = 0
        self.lock = threading.Lock()
        self._hb_stop = threading.Event()
        self._hb: threading.Thread | None = None
        if heartbeat:
            self.start_heartbeat()

    # control
    def set_word(self, word: int) -> None:
        with self.lock:
            self.word = word
            assert self.c.write_single_register(R.CONTROL, word), self.c.last_error_as_txt

    def set_bits(self, bits: int) -> None:
        self.set_word(self.word | bits)

    def clear_bits(self, bits: int) -> None:
        self.set_word(self.word & ~bits)

    def write_part(self, part_seq: int, serial: str) -> None:
        regs = R.encode_u32(part_seq) + R.encode_ascii(serial, R.SERIAL_REGS)
        with self.lock:
            assert self.c.write_multiple_registers(R.PART_SEQ, regs), self.c.last_error_as_txt

    def status(self) -> list[int]:
        with self.lock:
            regs = self.c.read_holding_registers(R.STATUS_BASE, R.STATUS_SIZE)
        assert regs is not None, f"status read failed: {self.c.last_error_as_txt} {self.c.last_except_as_txt}"
        return regs

    def reg(self, st: list[int], addr: int) -> int:
        return st[addr - R.STATUS_BASE]

    def wait(self, cond, timeout=10.0, what="condition") -> list[int]:
        end = time.monotonic() + timeout
        while True:
            st = self.status()
            if cond(st[0], st):
                return st
            if time.monotonic() > end:
                raise AssertionError(
                    f"timed out waiting for {what}; status bits {R.bits_named(st[0], R.STATUS_BITS)}, regs {st}"
                )
            time.sleep(0.003)

    def wait_bits(self, on: int = 0, off: int = 0, timeout=10.0) -> list[int]:
        return self.wait(
            lambda w, st: (w & on) == on and not (w & off),
            timeout,
            f"on={R.bits_named(on, R.STATUS_BITS)} off={R.bits_named(off, R.STATUS_BITS)}",
        )

    # heartbeat
    def start_heartbeat(self, period: float = 0.2) -> None:
        self._hb_stop.clear()

        def beat():
            while not self._hb_stop.wait(period):
                with self.lock:
                    self.word ^= R.PLC_HEARTBEAT
                    self.c.write_single_register(R.CONTROL, self.word)

        self._hb = threading.Thread(target=beat, name="test-plc-hb", daemon=True)
        self._hb.start()
        time.sleep(period * 1.5)

    def stop_heartbeat(self) -> None:
        self._hb_stop.set()
        if self._hb is not None:
            self._hb.join(2)
            self._hb = None

    def close(self) -> None:
        self.stop_heartbeat()
        self.c.close()

    # one full board, step by step as docs/plc.md describes
    def board(self, part_seq: int, serial: str, ack: bool = True) -> dict:
        before = self.status()
        self.write_part(part_seq, serial)
        self.set_bits(R.TRIGGER_ENABLE | R.TRIGGER)
        st = self.wait_bits(on=R.TRIGGER_ACK)
        acq = self.reg(st, R.ACQ_ID)
        self.clear_bits(R.TRIGGER)
        self.wait_bits(off=R.TRIGGER_ACK)
        st = self.wait_bits(on=R.RESULTS_VALID, off=R.BUSY)
        out = {
            "passed": bool(st[0] & R.PASS),
            "rejected": bool(st[0] & R.REJECT),
            "insp_id": self.reg(st, R.INSP_ID),
            "acq_id": acq,
            "acq_before": self.reg(before, R.ACQ_ID),
            "echo": R.decode_u32(st[R.PART_SEQ_ECHO - R.STATUS_BASE : R.PART_SEQ_ECHO - R.STATUS_BASE + 2]),
            "code": self.reg(st, R.RESULT_CODE),
            "defects": self.reg(st, R.DEFECT_COUNT),
            "classes": st[R.CLASS_COUNTS - R.STATUS_BASE : R.CLASS_COUNTS - R.STATUS_BASE + 6],
            "status": st,
        }
        if ack:
            self.ack()
        return out

    def ack(self) -> None:
        self.set_bits(R.RESULTS_ACK)
        self.wait_bits(off=R.RESULTS_VALID)
        self.clear_bits(R.RESULTS_ACK)


def raw_request(sock: socket.socket, tid: int, unit: int, pdu: bytes) -> tuple[int, bytes]:
    """One Modbus TCP request on a raw socket; returns (transaction id, response PDU)."""
    sock.sendall(struct.pack(">HHHB", tid & 0xFFFF, 0, len(pdu) + 1, unit) + pdu)
    head = recv_exact(sock, 7)
    rtid, proto, length, _unit = struct.unpack(">HHHB", head)
    assert proto == 0
    return rtid, recv_exact(sock, length - 1)


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf

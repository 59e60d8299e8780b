"""Server mode against independent Modbus stacks: pyModbusTCP, umodbus, Debian's mbpoll and raw sockets."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time

import pytest
from plc_testkit import raw_request, wait_for
from umodbus.client import tcp as utcp
from umodbus.exceptions import IllegalDataAddressError, IllegalFunctionError

from plc import registers as R


def test_full_handshake_many_boards_pymodbustcp(station, plc_factory):
    plc = plc_factory(station.port)
    plc.set_bits(R.TRIGGER_ENABLE)
    plc.wait_bits(on=R.READY | R.ONLINE, off=R.ERROR)
    n = 2 * len(station.boards) + 3  # wraps the replay folder twice
    seen = []
    for i in range(n):
        part = 1_000_000 + i  # > 16 bits: exercises the u32 word order
        r = plc.board(part, f"PCB-{i:05d}")
        seen.append((part, r))
    published = station.sink.by_part()
    for idx, (part, r) in enumerate(seen):
        res = published[part]
        assert r["echo"] == part and res.board_serial == f"PCB-{idx:05d}"
        assert r["passed"] == res.passed and r["rejected"] == (not res.passed)
        assert r["insp_id"] == idx + 1 and r["acq_id"] == (r["acq_before"] + 1) & 0xFFFF
        assert r["defects"] == len(res.detections) and r["classes"] == res.class_counts()
        assert r["code"] == (0 if res.passed else (res.worst.class_id if res.worst else 255))
        board = res.frame_meta["name"]
        assert res.passed == (not station.truth[board]), f"{board}: verdict does not match the truth file"
    assert {r["passed"] for _, r in seen} == {True, False}
    assert station.link.hs.counters.violations == 0


def test_umodbus_peer_reads_and_writes_and_gets_exceptions(station):
    with socket.create_connection(("127.0.0.1", station.port), timeout=2) as sock:
        st = utcp.send_message(utcp.read_holding_registers(1, R.STATUS_BASE, R.STATUS_SIZE), sock)
        assert len(st) == R.STATUS_SIZE and st[R.MAP_VERSION_REG - 100] == R.MAP_VERSION
        assert st[R.CURRENT_RECIPE - 100] == station.cfg.recipe().id
        utcp.send_message(utcp.write_multiple_registers(1, R.PART_SEQ, R.encode_u32(123456789)), sock)
        assert utcp.send_message(utcp.read_holding_registers(1, R.PART_SEQ, 2), sock) == [0x075B, 0xCD15]
        with pytest.raises(IllegalDataAddressError):
            utcp.send_message(utcp.write_single_register(1, R.STATUS, 1), sock)  # status is the station's
        with pytest.raises(IllegalDataAddressError):
            utcp.send_message(utcp.read_holding_registers(1, 50, 1), sock)  # gap between the blocks
        with pytest.raises(IllegalFunctionError):
            utcp.send_message(utcp.read_coils(1, 0, 8), sock)
        with pytest.raises(IllegalFunctionError):
            utcp.send_message(utcp.read_input_registers(1, 100, 2), sock)
        with pytest.raises(IllegalFunctionError):
            utcp.send_message(utcp.write_single_coil(1, 0, 1), sock)
        # still serving after the refusals
        assert utcp.send_message(utcp.read_holding_registers(1, R.MAP_VERSION_REG, 1), sock) == [R.MAP_VERSION]


def _exception(pdu: bytes) -> int | None:
    return pdu[1] if pdu[0] & 0x80 else None


def test_malformed_requests_get_modbus_exceptions_never_a_crash(station):
    sock = socket.create_connection(("127.0.0.1", station.port), timeout=2)
    cases = [
        (struct.pack(">BHH", 3, 60000, 2), 2),  # illegal address
        (struct.pack(">BHH", 3, R.STATUS_BASE + R.STATUS_SIZE - 2, 4), 2),  # runs off the end of the status block
        (struct.pack(">BHH", 3, 0, 30), 2),  # control block + gap
        (struct.pack(">BHH", 3, 100, 126), 3),  # oversized read (max 125)
        (struct.pack(">BHH", 3, 100, 0), 3),  # zero count
        (struct.pack(">BHHB", 16, 0, 124, 248) + b"\0" * 248, 3),  # oversized write (max 123)
        (struct.pack(">BHHB", 16, 20, 6, 12) + b"\0" * 12, 2),  # write past the control block
        (struct.pack(">BHH", 6, 105, 1), 2),  # write into the status block
        (struct.pack(">BHH", 1, 0, 16), 1),  # coils
        (struct.pack(">BHH", 2, 0, 16), 1),  # discrete inputs
        (struct.pack(">BHH", 5, 0, 0xFF00), 1),  # write coil
        (bytes([0x41, 0, 0]), 1),  # function code nobody defines
    ]
    for i, (pdu, code) in enumerate(cases):
        tid, rsp = raw_request(sock, 100 + i, 1, pdu)
        assert tid == 100 + i
        assert rsp[0] == pdu[0] | 0x80 and _exception(rsp) == code, f"case {i} {pdu[:6].hex()}: got {rsp.hex()}"
    # Garbage that is not Modbus at all on one connection: the server may drop it, but must keep serving.
    junk = socket.create_connection(("127.0.0.1", station.port), timeout=2)
    junk.sendall(b"\xde\xad\xbe\xef" * 64)
    junk.sendall(struct.pack(">HHHB", 1, 0, 2000, 1) + b"\x03")  # length field larger than any frame
    junk.close()
    tid, rsp = raw_request(sock, 7, 1, struct.pack(">BHH", 3, R.MAP_VERSION_REG, 1))
    assert rsp == bytes([3, 2, 0, R.MAP_VERSION])
    assert station.link._thread.is_alive() and station.link.server.refused >= 4
    sock.close()


def test_transaction_id_wrap_past_65535(station):
    """More than 65,536 transactions on one connection, transaction ids counting up and wrapping."""
    sock = socket.create_connection(("127.0.0.1", station.port), timeout=2)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pdu = struct.pack(">BHH", 3, R.MAP_VERSION_REG, 1)
    n = 65_536 + 1_000
    start = 65_000  # start near the top: the wrap happens early and again never matters
    t0 = time.monotonic()
    for i in range(n):
        tid = (start + i) & 0xFFFF
        rtid, rsp = raw_request(sock, tid, 1, pdu)
        if rtid != tid or rsp != struct.pack(">BBH", 3, 2, R.MAP_VERSION):
            raise AssertionError(f"transaction {i}: sent tid {tid}, got tid {rtid} {rsp.hex()}")
    elapsed = time.monotonic() - t0
    sock.close()
    print(f"{n} transactions in {elapsed:.1f} s")
    assert station.link._thread.is_alive()


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed (packaging/apt-test.txt)")
def test_mbpoll_drives_a_board(station_factory):
    """Debian's mbpoll as the only PLC for one board. mbpoll's -r is 1-based: PDU address a is -r a+1.

    Each mbpoll run is one short connection, closed before the next: one master at a time. It toggles
    PLC_HEARTBEAT with every CONTROL write (a long heartbeat timeout covers the pauses between runs).
    """
    station = station_factory(heartbeat_timeout_s=30.0)
    word = 0

    def mbpoll(*args: str, values: tuple[int, ...] = ()) -> str:
        # mbpoll [options] host [writevalues...]
        cmd = ["mbpoll", "-m", "tcp", "-p", str(station.port), "-a", "1", "-t", "4", "-1", "-o", "2", *args]
        out = subprocess.run(
            [*cmd, "127.0.0.1", *[str(v) for v in values]],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def mbwrite(addr: int, *values: int) -> None:
        mbpoll("-r", str(addr + 1), values=values)

    def control(set_bits: int = 0, clear_bits: int = 0) -> None:
        nonlocal word
        word = ((word | set_bits) & ~clear_bits) ^ R.PLC_HEARTBEAT
        mbwrite(R.CONTROL, word)

    def mbread(addr: int, count: int) -> list[int]:
        text = mbpoll("-r", str(addr + 1), "-c", str(count))
        vals = {}
        for line in text.splitlines():
            if line.startswith("[") and "]:" in line:
                ref, val = line.split("]:")
                vals[int(ref.strip("[ "))] = int(val.split()[0])
        return [vals[a] for a in range(addr + 1, addr + 1 + count)]

    control(R.TRIGGER_ENABLE)
    assert wait_for(lambda: mbread(R.STATUS, 1)[0] & R.READY, 10)
    mbwrite(R.PART_SEQ, *R.encode_u32(77777), *R.encode_ascii("MBPOLL-1", 4))
    control(R.TRIGGER)
    assert wait_for(lambda: mbread(R.STATUS, 1)[0] & R.TRIGGER_ACK, 10)
    control(clear_bits=R.TRIGGER)
    st = wait_for(lambda: (s := mbread(R.STATUS_BASE, 11)) and s[0] & R.RESULTS_VALID and s, 10)
    assert st, "no RESULTS_VALID"
    assert R.decode_u32(st[9:11]) == 77777 and st[R.INSP_ID - 100] == 1
    res = station.sink.by_part()[77777]
    assert res.board_serial == "MBPOLL-1" and bool(st[0] & R.PASS) == res.passed
    control(R.RESULTS_ACK)
    assert wait_for(lambda: not mbread(R.STATUS, 1)[0] & R.RESULTS_VALID, 10)
    control(clear_bits=R.RESULTS_ACK)
    assert station.link.server.master_conflicts == 0 and station.link.hs.counters.violations == 0
    # mbpoll reports a Modbus exception for an illegal address and exits non-zero, the station lives on
    bad = subprocess.run(
        ["mbpoll", "-m", "tcp", "-p", str(station.port), "-a", "1", "-t", "4", "-1", "-r", "5001", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert "Illegal data address" in bad.stdout + bad.stderr
    assert mbread(R.MAP_VERSION_REG, 1) == [R.MAP_VERSION]

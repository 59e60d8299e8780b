"""Client mode against a PLC played by another stack's server (pyModbusTCP ModbusServer)."""

from __future__ import annotations

import time

import pytest
from plc_testkit import wait_for
from pyModbusTCP.server import DataBank, ModbusServer

from plc import registers as R
from plc.modbus.client import LinkDown, PlcClient

CTRL, STAT = 200, 300  # non-default bases: the PLC decides where the blocks live


class PlcMemory:
    """A PLC hosting the blocks in its own holding registers; its 'program' runs in the test."""

    def __init__(self, port: int = 0, bank: DataBank | None = None):
        self.bank = bank or DataBank()
        self.server = ModbusServer("127.0.0.1", port, no_block=True, data_bank=self.bank)
        self.server.start()
        self.port = self.server._service.server_address[1]
        self.word = 0

    def set_word(self, word: int) -> None:
        self.word = word
        self.bank.set_holding_registers(CTRL, [word])

    def beat(self) -> None:
        self.set_word(self.word ^ R.PLC_HEARTBEAT)

    def status(self) -> list[int]:
        return self.bank.get_holding_registers(STAT, R.STATUS_SIZE)

    def wait(self, on=0, off=0, timeout=10.0) -> list[int]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.beat()
            s = self.status()
            if (s[0] & on) == on and not s[0] & off:
                return s
            time.sleep(0.01)
        raise AssertionError(f"timeout: status {R.bits_named(self.status()[0], R.STATUS_BITS)}")

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def plc_memory():
    mems = []

    def make(**kw):
        m = PlcMemory(**kw)
        mems.append(m)
        return m

    yield make
    for m in mems:
        m.stop()


def test_client_mode_handshake_and_link_cut_restored(station_factory, plc_memory):
    mem = plc_memory()
    st = station_factory(mode="client", port=mem.port, control_base=CTRL, status_base=STAT, poll_ms=5)
    mem.set_word(R.TRIGGER_ENABLE)
    mem.wait(on=R.READY | R.ONLINE)
    for part in (1, 2, 3):
        mem.bank.set_holding_registers(CTRL + R.PART_SEQ, R.encode_u32(part) + R.encode_ascii(f"C{part}", 20))
        mem.set_word(mem.word | R.TRIGGER)
        mem.wait(on=R.TRIGGER_ACK)
        mem.set_word(mem.word & ~R.TRIGGER)
        s = mem.wait(on=R.RESULTS_VALID, off=R.TRIGGER_ACK)
        assert R.decode_u32(s[9:11]) == part and s[R.INSP_ID - 100] == part
        assert bool(s[0] & R.PASS) == st.sink.by_part()[part].passed
        mem.set_word(mem.word | R.RESULTS_ACK)
        mem.wait(off=R.RESULTS_VALID)
        mem.set_word(mem.word & ~R.RESULTS_ACK)
    # cut: the PLC's server goes away; the station notices, backs off, and reconnects on its own
    port, bank = mem.port, mem.bank
    mem.stop()
    assert wait_for(lambda: st.health.get("plc") and not st.health.get("plc").ok, 5)
    assert "link down" in st.health.get("plc").reason
    bank.set_holding_registers(STAT, [0] * R.STATUS_SIZE)  # the PLC restarted with cleared memory
    mem2 = plc_memory(port=port, bank=bank)
    mem2.word = mem.word
    s = mem2.wait(on=R.ERROR | R.ONLINE)  # status block rewritten after reconnect; fault latched
    assert s[R.ERROR_CODE - 100] == 50 and st.link.client.reconnects >= 2
    mem2.set_word(mem2.word | R.CLEAR_ERROR)
    mem2.wait(on=R.READY, off=R.ERROR)


def test_client_timeouts_recreate_the_client_and_back_off():
    # Nothing listens on this port: every attempt fails fast, and the next is scheduled later each time.
    mem = PlcMemory()
    port = mem.port
    mem.stop()
    c = PlcClient("127.0.0.1", port, timeout_s=0.05, retries=1, backoff_initial_s=0.05, backoff_max_s=0.2)
    with pytest.raises(LinkDown, match="cannot connect"):
        c.read(0, 1)
    with pytest.raises(LinkDown, match="retry in"):
        c.read(0, 1)  # inside the backoff window: no connection attempt at all
    delays = []
    for _ in range(4):
        time.sleep(c._next_attempt - time.monotonic() + 0.01)
        with pytest.raises(LinkDown):
            c.read(0, 1)
        delays.append(c._backoff)
    assert delays[-1] == 0.2 and not c.up
    mem2 = PlcMemory(port=port)
    try:
        time.sleep(max(0.0, c._next_attempt - time.monotonic()) + 0.01)
        assert c.read(0, 2) == [0, 0] and c.up
    finally:
        c.close()
        mem2.stop()


def test_client_survives_transaction_id_wrap():
    """pymodbus' client wraps its transaction id at 65000; 66,000 requests through our client."""
    mem = PlcMemory()
    c = PlcClient("127.0.0.1", mem.port, timeout_s=0.5, retries=1)
    try:
        mem.bank.set_holding_registers(0, [4242])
        for i in range(66_000):
            if c.read(0, 1) != [4242]:
                raise AssertionError(f"request {i}: wrong answer")
        assert c.transactions == 66_000 and c.failures == 0
    finally:
        c.close()
        mem.stop()

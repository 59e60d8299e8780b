"""The PLC link over OPC UA: a station built as `pcb-inspector run --plc opcua:127.0.0.1:PORT` builds it
(replay camera, the shipped INT8 model, SQLite records) serves the handshake of docs/plc.md as variables
under `PcbInspector`, and an independent asyncua client plays the PLC through the full handshake, with
security None and with Basic256Sha256 (sign and encrypt, the server's self-signed certificate).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from pathlib import Path

import pytest
from asyncua import Client, ua
from opcua_plc import STATUS, WRITABLE, OpcUaPlc, client_certificate
from plc_testkit import ListSink, wait_for

from inspector.commands.common import station_config
from inspector.config import ReplayCamera
from inspector.domain import Verdict
from inspector.station import build_station

NAMESPACE = "urn:pcb-inspector:test-line"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_station_file(tmp: Path, boards: Path, security: str, extra: str = "") -> Path:
    f = tmp / "station.toml"
    f.write_text(
        f"""
[camera]
type = "replay"
path = "{boards}"
trigger = "software"

[storage]
database_url = "sqlite:///{tmp / "inspections.db"}"
archive_dir = "{tmp / "archive"}"
spool_dir = "{tmp / "spool"}"

[plc]
protocol = "opcua"
namespace = "{NAMESPACE}"
security = "{security}"
certificate = "{tmp / "pki" / "server-cert.der"}"
private_key = "{tmp / "pki" / "server-key.pem"}"
heartbeat_timeout_s = 2.0
{extra}
"""
    )
    return f


@pytest.fixture
def opcua_station(tmp_path, demo_boards):
    made = []

    def make(security: str, extra: str = ""):
        port = free_port()
        f = write_station_file(tmp_path, demo_boards, security, extra)
        args = argparse.Namespace(config=str(f), plc=f"opcua:127.0.0.1:{port}", camera=None, model=None, db=None)
        cfg = station_config(args)
        assert cfg.plc.protocol == "opcua" and cfg.plc.port == port and cfg.plc.security == security
        assert isinstance(cfg.camera, ReplayCamera)
        sink = ListSink()
        station = build_station(cfg, sinks=[sink])
        made.append(station)
        station.start()
        return station, sink, port

    yield make
    for st in made:
        st.stop()


def run_boards(url: str, boards: int, **kw) -> list:
    async def main():
        async with OpcUaPlc(url, NAMESPACE, **kw) as plc:
            assert set(WRITABLE) <= set(plc.nodes) and set(STATUS) <= set(plc.nodes), sorted(plc.nodes)
            await plc.write("TriggerEnable", True)
            await plc.wait("Ready", True, timeout=60)
            return [await plc.board(1000 + i, f"SN-{i:04d}") for i in range(boards)]

    return asyncio.run(main())


def check_results(station, sink: ListSink, results: list) -> None:
    by_part = wait_for(lambda: len(sink.by_part()) >= len(results) and sink.by_part(), 10)
    insp = [r.insp_id for r in results]
    assert insp == list(range(insp[0], insp[0] + len(results))), insp  # one INSP_ID per board, no gap
    for r in results:
        seen = by_part[r.part_seq]
        assert r.part_seq_echo == r.part_seq
        assert r.serial == f"SN-{r.part_seq - 1000:04d}"
        assert r.passed == (seen.verdict == Verdict.PASS) and r.rejected == (not r.passed)
        assert r.defect_count == len(seen.detections)
        assert (r.result_code == 0) == r.passed
    assert station.plc.hs.counters.violations == 0, list(station.plc.hs.counters.violation_log)
    assert station.plc.transport.writes > 0 and station.plc.transport.refused == 0
    # Published only once durable: every board the PLC saw is in the database.
    recorder = station.recorder
    assert recorder is not None and all(recorder.is_durable(by_part[r.part_seq].uid) for r in results)


def test_full_handshake_over_opcua_without_security(opcua_station):
    station, sink, port = opcua_station("None")
    results = run_boards(f"opc.tcp://127.0.0.1:{port}/pcb-inspector/", 4)
    check_results(station, sink, results)
    assert {r.passed for r in results} == {True, False}, "the demo boards hold good and defective ones"


def test_full_handshake_over_opcua_basic256sha256(opcua_station, tmp_path):
    station, sink, port = opcua_station("Basic256Sha256")
    server_cert = tmp_path / "pki" / "server-cert.der"
    key = tmp_path / "pki" / "server-key.pem"
    assert server_cert.is_file() and key.stat().st_mode & 0o777 == 0o600  # made on first start
    certs = asyncio.run(client_certificate(tmp_path))
    results = run_boards(f"opc.tcp://127.0.0.1:{port}/pcb-inspector/", 3, certs=certs, server_cert=server_cert)
    check_results(station, sink, results)


def test_basic256sha256_server_offers_no_unsecured_endpoint_and_refuses_a_forced_one(opcua_station):
    """Only sign-and-encrypt is offered; a client that opens an unsecured channel anyway (as it must for
    GetEndpoints) and creates a session on it is refused every read and write."""
    station, _sink, port = opcua_station("Basic256Sha256")
    url = f"opc.tcp://127.0.0.1:{port}/pcb-inspector/"

    async def main():
        c = Client(url, timeout=3)
        endpoints = await c.connect_and_get_server_endpoints()
        await c.connect_socket()
        try:
            await c.send_hello()
            await c.open_secure_channel()  # security None: allowed, for discovery
            params = ua.CreateSessionParameters()
            params.ClientNonce = bytes(32)
            params.ClientDescription = ua.ApplicationDescription()
            params.ClientDescription.ApplicationUri = "urn:not-the-plc"
            params.ClientDescription.ApplicationType = ua.ApplicationType.Client
            params.EndpointUrl, params.SessionName, params.RequestedSessionTimeout = url, "forced", 60000
            await c.uaclient.create_session(params)
            act = ua.ActivateSessionParameters()
            act.UserIdentityToken = ua.AnonymousIdentityToken()
            act.UserIdentityToken.PolicyId = "anonymous"
            await c.uaclient.activate_session(act)
            refused = []
            for op in (
                lambda: c.get_node("ns=2;s=PcbInspector.Trigger").write_value(True),
                lambda: c.get_node("ns=2;s=PcbInspector.ResultsValid").read_value(),
            ):
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await op()
                refused.append(True)
            return endpoints, refused
        finally:
            c.disconnect_socket()

    endpoints, refused = asyncio.run(main())
    assert {(e.SecurityPolicyUri.rsplit("#", 1)[1], e.SecurityMode) for e in endpoints} == {
        ("Basic256Sha256", ua.MessageSecurityMode.SignAndEncrypt)
    }
    assert refused == [True, True] and station.plc.transport.writes == 0


def test_station_writes_are_refused_and_status_is_read_only(opcua_station):
    station, _sink, port = opcua_station("None")

    async def main():
        async with OpcUaPlc(f"opc.tcp://127.0.0.1:{port}/pcb-inspector/", NAMESPACE) as plc:
            with pytest.raises(Exception, match="BadUserAccessDenied"):
                await plc.nodes["ResultsValid"].write_value(True)
            with pytest.raises(Exception, match="BadOutOfRange"):  # the PLC hears it; nothing is stored
                await plc.write("SerialIn", "X" * 41)  # one character too many for SERIAL (40)
            await plc.write("TriggerEnable", True)
            return await plc.wait("Ready", True, timeout=60)

    assert asyncio.run(main()) is True
    assert station.plc.transport.refused == 1
    assert station.plc.hs.counters.violations == 0


def test_one_master_at_a_time_over_opcua(opcua_station):
    """A second session writing PLC-writable variables while the master's heartbeat runs is refused
    (BadUserAccessDenied, nothing taken) and raises ERROR 51; once the master is gone and silent for
    heartbeat_timeout_s, the next session takes over and can clear the error."""
    station, _sink, port = opcua_station("None")
    url = f"opc.tcp://127.0.0.1:{port}/pcb-inspector/"

    async def main():
        async with OpcUaPlc(url, NAMESPACE) as plc:
            await plc.write("TriggerEnable", True)
            await plc.wait("Ready", True, timeout=60)
            async with OpcUaPlc(url, NAMESPACE) as other:  # its heartbeat task is refused too
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await other.write("Trigger", True)
                await plc.wait("ErrorCode", 51, timeout=5)
                assert await plc.read("Error") is True and await plc.read("Ready") is False
                assert await plc.read("InspId") == 0  # the refused trigger started nothing
        async with OpcUaPlc(url, NAMESPACE) as plc:  # the PLC reconnects: a new session
            await asyncio.sleep(2.5)  # the old master's silence passes heartbeat_timeout_s (2 s)
            await plc.write("ClearError", True)
            await plc.write("ClearError", False)
            await plc.write("TriggerEnable", True)
            await plc.wait("Ready", True, timeout=10)
            return await plc.board(7, "SN-7")

    result = asyncio.run(main())
    assert result.part_seq_echo == 7 and result.insp_id == 1
    transport = station.plc.transport
    assert transport.master_conflicts >= 1 and station.plc.hs.counters.second_master_writes >= 1


def test_trusted_clients_only_a_certificate_moved_into_the_trust_folder_gets_a_channel(opcua_station, tmp_path):
    trusted = tmp_path / "pki" / "trusted"
    station, _sink, port = opcua_station("Basic256Sha256", f'trusted_clients = "{trusted}"')
    url = f"opc.tcp://127.0.0.1:{port}/pcb-inspector/"
    server_cert = tmp_path / "pki" / "server-cert.der"
    (tmp_path / "plc").mkdir()
    certs = asyncio.run(client_certificate(tmp_path / "plc"))

    async def one_board():
        async with OpcUaPlc(url, NAMESPACE, certs=certs, server_cert=server_cert) as plc:
            await plc.write("TriggerEnable", True)
            await plc.wait("Ready", True, timeout=60)
            return await plc.board(42, "SN-42")

    with pytest.raises(Exception):  # noqa: B017 (asyncua reports the refused channel in several ways)
        asyncio.run(one_board())
    rejected = list((tmp_path / "pki" / "rejected").iterdir())
    assert len(rejected) == 1 and rejected[0].read_bytes() == (tmp_path / "plc" / "plc-cert.der").read_bytes()
    assert station.plc.transport.writes == 0
    rejected[0].rename(trusted / rejected[0].name)  # the engineer checked it: trusted from the next connect
    result = asyncio.run(one_board())
    assert result.part_seq_echo == 42 and result.serial == "SN-42" and result.insp_id == 1

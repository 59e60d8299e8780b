"""A line PLC played by an independent asyncua *client*: it knows only the endpoint, the namespace URI
and the browse names of docs/plc.md (it never imports plc/), as a PLC programmer's OPC UA client would.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

CLIENT_URI = "urn:pcb-inspector:test-plc"
WRITABLE = (
    "TriggerEnable",
    "Trigger",
    "ResultsAck",
    "ClearError",
    "ExecuteCommand",
    "SetOffline",
    "PlcHeartbeat",
    "CommandRecipe",
    "PartSeq",
    "SerialIn",
)
STATUS = (
    "Ready",
    "TriggerAck",
    "Busy",
    "ResultsValid",
    "Pass",
    "Reject",
    "Error",
    "ErrorCode",
    "InspId",
    "AcqId",
    "ResultCode",
    "DefectCount",
    "MaxScore",
    "PartSeqEcho",
    "Serial",
    "ClassCounts",
    "CurrentRecipe",
    "CmdDone",
    "CmdFailed",
    "HeartbeatCount",
    "MapVersion",
)


async def client_certificate(folder: Path) -> tuple[Path, Path]:
    """The PLC's own application certificate (made by asyncua's helper, not by the station's code)."""
    cert, key = folder / "plc-cert.der", folder / "plc-key.pem"
    await setup_self_signed_certificate(
        key, cert, CLIENT_URI, "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "test PLC"}
    )
    return cert, key


@dataclass
class BoardResult:
    part_seq: int
    passed: bool
    rejected: bool
    insp_id: int
    result_code: int
    defect_count: int
    part_seq_echo: int
    serial: str
    round_trip_ms: float
    """Trigger write -> ResultsValid seen by this client."""


class OpcUaPlc:
    """Connect, find PcbInspector's variables by browse name, toggle the heartbeat, run boards."""

    def __init__(self, url: str, namespace: str, *, certs: tuple[Path, Path] | None = None, server_cert=None):
        self.url = url
        self.namespace = namespace
        self.client = Client(url, timeout=5)
        self.client.application_uri = CLIENT_URI
        self.certs = certs
        self.server_cert = server_cert
        self.nodes: dict[str, object] = {}
        self._hb_task: asyncio.Task | None = None
        self.poll_s = 0.001
        self.refused_beats = 0

    async def __aenter__(self) -> OpcUaPlc:
        if self.certs is not None:
            await self.client.set_security(
                SecurityPolicyBasic256Sha256,
                str(self.certs[0]),
                str(self.certs[1]),
                server_certificate=str(self.server_cert) if self.server_cert else None,
                mode=ua.MessageSecurityMode.SignAndEncrypt,
            )
        await self.client.connect()
        idx = await self.client.get_namespace_index(self.namespace)
        obj = await self.client.nodes.objects.get_child(f"{idx}:PcbInspector")
        for child in await obj.get_children():
            name = (await child.read_browse_name()).Name
            self.nodes[name] = child
        self._hb_task = asyncio.create_task(self._heartbeat())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._hb_task is not None:
            self._hb_task.cancel()
            try:
                await self._hb_task
            except (asyncio.CancelledError, Exception):
                pass
        await self.client.disconnect()

    async def _heartbeat(self) -> None:
        beat = False
        while True:
            beat = not beat
            try:
                await self.write("PlcHeartbeat", beat)
            except ua.uaerrors.BadUserAccessDenied:
                self.refused_beats += 1  # another session is the master: keep trying, as a PLC would
            await asyncio.sleep(0.3)

    async def write(self, name: str, value) -> None:
        vtype = {"CommandRecipe": ua.VariantType.UInt16, "PartSeq": ua.VariantType.UInt32}.get(name)
        if vtype is None:
            vtype = ua.VariantType.String if name == "SerialIn" else ua.VariantType.Boolean
        await self.nodes[name].write_value(ua.DataValue(ua.Variant(value, vtype)))

    async def read(self, name: str):
        return await self.nodes[name].read_value()

    async def wait(self, name: str, value, timeout: float = 10.0):
        end = time.monotonic() + timeout
        while True:
            got = await self.read(name)
            if got == value:
                return got
            if time.monotonic() > end:
                raise TimeoutError(f"{name} still {got!r} after {timeout} s (waiting for {value!r})")
            await asyncio.sleep(self.poll_s)

    async def board(self, part_seq: int, serial: str = "") -> BoardResult:
        """One board by the handshake of docs/plc.md: Trigger -> TriggerAck -> ResultsValid -> ResultsAck."""
        await self.wait("Ready", True)
        await self.write("PartSeq", part_seq)
        await self.write("SerialIn", serial)
        t0 = time.perf_counter()
        await self.write("Trigger", True)
        await self.wait("TriggerAck", True)
        await self.write("Trigger", False)
        await self.wait("ResultsValid", True)
        rt = (time.perf_counter() - t0) * 1000
        values = {n: await self.read(n) for n in ("Pass", "Reject", "InspId", "ResultCode", "DefectCount")}
        echo, shown = await self.read("PartSeqEcho"), await self.read("Serial")
        await self.write("ResultsAck", True)
        await self.wait("ResultsValid", False)
        await self.write("ResultsAck", False)
        return BoardResult(
            part_seq,
            values["Pass"],
            values["Reject"],
            values["InspId"],
            values["ResultCode"],
            values["DefectCount"],
            echo,
            shown,
            rt,
        )

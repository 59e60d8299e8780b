"""The line PLC simulator over OPC UA: the PLC program of plc/simulator.py as an asyncua client.

Why a client of its own (own connection, own session, own thread and asyncio loop): it must meet the
station exactly as a PLC does, through the endpoint, the security policy and the one-master rule of
plc/opcua/server.py, never through the station's objects. It reads the status variables in one Read
request and folds them into the status image; it writes a control image as one Write request of the
variables that changed (a Trigger with its PartSeq and SerialIn arrives as one control image, as
with Modbus function 16), so the PLC program in plc/simulator.py runs unchanged.

Why a loop thread: the PLC program is synchronous (poll, sleep, poll), while asyncua's client needs a
running loop between requests for its keep-alive and secure-channel renewal.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.crypto.uacrypto import CertProperties

from .. import registers as R
from ..simulator import LinkLost, Refused, SimulatedLinePlc
from .server import CONTROL_SIGNALS, OBJECT_NAME, STATUS_SIGNALS, Signal

log = logging.getLogger(__name__)

SIMULATOR_URI = "urn:pcb-inspector:line-plc-simulator"
"""The simulator's application URI (in its certificate's subject alternative names, as OPC UA asks)."""

#: Status codes that mean "the station refused this", not "the link is gone".
REFUSALS = {
    "BadUserAccessDenied",
    "BadNotWritable",
    "BadTypeMismatch",
    "BadOutOfRange",
    "BadNodeIdUnknown",
    "BadAttributeIdInvalid",
    "BadWriteNotSupported",
    "BadCertificateUntrusted",
    "BadCertificateInvalid",
    "BadSecurityChecksFailed",
    "BadIdentityTokenRejected",
}


class _LoopThread:
    """One asyncio loop in its own thread; `call` runs a coroutine there and waits for its answer."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise LinkLost(f"no answer within {timeout:.1f} s") from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5.0)


def _failure(exc: BaseException) -> Exception:
    """An asyncua or socket failure as Refused (the station said no) or LinkLost (reconnect)."""
    if isinstance(exc, (LinkLost, Refused)):
        return exc
    if isinstance(exc, ua.UaStatusCodeError):
        name = ua.StatusCode(exc.code).name
        return Refused(name) if name in REFUSALS else LinkLost(name)
    return LinkLost(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


class OpcUaLinePlcSimulator(SimulatedLinePlc):
    """An OPC UA client that drives the station's handshake (`--plc opcua:HOST:PORT+sim`, the demo)."""

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        security: str = "Basic256Sha256",
        certificate: tuple[bytes, bytes] | None = None,
        server_certificate: Path | None = None,
        request_timeout_s: float = 4.0,
        connect_timeout_s: float = 20.0,
        **kw: Any,
    ):
        """`url`: the station's endpoint; `namespace`: plc.namespace; `security`: plc.security.

        `certificate`: this client's certificate (DER) and key (PEM); None with Basic256Sha256 makes one
        in memory for this run (`.certificate` holds it: a station with plc.trusted_clients refuses it
        unless told to trust it).
        `server_certificate`: the station's certificate to pin (None: the one its endpoint offers).
        `kw`: the PLC program's settings (rate, boards, poll_s, timeouts, ...; see SimulatedLinePlc).
        """
        super().__init__(**kw)
        if security not in {"Basic256Sha256", "None"}:
            raise ValueError(f"OPC UA simulator: security {security!r} is not Basic256Sha256 or None")
        self.url = url
        self.namespace = namespace
        self.security = security
        if security != "None" and certificate is None:
            from .certs import memory_pair

            certificate = memory_pair(SIMULATOR_URI, "127.0.0.1", "PCB Inspector line PLC simulator")
        self.certificate = certificate
        self.server_certificate = server_certificate
        self.request_timeout_s = request_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._loop: _LoopThread | None = None
        self._client: Client | None = None
        self._status_ids: list[ua.NodeId] = []
        self._control_ids: dict[str, ua.NodeId] = {}
        self._image = [0] * R.CONTROL_SIZE
        self._written: dict[str, Any] = {}
        """Value of each control variable as last accepted by the station on this connection."""

    def describe(self) -> str:
        return self.url

    # ------------------------------------------------------------------ connection
    def _open(self) -> None:
        if self._loop is None:
            self._loop = _LoopThread("plc-sim-opcua")
        self._run(self._connect(), self.connect_timeout_s)

    def _close(self) -> None:
        loop, client = self._loop, self._client
        self._client, self._loop = None, None
        if loop is None:
            return
        if client is not None:
            try:
                loop.call(client.disconnect(), self.request_timeout_s)
            except Exception as exc:  # the station may be gone already: nothing left to close politely
                log.debug("OPC UA simulator: disconnect from %s: %s", self.url, exc)
        loop.stop()

    async def _connect(self) -> None:
        client = Client(self.url, timeout=self.request_timeout_s)
        client.application_uri = SIMULATOR_URI
        client.name = "PCB Inspector line PLC simulator"
        client.session_timeout = 60_000  # ms; the station's server grants at most 10 min (asyncua asks 1 h)
        if self.security != "None":
            assert self.certificate is not None
            cert, key = self.certificate
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                CertProperties(cert, extension="der"),
                CertProperties(key, extension="pem"),
                server_certificate=CertProperties(self.server_certificate) if self.server_certificate else None,
                mode=ua.MessageSecurityMode.SignAndEncrypt,
            )
        await client.connect()
        try:
            idx = await client.get_namespace_index(self.namespace)
        except ValueError:
            await client.disconnect()
            raise Refused(f"namespace {self.namespace!r} is not on the server (plc.namespace)") from None
        # The node ids docs/plc.md gives a PLC programmer: ns=<index of the namespace>;s=PcbInspector.<name>.
        self._status_ids = [ua.NodeId(f"{OBJECT_NAME}.{s.name}", idx) for s in STATUS_SIGNALS]
        self._control_ids = {s.name: ua.NodeId(f"{OBJECT_NAME}.{s.name}", idx) for s in CONTROL_SIGNALS}
        self._written = {}
        self._client = client

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        if self._loop is None:
            coro.close()
            raise LinkLost("not connected")
        try:
            return self._loop.call(coro, timeout)
        except Exception as exc:
            raise _failure(exc) from exc

    # ------------------------------------------------------------------ images <-> variables
    def _send(self, address: int, values: list[int]) -> None:
        self._image[address : address + len(values)] = values
        end = address + len(values)
        changed: list[tuple[Signal, Any]] = []
        for sig in CONTROL_SIGNALS:
            if sig.address + sig.count <= address or sig.address >= end:
                continue
            value = sig.read(self._image, R.CONTROL_BASE)
            if sig.name not in self._written or self._written[sig.name] != value:
                changed.append((sig, value))
        if changed:
            self._run(self._write_values(changed), self.request_timeout_s + 1.0)
            self._written.update((sig.name, value) for sig, value in changed)

    async def _write_values(self, changed: list[tuple[Signal, Any]]) -> None:
        client = self._client
        if client is None:
            raise LinkLost("not connected")
        ids = [self._control_ids[sig.name] for sig, _ in changed]
        values = [ua.DataValue(ua.Variant(value, sig.variant)) for sig, value in changed]
        results = await client.uaclient.write_attributes(ids, values, ua.AttributeIds.Value)
        bad = [
            f"{sig.name}: {code.name}" for (sig, _), code in zip(changed, results, strict=True) if not code.is_good()
        ]
        if bad:
            raise Refused(", ".join(bad))

    def _fetch_status(self) -> list[int]:
        return self._run(self._read_status_image(), self.request_timeout_s + 1.0)

    async def _read_status_image(self) -> list[int]:
        client = self._client
        if client is None:
            raise LinkLost("not connected")
        values = await client.uaclient.read_attributes(self._status_ids, ua.AttributeIds.Value)
        image = [0] * R.STATUS_SIZE
        for sig, dv in zip(STATUS_SIGNALS, values, strict=True):
            if dv.StatusCode is not None and not dv.StatusCode.is_good():
                raise Refused(f"{sig.name}: {dv.StatusCode.name}")
            try:
                sig.write(image, R.STATUS_BASE, dv.Value.Value if dv.Value is not None else None)
            except (ValueError, TypeError) as exc:
                raise Refused(f"{sig.name}: {exc}") from None
        return image

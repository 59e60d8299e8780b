"""OPC UA server transport: the PLC map of docs/plc.md as variables under the object `PcbInspector`.

Why a node per signal and not the register words: an OPC UA client (PLC, SCADA) browses typed,
named variables (`ResultsValid` is a Boolean, `PartSeq` a UInt32, `SerialIn` a String), so each bit
and field of the control and status blocks is one variable named after its register (CamelCase).
The handshake still works on the register images: this transport folds PLC writes into a control
image and unfolds the status image into variables, so OPC UA and Modbus follow the same rules.

Why writes are captured in the server's PostWrite callback: each Write request the PLC sends is one
control image, in order, so a Trigger set and cleared between two link turns is still two edges
(as the Modbus server's action hook does). A write that changes nothing still wakes the link.

Why one master at a time: two PLCs (or a PLC and a SCADA writing what it should only read) writing
Trigger, PartSeq and SerialIn interleave their boards. The first session that writes a PLC-writable
variable is the master; another session's write is refused (BadUserAccessDenied, nothing of it taken)
and raises alarm 51 while the master wrote within plc.heartbeat_timeout_s (its heartbeat keeps it);
a master silent that long (a PLC that reconnected) hands over to the next writer.

Why the status variables are written data first, status bits last: a PLC that sees ResultsValid
must read the Pass/Reject, InspId and PartSeqEcho of the same board. All writes of one publish
happen in one turn of this loop, with no client request served in between.
"""

from __future__ import annotations

import logging
import socket
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.crypto.permission_rules import PermissionRuleset
from asyncua.crypto.security_policies import SecurityPolicyFactory, SecurityPolicyNone
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .. import registers as R
from ..transport import Inbound, Transport
from . import OpcUaSettings
from .certs import ensure_certificate

log = logging.getLogger(__name__)

OBJECT_NAME = "PcbInspector"


@dataclass(frozen=True, slots=True)
class Signal:
    """One variable: its browse name, where it lives in the register image and how it is typed."""

    name: str
    address: int
    """Register address (control block 0.., status block 100..)."""
    kind: str
    """'bit' (mask in `mask`), 'u16', 'u32', 'ascii' (`count` registers), 'u16[]' (`count` registers)."""
    mask: int = 0
    count: int = 1
    doc: str = ""

    @property
    def variant(self) -> ua.VariantType:
        return {
            "bit": ua.VariantType.Boolean,
            "u16": ua.VariantType.UInt16,
            "u32": ua.VariantType.UInt32,
            "ascii": ua.VariantType.String,
            "u16[]": ua.VariantType.UInt16,
        }[self.kind]

    def initial(self) -> Any:
        return {"bit": False, "u16": 0, "u32": 0, "ascii": "", "u16[]": [0] * self.count}[self.kind]

    def read(self, image: list[int], base: int) -> Any:
        """This signal's value out of a register image starting at `base`."""
        i = self.address - base
        if self.kind == "bit":
            return bool(image[i] & self.mask)
        if self.kind == "u16":
            return image[i]
        if self.kind == "u32":
            return R.decode_u32(image[i : i + 2])
        if self.kind == "ascii":
            return R.decode_ascii(image[i : i + self.count])
        return list(image[i : i + self.count])

    def write(self, image: list[int], base: int, value: Any) -> None:
        """Put `value` (as an OPC UA client wrote it, or the simulator read it) into a register image;
        ValueError if it cannot fit."""
        i = self.address - base
        if self.kind == "bit":
            image[i] = (image[i] | self.mask) if value else (image[i] & ~self.mask)
        elif self.kind == "u16":
            image[i] = R.check_u16(int(value), self.name)
        elif self.kind == "u32":
            image[i : i + 2] = R.encode_u32(int(value), self.name)
        elif self.kind == "ascii":
            image[i : i + self.count] = R.encode_ascii(str(value or ""), self.count, self.name)
        else:
            values = list(value or [])
            if len(values) != self.count:
                raise ValueError(f"{self.name}: {len(values)} values, expected {self.count}")
            image[i : i + self.count] = [R.check_u16(int(v), self.name) for v in values]


def camel(register_name: str) -> str:
    """RESULTS_VALID -> ResultsValid: browse names follow the register names of docs/plc.md."""
    return "".join(part.capitalize() for part in register_name.split("_"))


def _bits(names: dict[str, int], address: int) -> list[Signal]:
    return [Signal(camel(n), address, "bit", mask=m) for n, m in names.items()]


#: PLC -> station (writable by clients).
CONTROL_SIGNALS: tuple[Signal, ...] = (
    *_bits(R.CONTROL_BITS, R.CONTROL),
    Signal("CommandRecipe", R.COMMAND_RECIPE, "u16"),
    Signal("PartSeq", R.PART_SEQ, "u32"),
    Signal("SerialIn", R.SERIAL, "ascii", count=R.SERIAL_REGS),
)

#: Station -> PLC (read-only for clients). Data first, bits last: the publish order (module docstring).
STATUS_SIGNALS: tuple[Signal, ...] = (
    Signal("CurrentRecipe", R.CURRENT_RECIPE, "u16"),
    Signal("ErrorCode", R.ERROR_CODE, "u16"),
    Signal("AcqId", R.ACQ_ID, "u16"),
    Signal("InspId", R.INSP_ID, "u16"),
    Signal("ResultCode", R.RESULT_CODE, "u16"),
    Signal("DefectCount", R.DEFECT_COUNT, "u16"),
    Signal("MaxScore", R.MAX_SCORE, "u16"),
    Signal("CycleMs", R.CYCLE_MS, "u16"),
    Signal("PartSeqEcho", R.PART_SEQ_ECHO, "u32"),
    Signal("HeartbeatCount", R.HEARTBEAT_COUNT, "u16"),
    Signal("ClassCounts", R.CLASS_COUNTS, "u16[]", count=R.CLASS_COUNT_REGS),
    Signal("ResultQueue", R.RESULT_QUEUE, "u16"),
    Signal("MissedTriggerCount", R.MISSED_TRIGGER_COUNT, "u16"),
    Signal("OverrunCount", R.OVERRUN_COUNT, "u16"),
    Signal("MapVersion", R.MAP_VERSION_REG, "u16"),
    Signal("Serial", R.SERIAL_ECHO, "ascii", count=R.SERIAL_REGS),
    *_bits(R.STATUS_BITS, R.STATUS),
)


class _NothingWithoutSecurity(PermissionRuleset):
    def check_validity(self, user: object, action_type: object, body: object) -> bool:
        return False


def _discovery_only_without_security(server: Server) -> None:
    """A channel without security may discover the endpoints, nothing else.

    Why: clients open an unsecured channel to call GetEndpoints, and asyncua (2.1) then lets that same
    channel create and activate a session and read and write every variable, although no None endpoint
    is offered (a test forces it). Channels that match no configured policy fall back to None with no
    rules; a None policy added after start (so it is not advertised) carries a ruleset that refuses
    every session request (BadUserAccessDenied), while GetEndpoints/FindServers need no session.
    """
    server._policies.append(  # the list the binary server hands to every new connection
        SecurityPolicyFactory(
            SecurityPolicyNone, ua.MessageSecurityMode.None_, permission_ruleset=_NothingWithoutSecurity()
        )
    )


class ClientTrust:
    """The client certificates allowed a secure channel: the files in one folder, read at each new channel
    (a certificate moved in takes effect at the PLC's next connect, no restart)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.rejected_folder = folder.parent / "rejected"
        folder.mkdir(parents=True, exist_ok=True)
        self._for_this_run: set[bytes] = set()

    def allow_for_this_run(self, der: bytes, who: str) -> None:
        """Trust one certificate until the station stops, without a file in the folder (the built-in
        simulator's: a file would keep trusting its key after the simulator is turned off)."""
        cert = x509.load_der_x509_certificate(der)
        self._for_this_run.add(cert.fingerprint(hashes.SHA256()))
        log.info("OPC UA: %s's certificate is trusted for this run only (not written to %s)", who, self.folder)

    def trusted(self) -> set[bytes]:
        out: set[bytes] = set()
        for f in sorted(self.folder.iterdir()):
            if not f.is_file():
                continue
            raw = f.read_bytes()
            try:
                cert = (
                    x509.load_pem_x509_certificate(raw) if b"-----BEGIN" in raw else x509.load_der_x509_certificate(raw)
                )
            except ValueError:
                log.warning("OPC UA: %s in plc.trusted_clients is not a certificate (DER or PEM); ignored", f)
                continue
            out.add(cert.fingerprint(hashes.SHA256()))
        return out

    def check(self, der: bytes | None) -> None:
        """Raise BadCertificateUntrusted (and keep the certificate under rejected/) unless it is trusted."""
        if not der:
            raise ua.uaerrors.BadCertificateInvalid
        cert = x509.load_der_x509_certificate(der)
        thumb = cert.fingerprint(hashes.SHA256())
        if thumb in self._for_this_run or thumb in self.trusted():
            return
        self.rejected_folder.mkdir(parents=True, exist_ok=True)
        kept = self.rejected_folder / f"{thumb.hex()[:16]}.der"
        if not kept.exists():
            kept.write_bytes(der)
            log.warning(
                "OPC UA: client certificate %s refused (not in %s); saved as %s: move it into the trusted folder "
                "to allow this client",
                cert.subject.rfc4514_string(),
                self.folder,
                kept,
            )
        raise ua.uaerrors.BadCertificateUntrusted


class _TrustedPeersOnly(SecurityPolicyFactory):
    """A secured policy that opens a channel only for a trusted client certificate.

    Why at the channel and not asyncua's certificate_validator: that hook checks the certificate a
    client names in CreateSession, and a client that names none is not checked at all.
    """

    def __init__(self, base: SecurityPolicyFactory, trust: ClientTrust):
        super().__init__(
            base.cls, base.mode, base.certificate, base.private_key, base.permission_ruleset, base.certificate_chain
        )
        self.trust = trust

    def create(self, peer_certificate):
        self.trust.check(peer_certificate)
        return super().create(peer_certificate)


class OpcUaServerTransport(Transport):
    """asyncua server in the link's loop; one namespace, one object, one variable per signal."""

    def __init__(self, cfg: OpcUaSettings, port: int):
        self.cfg = cfg
        self.port = port
        self.server: Server | None = None
        self.namespace_index = 0
        self._nodes: dict[str, ua.NodeId] = {}
        self._by_node: dict[ua.NodeId, Signal] = {}
        self._control = [0] * R.CONTROL_SIZE
        self._writes: deque[list[int]] = deque(maxlen=256)
        self._shown: dict[str, Any] = {}
        self._wake: Callable[[], None] = lambda: None
        self.writes = 0
        """Control writes taken (each Write request touching our variables)."""
        self.refused = 0
        """Values that did not fit their register (e.g. a SerialIn of 41 characters); logged, not taken."""
        self.master_conflicts = 0
        """Writes refused because another session is the active master."""
        self._master: weakref.ref | None = None
        self._master_at = -float("inf")
        self._conflicts: deque[str] = deque(maxlen=32)
        self._conflict_logged = -float("inf")
        self._conflicts_unlogged = 0
        self.log_interval_s = 10.0
        self.trust: ClientTrust | None = None
        """The client certificates allowed a channel (plc.trusted_clients); None: any certificate."""

    @property
    def app_uri(self) -> str:
        return f"{self.cfg.namespace}:server"

    async def open(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        cfg = self.cfg
        if self.port == 0:  # tests, benchmark: the endpoint URL must name the real port, so pick it first
            with socket.socket() as s:
                s.bind((cfg.host, 0))
                self.port = s.getsockname()[1]
        server = Server()
        await server.init()
        server.set_endpoint(cfg.endpoint(self.port))
        server.set_server_name("PCB Inspector")
        await server.set_application_uri(self.app_uri)
        if cfg.security == "Basic256Sha256":
            cert, key = ensure_certificate(cfg.certificate, cfg.private_key, self.app_uri, cfg.host)
            await server.load_certificate(str(cert))
            await server.load_private_key(str(key))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        else:
            log.warning(
                "OPC UA server WITHOUT security (plc.security = 'None'): anyone reaching %s can trigger boards "
                "and read results",
                cfg.endpoint(self.port),
            )
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(cfg.namespace)
        self.namespace_index = idx
        obj = await server.nodes.objects.add_object(ua.NodeId(OBJECT_NAME, idx), ua.QualifiedName(OBJECT_NAME, idx))
        for sig, writable in [(s, True) for s in CONTROL_SIGNALS] + [(s, False) for s in STATUS_SIGNALS]:
            node_id = ua.NodeId(f"{OBJECT_NAME}.{sig.name}", idx)
            var = await obj.add_variable(
                node_id, ua.QualifiedName(sig.name, idx), ua.Variant(sig.initial(), sig.variant), sig.variant
            )
            if sig.kind == "u16[]":
                await var.write_value_rank(1)
                await var.write_array_dimensions([sig.count])
            if writable:
                await var.set_writable()
                self._by_node[node_id] = sig
            self._nodes[sig.name] = node_id
        server.subscribe_server_callback(CallbackType.PreWrite, self._claim_master)
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_write)
        await server.start()
        if cfg.security != "None":
            _discovery_only_without_security(server)
            if cfg.trusted_clients is not None:
                trust = self.trust = ClientTrust(Path(cfg.trusted_clients))
                server._policies[:] = [
                    _TrustedPeersOnly(f, trust) if f.cls is not SecurityPolicyNone else f for f in server._policies
                ]
            else:
                log.warning("OPC UA: any client certificate is accepted (plc.trusted_clients not set)")
        self.port = server.bserver.port if server.bserver is not None else self.port
        self.server = server
        log.info(
            "OPC UA server on %s (%s, namespace %r, object %s)",
            cfg.endpoint(self.port),
            cfg.security,
            cfg.namespace,
            OBJECT_NAME,
        )

    async def close(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    @property
    def master(self) -> object | None:
        """The active master session's user object (asyncua keeps one per session), or None."""
        m = self._master() if self._master is not None else None
        if m is None or time.monotonic() - self._master_at > self.cfg.heartbeat_timeout_s:
            return None
        return m

    def _claim_master(self, event: ServerItemCallback, _dispatcher: object) -> None:
        """PreWrite: the writing session becomes or stays the master, or its whole write is refused."""
        if not event.is_external:
            return
        names = [
            self._by_node[wv.NodeId].name for wv in event.request_params.NodesToWrite if wv.NodeId in self._by_node
        ]
        if not names:
            return
        user, master, now = event.user, self.master, time.monotonic()
        if master is None or master is user:
            previous = self._master() if self._master is not None else None
            if previous is not None and previous is not user:
                log.info("OPC UA: a new session is the PLC master (the previous one was silent)")
            self._master, self._master_at = weakref.ref(user), now
            return
        self.master_conflicts += 1
        text = f"a second OPC UA session wrote {', '.join(names)}"
        self._conflicts.append(text)
        if now - self._conflict_logged >= self.log_interval_s:
            more = f" ({self._conflicts_unlogged} more since the last report)" if self._conflicts_unlogged else ""
            log.warning("second PLC master refused: %s%s; logged at most every %.0f s", text, more, self.log_interval_s)
            self._conflict_logged, self._conflicts_unlogged = now, 0
        else:
            self._conflicts_unlogged += 1
        self._wake()
        raise ua.uaerrors.BadUserAccessDenied

    def _on_write(self, event: ServerItemCallback, _dispatcher: object) -> None:
        """PostWrite (in this loop): fold the PLC's accepted writes into one control image."""
        if not event.is_external:
            return
        changed = False
        results = event.response_params or []
        for i, wv in enumerate(event.request_params.NodesToWrite):
            sig = self._by_node.get(wv.NodeId)
            if sig is None or wv.AttributeId != ua.AttributeIds.Value:
                continue
            if i < len(results) and not results[i].is_good():
                continue
            try:
                sig.write(self._control, R.CONTROL_BASE, wv.Value.Value.Value)
            except (ValueError, TypeError) as exc:
                self.refused += 1
                log.warning("OPC UA write to %s refused: %s", sig.name, exc)
                continue
            changed = True
        if changed:
            self.writes += 1
            self._writes.append(list(self._control))
            self._wake()

    async def receive(self) -> Inbound:
        out, conflicts = list(self._writes), list(self._conflicts)
        self._writes.clear()
        self._conflicts.clear()
        return Inbound(out, True, conflicts)

    async def publish(self, status: list[int]) -> None:
        server = self.server
        assert server is not None
        for sig in STATUS_SIGNALS:
            value = sig.read(status, R.STATUS_BASE)
            if self._shown.get(sig.name) == value:
                continue
            self._shown[sig.name] = value
            written = await server.iserver.aspace.write_attribute_value(
                self._nodes[sig.name], ua.AttributeIds.Value, ua.DataValue(ua.Variant(value, sig.variant))
            )
            if not written.is_good():  # a bug in the node table, not a runtime condition: say which variable
                raise RuntimeError(f"OPC UA variable {sig.name} refused {value!r}: {written.name}")

    def describe(self) -> str:
        return f"opcua server {self.cfg.endpoint(self.port)} ({self.cfg.security})"

    def start_demo_master(self) -> object | None:
        """The built-in line PLC simulator as this server's OPC UA client, when plc.simulator asks for it.

        Why it gets a certificate made for this run and trusted in memory: it must open the same signed
        and encrypted channel a PLC does (the configured policy), and nothing it leaves behind may let
        another client in once the simulator is off.
        """
        cfg = self.cfg
        if not cfg.simulator:
            log.info("line PLC simulator off: waiting for a PLC (OPC UA client) on %s", cfg.endpoint(self.port))
            return None
        from .simulator import OpcUaLinePlcSimulator

        sim = OpcUaLinePlcSimulator(
            cfg.local_endpoint(self.port),
            cfg.namespace,
            security=cfg.security,
            server_certificate=Path(cfg.certificate) if cfg.security != "None" else None,
            rate=cfg.simulator_rate,
            boards=0,
            poll_s=0.005,
        )
        if sim.certificate is not None and self.trust is not None:
            self.trust.allow_for_this_run(sim.certificate[0], "the built-in line PLC simulator")
        log.warning(
            "built-in line PLC simulator RUNNING (plc.simulator = true: asked for by name): it is this station's "
            "OPC UA PLC master (security %s) at %.1f boards/s; a real PLC writing the control variables is refused "
            "and raises the second-master alarm",
            cfg.security,
            cfg.simulator_rate,
        )
        sim.start_thread()
        return sim

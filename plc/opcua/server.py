"""OPC UA server transport: the PLC map of docs/plc.md as variables under the object `PcbInspector`.

Why a node per signal and not the register words: an OPC UA client (PLC, SCADA) browses typed,
named variables (`ResultsValid` is a Boolean, `PartSeq` a UInt32, `SerialIn` a String), so each bit
and field of the control and status blocks is one variable named after its register (CamelCase).
The handshake still works on the register images: this transport folds PLC writes into a control
image and unfolds the status image into variables, so OPC UA and Modbus follow the same rules.

Why values are checked in the PreWrite callback, before asyncua stores them: a value checked only
after the store (PostWrite) has already been answered Good and shows in the node, so a PLC whose
SerialIn does not fit would never hear of it and the station would record its next boards under the
previous serial. In PreWrite a Write request holding a value the station cannot take (another type,
an array for a scalar, a SerialIn over 40 characters or not ASCII) is refused as a whole, with
BadTypeMismatch or BadOutOfRange, and nothing of it is stored.

Why writes are captured in the server's PostWrite callback: each Write request the PLC sends is one
control image, in order, so a Trigger set and cleared between two link turns is still two edges
(as the Modbus server's action hook does). A write that changes nothing still wakes the link.

Why one master at a time: two PLCs (or a PLC and a SCADA writing what it should only read) writing
Trigger, PartSeq and SerialIn interleave their boards. The first session that writes a PLC-writable
variable is the master; another session's write is refused (BadUserAccessDenied, nothing of it taken)
and raises alarm 51 while the master wrote within plc.heartbeat_timeout_s (its heartbeat keeps it);
a master silent that long hands over to the next writer. The one exception is the master PLC itself
reconnecting (see `_claim_master`): a new session from the master's host, with its ApplicationUri and
client certificate, takes over at once when the old session's connection is gone, or when that
connection still looks open but has written nothing for half the heartbeat timeout (a pulled cable
sends no FIN). Another host, or another application on the same host, never does.

Why the status variables are written data first, status bits last: a PLC that sees ResultsValid
must read the Pass/Reject, InspId and PartSeqEcho of the same board. All writes of one publish
happen in one turn of this loop, with no client request served in between.
"""

from __future__ import annotations

import hashlib
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
from asyncua.server.internal_session import InternalSession, SessionState
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

    def value_of(self, data: ua.DataValue | None) -> Any:
        """The value a client's write carries, checked against this variable's type and shape;
        TypeError (BadTypeMismatch) if it is another type, or an array for a scalar or the reverse.

        Why the shape too: asyncua stores an array of the right VariantType in a scalar node, and
        `write` would judge [False] as true (a board started) or refuse [5, 6] only after Good was sent.
        """
        variant = data.Value if data is not None else None
        wanted = f"{self.variant.name}{'[]' if self.kind == 'u16[]' else ''}"
        if variant is None or variant.VariantType != self.variant:
            got = variant.VariantType.name if variant is not None else "no value"
            raise TypeError(f"{self.name} is {wanted}, not {got}")
        value = variant.Value
        array = bool(variant.is_array) or bool(variant.Dimensions) or isinstance(value, list | tuple)
        if array != (self.kind == "u16[]"):
            raise TypeError(f"{self.name} is {wanted}, not {'an array' if array else 'a scalar'}")
        items = list(value or []) if array else [value]
        python = {"bit": bool, "ascii": str}.get(self.kind, int)
        for item in items:
            if self.kind == "ascii" and item is None:  # a null String: the serial cleared
                continue
            if not isinstance(item, python) or (python is int and isinstance(item, bool)):
                raise TypeError(f"{self.name} is {wanted}, not {type(item).__name__}")
        return value

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


class _PlcSession(InternalSession):
    """An asyncua session that remembers who opened it: the ApplicationUri the client named in
    CreateSession and the certificate of its secure channel (asyncua keeps neither on the session).

    Why: a new session of the master PLC (it reconnected after its connection dropped) may take over,
    a session of another application may not, and the host alone cannot tell two programs on one PC apart.
    """

    client_uri: str | None = None
    channel_certificate: bytes | None = None

    async def create_session(self, params: ua.CreateSessionParameters, *args: Any, **kwargs: Any) -> Any:
        description = params.ClientDescription
        self.client_uri = (description.ApplicationUri or None) if description is not None else None
        return await super().create_session(params, *args, **kwargs)

    def activate_session(self, params: ua.ActivateSessionParameters, peer_certificate: bytes | None) -> Any:
        result = super().activate_session(params, peer_certificate)
        self.channel_certificate = peer_certificate
        return result


def _remember_clients(server: Server) -> None:
    """Make every session the server opens for a client a `_PlcSession` (the internal server's factory)."""
    iserver = server.iserver

    def create_session(name: Any, user: Any = None, external: bool = False) -> InternalSession:
        kw = {} if user is None else {"user": user}
        return _PlcSession(iserver, iserver.aspace, iserver.subscription_service, name, external=external, **kw)

    iserver.create_session = create_session  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class _Client:
    """Who a session is: its host (the TCP peer address), its ApplicationUri and its channel certificate."""

    host: str | None
    application_uri: str | None
    certificate: bytes | None
    """SHA-256 of the client certificate of the secure channel; None without security."""

    @classmethod
    def of(cls, session: InternalSession | None) -> _Client:
        name = getattr(session, "name", None)  # asyncua names a client's session by its peer (host, port)
        host = str(name[0]) if isinstance(name, tuple) and name and name[0] else None
        der = getattr(session, "channel_certificate", None)
        return cls(host, getattr(session, "client_uri", None), hashlib.sha256(der).digest() if der else None)

    def same_as(self, other: _Client) -> bool:
        """The same PLC: a known host and everything else equal (secure by default: unknown is never same)."""
        return self.host is not None and self == other

    def __str__(self) -> str:
        return f"{self.host or 'unknown host'} ({self.application_uri or 'no ApplicationUri'})"


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
        """Write requests refused for a value the station cannot take (BadTypeMismatch, BadOutOfRange)."""
        self.master_conflicts = 0
        """Writes refused because another session is the active master."""
        self._master: weakref.ref | None = None
        """The master session's user object (asyncua passes it to the write callbacks)."""
        self._master_session: weakref.ref | None = None
        self._master_client: _Client | None = None
        self._master_at = -float("inf")
        self._takeover_at = -float("inf")
        self.takeovers = 0
        """Times the master PLC's new session took over from its dropped one."""
        self._refusal_logged: dict[str, float] = {}
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
        _remember_clients(server)
        server.subscribe_server_callback(CallbackType.PreWrite, self._pre_write)
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

    def _pre_write(self, event: ServerItemCallback, _dispatcher: object) -> None:
        """PreWrite (before asyncua stores anything): the writer must be the master, and every value must
        fit its variable; otherwise the whole Write request is refused with the status the client sees."""
        if not event.is_external:
            return
        writes = [wv for wv in event.request_params.NodesToWrite if wv.NodeId in self._by_node]
        if not writes:
            return
        self._claim_master(event.user, [self._by_node[wv.NodeId].name for wv in writes])
        self._check_values(writes)

    def _check_values(self, writes: list[ua.WriteValue]) -> None:
        """Fold the values into a copy of the control image by the rules `_on_write` folds them with, so
        what passes here is what the station takes; raise BadTypeMismatch or BadOutOfRange otherwise."""
        image = list(self._control)
        for wv in writes:
            if wv.AttributeId != ua.AttributeIds.Value:
                continue
            sig = self._by_node[wv.NodeId]
            try:
                sig.write(image, R.CONTROL_BASE, sig.value_of(wv.Value))
            except TypeError as exc:
                self._refuse(sig, exc, ua.uaerrors.BadTypeMismatch)
            except ValueError as exc:
                self._refuse(sig, exc, ua.uaerrors.BadOutOfRange)

    def _refuse(self, sig: Signal, why: Exception, status: type[ua.uaerrors.UaStatusCodeError]) -> None:
        """Count and log (at most once per variable and log_interval_s: a PLC may retry every scan)."""
        self.refused += 1
        now = time.monotonic()
        if now - self._refusal_logged.get(sig.name, -float("inf")) >= self.log_interval_s:
            self._refusal_logged[sig.name] = now
            log.warning("OPC UA write to %s refused with %s, nothing taken: %s", sig.name, status.__name__, why)
        raise status

    def _session_of(self, user: object) -> InternalSession | None:
        """The client session whose user object this is (asyncua's write callbacks name only the user)."""
        iserver = self.server.iserver if self.server is not None else None
        sessions = getattr(iserver, "_external_sessions", {})
        return next((s for s in list(sessions.values()) if s.user is user), None)

    def _connected(self, session: InternalSession | None) -> bool:
        """Whether `session` still has an open connection here. Unknown counts as connected (no takeover)."""
        if session is None or session.state is SessionState.Closed:
            return False
        bserver = self.server.bserver if self.server is not None else None
        if bserver is None:
            return True
        return any(
            p.processor is not None
            and p.processor.session is session
            and p.transport is not None
            and not p.transport.is_closing()
            for p in bserver.clients
        )

    def _close_connections(self, session: InternalSession) -> None:
        bserver = self.server.bserver if self.server is not None else None
        for p in list(bserver.clients if bserver is not None else []):
            if p.processor is not None and p.processor.session is session and p.transport is not None:
                p.transport.close()

    def _claim_master(self, user: object, names: list[str]) -> None:
        """The writing session becomes or stays the master, or its whole write is refused.

        A new session of the master's own client (same host, ApplicationUri and channel certificate) is
        that PLC reconnecting: it takes over at once when the old session's connection is gone (reset,
        closed), or when that connection still looks open here but wrote nothing for half of
        heartbeat_timeout_s (a pulled cable sends no FIN; a live master writes its heartbeat more often).
        Then the old connection is closed, and a second such takeover within heartbeat_timeout_s is
        refused (two programs on one host taking turns). Anyone else waits out heartbeat_timeout_s.
        """
        now, timeout = time.monotonic(), self.cfg.heartbeat_timeout_s
        master = self._master() if self._master is not None else None
        if master is user:
            self._master_at = now
            return
        session = self._session_of(user)
        client = _Client.of(session)
        old, old_session = self._master_client, self._master_session() if self._master_session else None
        silent = now - self._master_at
        if session is not None and session is old_session and silent <= timeout:
            self._make_master(user, session, client, now)  # the master's session, activated again (new user object)
            return
        if old is None or silent > timeout:
            if old is not None:
                log.info("OPC UA: %s is the PLC master (the previous master %s was silent %.1f s)", client, old, silent)
            self._make_master(user, session, client, now)
            return
        if old.same_as(client):
            if not self._connected(old_session):
                log.warning(
                    "OPC UA: the PLC master %s reconnected: its new session takes over (the old session is "
                    "closed or its connection dropped; last write %.1f s ago)",
                    client,
                    silent,
                )
                self._make_master(user, session, client, now, takeover=True)
                return
            if silent >= timeout / 2 and now - self._takeover_at >= timeout:
                log.warning(
                    "OPC UA: the PLC master %s reconnected: its new session takes over and the old connection, "
                    "silent %.1f s, is closed (no FIN: a pulled cable or a power loss)",
                    client,
                    silent,
                )
                if old_session is not None:
                    self._close_connections(old_session)
                self._make_master(user, session, client, now, takeover=True)
                return
        self.master_conflicts += 1
        text = f"a second OPC UA session ({client}) wrote {', '.join(names)} while {old} is the master"
        self._conflicts.append(text)
        if now - self._conflict_logged >= self.log_interval_s:
            more = f" ({self._conflicts_unlogged} more since the last report)" if self._conflicts_unlogged else ""
            log.warning("second PLC master refused: %s%s; logged at most every %.0f s", text, more, self.log_interval_s)
            self._conflict_logged, self._conflicts_unlogged = now, 0
        else:
            self._conflicts_unlogged += 1
        self._wake()
        raise ua.uaerrors.BadUserAccessDenied

    def _make_master(
        self, user: object, session: InternalSession | None, client: _Client, now: float, takeover: bool = False
    ) -> None:
        self._master, self._master_client, self._master_at = weakref.ref(user), client, now
        self._master_session = weakref.ref(session) if session is not None else None
        if takeover:
            self._takeover_at = now
            self.takeovers += 1

    def _on_write(self, event: ServerItemCallback, _dispatcher: object) -> None:
        """PostWrite (in this loop): fold the PLC's accepted writes into one control image. The values
        passed `_check_values` in PreWrite; a failure here would be a bug, logged and not taken."""
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
                sig.write(self._control, R.CONTROL_BASE, sig.value_of(wv.Value))
            except (ValueError, TypeError) as exc:
                log.error("OPC UA write to %s stored but not taken (passed the PreWrite check): %s", sig.name, exc)
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

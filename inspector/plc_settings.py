"""PLC link settings: the protocol-neutral base and the registry of protocol plug-ins.

Why a registry and not a Modbus section in the core: the core must not know which protocols exist
(it never imports `plc`). Each protocol plug-in owns its settings class (a subclass of
`PlcLinkSettings` with `protocol: Literal[...]`) and names it in the `pcb_inspector.plc_protocols`
entry-point group; `[plc]` in a station file is the union of the registered classes, chosen by
`protocol` (a file without `protocol` is a Modbus file, as every file was before OPC UA existed).

This module imports only pydantic, so a plug-in can import it while `inspector.config` is loading.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pcb_inspector.plc_protocols"
#: What a [plc] section without `protocol` is: every station file written before the key existed.
DEFAULT_PROTOCOL = "modbus"


class PlcLinkSettings(BaseModel):
    """Settings every PLC protocol shares: the handshake's timings and the address the link uses."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    #: `--plc` prefixes this protocol answers to besides its own name (Modbus: server, client, off).
    spec_prefixes: ClassVar[tuple[str, ...]] = ()

    protocol: str
    mode: str
    host: str = Field("127.0.0.1", description="server: address to bind; client: the PLC's address.")
    port: int = Field(1502, ge=1, le=65535, description="TCP port of the link.")
    heartbeat_timeout_s: float = Field(3.0, gt=0, le=60, description="PLC heartbeat silence that drops READY.")
    trigger_hold_timeout_s: float = Field(1.0, gt=0, le=60, description="TRIGGER held this long is flagged.")
    result_timeout_s: float = Field(5.0, gt=0, le=120, description="No result this long after trigger: REJECT.")
    queue_depth: int = Field(8, ge=1, le=64, description="Unacknowledged results kept before RESULTS_OVERRUN.")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        from .config import check_host  # at validation time inspector.config is loaded

        return check_host(v, "the address")

    @classmethod
    def parse_spec(cls, spec: str) -> dict[str, Any]:
        """`--plc SPEC` -> the keys of this section it sets; ValueError naming what is wrong."""
        raise ValueError(f"--plc {spec!r}: protocol {cls.protocol_name()!r} takes no command-line spec")

    @classmethod
    def file_defaults(cls, data: dict[str, Any]) -> None:
        """Defaults a station *file* gets that the demo (no file) does not; edits `data` in place."""

    @classmethod
    def protocol_name(cls) -> str:
        return cls.model_fields["protocol"].default

    def describe(self) -> str:
        """One line for logs and the health lamp, e.g. 'modbus server 127.0.0.1:1502'."""
        return f"{self.protocol} {self.mode} {self.host}:{self.port}"


class PlcOff(PlcLinkSettings):
    """No PLC link (free-run); also what the station gets when no protocol plug-in is installed."""

    protocol: Literal["off"] = Field("off", description="No PLC link.")
    mode: Literal["off"] = Field("off", description="Always off.")

    def describe(self) -> str:
        return "off"


_registry: dict[str, type[PlcLinkSettings]] | None = None


def register_plc_protocol(cls: type[PlcLinkSettings]) -> type[PlcLinkSettings]:
    """Add a settings class by hand (a plug-in not installed as a distribution). Call before
    `inspector.config` is imported: the union of `[plc]` is built once, when that module loads."""
    protocols()[cls.protocol_name()] = cls
    return cls


def protocols() -> dict[str, type[PlcLinkSettings]]:
    """Protocol name -> settings class: 'off' plus every class in the entry-point group."""
    global _registry
    if _registry is None:
        _registry = {"off": PlcOff}
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                cls = ep.load()
            except Exception as exc:  # a broken plug-in must not stop a station that does not use it
                log.error("PLC protocol plug-in %r (%s) cannot be loaded: %s", ep.name, ep.value, exc)
                continue
            if not (isinstance(cls, type) and issubclass(cls, PlcLinkSettings)):
                log.error("PLC protocol plug-in %r (%s) is not a PlcLinkSettings class", ep.name, ep.value)
                continue
            name = cls.protocol_name()
            if name != ep.name:
                log.error("PLC protocol plug-in %r names protocol %r; registered under %r", ep.name, name, name)
            _registry[name] = cls
    return _registry


def default_plc_settings() -> PlcLinkSettings:
    """The demo's PLC section: the default protocol's defaults, or off when its plug-in is missing."""
    cls = protocols().get(DEFAULT_PROTOCOL, PlcOff)
    return cls()


def with_protocol(data: Any) -> Any:
    """Give a [plc] table without `protocol` the default one (files from before the key existed)."""
    if isinstance(data, dict) and "protocol" not in data:
        data = dict(data)
        data["protocol"] = (
            "off" if data.get("mode") == "off" and DEFAULT_PROTOCOL not in protocols() else DEFAULT_PROTOCOL
        )
    return data


def parse_plc_spec(spec: str) -> dict[str, Any]:
    """`--plc` value -> [plc] keys, by the protocol its prefix names (`opcua:HOST:PORT`, `server:...`)."""
    if spec == "off":
        return {"mode": "off"}
    prefix = spec.partition(":")[0].partition("+")[0]
    for cls in protocols().values():
        if prefix == cls.protocol_name() or prefix in cls.spec_prefixes:
            out = cls.parse_spec(spec)
            out.setdefault("protocol", cls.protocol_name())
            return out
    known = sorted({p for c in protocols().values() for p in (*c.spec_prefixes, c.protocol_name())} - {"off"})
    raise ValueError(f"--plc {spec!r}: unknown protocol {prefix!r} (expected off or one of {', '.join(known)})")

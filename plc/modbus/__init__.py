"""Modbus TCP protocol plug-in: its [plc] settings, `--plc` spec and transports (server and client).

Why this module stays light: `inspector.config` loads the settings class through the
`pcb_inspector.plc_protocols` entry point while it is itself loading; the transports (pymodbus)
are imported only when a link is built.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from inspector.plc_settings import PlcLinkSettings


class ModbusSettings(PlcLinkSettings):
    """[plc] with protocol = "modbus" (the default): the register map of docs/plc.md over Modbus TCP."""

    spec_prefixes: ClassVar[tuple[str, ...]] = ("server", "client")

    protocol: Literal["modbus"] = Field("modbus", description="Modbus TCP (docs/plc.md register map).")
    mode: Literal["server", "client", "off"] = Field(
        "server", description="server: PLC polls the station; client: station writes to the PLC; off: free-run."
    )
    port: int = Field(1502, ge=1, le=65535, description="Modbus TCP port (502 needs privileges).")
    device_id: int = Field(1, ge=0, le=247, description="Modbus device (unit) id.")
    control_base: int = Field(0, ge=0, le=65000, description="Client mode: PLC register of the control block.")
    status_base: int = Field(100, ge=0, le=65000, description="Client mode: PLC register of the status block.")
    timeout_s: float = Field(0.25, gt=0, le=10, description="Per-request timeout (pymodbus default 3 s is too slow).")
    retries: int = Field(1, ge=0, le=5, description="Retries per request before the link counts as down.")
    poll_ms: int = Field(5, ge=1, le=1000, description="Client mode: control block poll period.")
    simulator: bool = Field(
        True,
        description=(
            "Run the built-in line PLC simulator as the PLC master against the server. On only in the demo "
            "(no config file) or when a config file or --plc server:HOST:PORT+sim asks for it by name; never "
            "with a real PLC."
        ),
    )
    simulator_rate: float = Field(2.0, gt=0, le=100, description="Simulator boards per second.")

    @classmethod
    def parse_spec(cls, spec: str) -> dict[str, Any]:
        """`server:HOST:PORT`, `client:HOST:PORT` (PORT optional: 1502 / 502), `server:HOST:PORT+sim`,
        and the same after `modbus:` (`modbus:server:HOST:PORT`).

        Why `server` turns the simulator off: naming a server address means a real PLC will connect,
        and the demo's built-in simulator beside it would be a second master. `+sim` asks for it by name.
        """
        body, plus, suffix = spec.removeprefix("modbus:").partition("+")
        if plus and suffix != "sim":
            raise ValueError(f"--plc {spec!r}: unknown suffix '+{suffix}' (only server:HOST:PORT+sim)")
        mode, _, rest = body.partition(":")
        if mode not in {"server", "client"} or not rest:
            raise ValueError(f"--plc {spec!r}: expected off, server:HOST:PORT[+sim] or client:HOST:PORT")
        if plus and mode != "server":
            raise ValueError(f"--plc {spec!r}: '+sim' needs server mode (the simulator is a PLC polling our server)")
        host, _, port = rest.rpartition(":")
        if not host:
            host, port = rest, ("1502" if mode == "server" else "502")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--plc {spec!r}: port {port!r} is not a number 1..65535")
        out: dict[str, Any] = {"protocol": "modbus", "mode": mode, "host": host, "port": int(port)}
        if mode == "server":
            out["simulator"] = bool(plus)
        return out

    @classmethod
    def file_defaults(cls, data: dict[str, Any]) -> None:
        # A station file runs the built-in PLC simulator only when it says so (see `simulator`).
        data.setdefault("simulator", False)

    def describe(self) -> str:
        return f"modbus {self.mode} {self.host}:{self.port}"

    def create_transport(self, port: int):
        """The transport for this mode; `port` overrides self.port (0: an ephemeral port, tests)."""
        from .transport import ModbusClientTransport, ModbusServerTransport

        if self.mode == "server":
            return ModbusServerTransport(self, port)
        if self.mode == "client":
            return ModbusClientTransport(self, port)
        raise ValueError("plc.mode is 'off': there is no PLC link to attach")

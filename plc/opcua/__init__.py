"""OPC UA protocol plug-in: the station as an OPC UA server (most new PLCs and SCADA talk OPC UA).

The same handshake and result signals as the Modbus map, as variables under one object
`PcbInspector` in the station's namespace (node table: plc/opcua/server.py, docs/plc.md); the line
PLC simulator as an OPC UA client in plc/opcua/simulator.py. This module holds only the settings
(it is loaded while `inspector.config` loads); asyncua is imported when the link starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from inspector.plc_settings import PlcLinkSettings


class OpcUaSettings(PlcLinkSettings):
    """[plc] with protocol = "opcua": an OPC UA server the PLC (client) reads and writes."""

    protocol: Literal["opcua"] = Field("opcua", description="OPC UA server (docs/plc.md, OPC UA node table).")
    mode: Literal["server", "off"] = Field("server", description="server: the PLC connects as OPC UA client.")
    port: int = Field(4840, ge=1, le=65535, description="OPC UA TCP port (4840 is the registered one).")
    namespace: str = Field(
        "urn:pcb-inspector:station", min_length=1, description="Namespace URI of the station's nodes (PcbInspector)."
    )
    security: Literal["Basic256Sha256", "None"] = Field(
        "Basic256Sha256",
        description="Security policy (sign and encrypt). None: plain text, anyone on the network can trigger; only "
        "when this key says so.",
    )
    certificate: Path = Field(
        Path("data/opcua/server-cert.der"),
        description="Server certificate (DER); a self-signed one is created here on first start if missing.",
    )
    private_key: Path = Field(
        Path("data/opcua/server-key.pem"),
        description="Server private key (PEM, mode 0600); created with the certificate if missing.",
    )
    trusted_clients: Path | None = Field(
        None,
        description="Folder of the client (PLC, SCADA) certificates allowed a secure channel, one DER or PEM file "
        "each; a refused one is saved to a 'rejected' folder beside it, to be moved in once checked. None: any "
        "client certificate is accepted (the channel is still signed and encrypted).",
    )
    simulator: bool = Field(
        False,
        description=(
            "Run the built-in line PLC simulator as the OPC UA client and PLC master of the server (the demo, a "
            "bring-up without a PLC). Only when a config file or --plc opcua:HOST:PORT+sim asks for it by name; "
            "never with a real PLC."
        ),
    )
    simulator_rate: float = Field(2.0, gt=0, le=100, description="Simulator boards per second.")

    @classmethod
    def parse_spec(cls, spec: str) -> dict[str, Any]:
        """`opcua:HOST:PORT` (PORT optional: 4840), `opcua:HOST:PORT+sim` with the built-in simulator.
        The security policy comes from the config file only.

        Why a plain address turns the simulator off (as Modbus' `server:HOST:PORT`): naming the address
        means a real PLC will connect, and a simulator beside it would be a second master.
        """
        body, plus, suffix = (spec.removeprefix("opcua:") if spec.startswith("opcua:") else "").partition("+")
        if plus and suffix != "sim":
            raise ValueError(f"--plc {spec!r}: unknown suffix '+{suffix}' (only opcua:HOST:PORT+sim)")
        if not body:
            raise ValueError(f"--plc {spec!r}: expected opcua:HOST:PORT[+sim], e.g. opcua:127.0.0.1:4840")
        host, _, port = body.rpartition(":")
        if not host:
            host, port = body, "4840"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--plc {spec!r}: port {port!r} is not a number 1..65535")
        return {"protocol": "opcua", "mode": "server", "host": host, "port": int(port), "simulator": bool(plus)}

    def endpoint(self, port: int | None = None) -> str:
        return f"opc.tcp://{self.host}:{self.port if port is None else port}/pcb-inspector/"

    def local_endpoint(self, port: int | None = None) -> str:
        """The endpoint as a client on this machine reaches it (a server bound to every address: 127.0.0.1)."""
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        return f"opc.tcp://{host}:{self.port if port is None else port}/pcb-inspector/"

    def describe(self) -> str:
        return f"opcua server {self.host}:{self.port} ({self.security})"

    def create_transport(self, port: int):
        from .server import OpcUaServerTransport

        if self.mode != "server":
            raise ValueError("plc.mode is 'off': there is no PLC link to attach")
        return OpcUaServerTransport(self, port)

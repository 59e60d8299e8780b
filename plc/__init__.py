"""PLC link: the handshake (pure state machine), the protocol-neutral link and its transports.

`handshake.py` decides on the control and status blocks (`registers.py` names them to the bit),
`link.py` runs it in one owning thread over a `transport.py` Transport; `simulator.py` is the line
PLC program the built-in simulators run; the protocol plug-ins (`modbus/`: server, client, simulator;
`opcua/`: server, simulator) own their `[plc]` settings and are found through the
`pcb_inspector.plc_protocols` entry points.

The core (`inspector`) never imports this package: the station finds `plc.station:attach` through
the `pcb_inspector.plc` entry point, and the CLI finds `plc-sim` through `pcb_inspector.commands`.
docs/plc.md is the integrator's reference; docs/architecture.md says how to add a protocol.
"""

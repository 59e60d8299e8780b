"""PLC link over Modbus TCP: register map, handshake, server and client modes, line PLC simulator.

The core (`inspector`) never imports this package: the station finds `plc.station:attach` through
the `pcb_inspector.plc` entry point, and the CLI finds `plc-sim` through `pcb_inspector.commands`.
docs/plc.md is the integrator's reference.
"""

"""PCB inspection station core: config, capture, detection, decision, pipeline, storage, CLI.

Never imports Qt, `ui` or `plc`: those depend on this package, not the other way round.
"""

__version__ = "0.1.0"

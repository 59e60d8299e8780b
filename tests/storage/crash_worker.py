"""Subprocess for the crash test: the real pipeline (replay camera -> classical detector) feeding the
recorder, as fast as it can. Prints `ACK <uid>` once the recorder confirms a result durable: exactly
the moment the PLC link would publish it. The parent SIGKILLs this process at random moments.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from inspector.capture import create_camera
from inspector.config import Recipe, ReplayCamera, StationConfig
from inspector.decision import RecipeRules
from inspector.detect.classical import DifferenceDetector
from inspector.health import Health
from inspector.pipeline import Pipeline
from inspector.storage.writer import Recorder, RecorderSettings


def main() -> None:
    url, archive, spool, boards = sys.argv[1:5]
    health = Health()
    rec = Recorder(
        RecorderSettings(url, archive_dir=Path(archive), spool_dir=Path(spool), min_free_mb=0, retention_days=None),
        health,
    )
    out_lock = threading.Lock()

    def ack(uid: str, where: str) -> None:
        with out_lock:
            sys.stdout.write(f"ACK {uid} {where}\n")
            sys.stdout.flush()

    rec.add_durable_listener(ack)
    rec.start()
    cfg = StationConfig(camera=ReplayCamera(path=Path(boards), fps=None, loop=True))
    pipe = Pipeline(create_camera(cfg), DifferenceDetector(), RecipeRules(Recipe()), health, [rec])
    pipe.start()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main()

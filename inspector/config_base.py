"""What every station-file section is built on, in a module that imports only pydantic.

Why separate from `inspector.config`: backends own their settings classes (a camera module defines
its `[camera]` class beside the code that reads it), and `inspector.config` builds the `[camera]`
union from those modules while it loads; they can only import a base that does not import them back.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A station-file section: unknown keys are errors (a misspelt key must stop the station, named)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


TriggerMode = Literal["free_run", "software", "line"]
"""How a camera delivers frames: free_run at its rate, software (one per trigger), line (hardware input)."""

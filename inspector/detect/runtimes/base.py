"""What a runtime is to the packaged-model detector: load a graph, say what runs it, fill the input, invoke.

Why so small: everything a model package means (channels, tiles, passes, decoding, merging) is the
same whatever executes the graph, and lives in `inspector.detect.packaged`. A runtime only turns
bytes into something that can be invoked and reports, truthfully, which hardware took the graph.
Adding one is a plug-in module with a `Runtime` subclass (`RUNTIME`), its settings class (`CONFIG`,
a `PackagedModelSettings` with `type: Literal["<name>"]`) and `create`, plus one line in
`inspector.detect.registry.DETECTOR_MODULES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..delegates import Backend
from ..settings import PackagedModelSettings


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output as the runtime holds it (the sidecar is checked against these)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    quantisation: tuple[float, int] | None
    """(scale, zero point) of an integer tensor; None for float tensors."""


class Runtime(ABC):
    """A loaded graph. Built in the thread that will invoke it; used by that thread only."""

    #: The sidecar's `runtime` value this class serves.
    name: ClassVar[str]

    backend: Backend
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @abstractmethod
    def __init__(self, blob: bytes, where: str, settings: PackagedModelSettings, **hooks: Any):
        """Load `blob` (the verified model bytes); ModelError naming `where` when it cannot run.

        `settings` is the `[detector]` section of this runtime's own type (its `CONFIG`): the shared keys
        (`threads`, ...) and the runtime's own. `hooks` are test seams a runtime may accept (e.g. LiteRT's
        `delegate_loader`); a runtime ignores the ones it does not know.
        """

    @abstractmethod
    def input_view(self) -> np.ndarray:
        """The (H, W, C) input buffer, written in place. Drop every reference before `invoke`."""

    @abstractmethod
    def set_input(self, x: np.ndarray) -> None:
        """Copy a (1, H, W, C) array of the input's type into the input."""

    @abstractmethod
    def invoke(self) -> None: ...

    @abstractmethod
    def output(self, index: int) -> np.ndarray:
        """Output `index` (an `outputs[i].index`) of the last invoke, batch included; stays valid after
        the next invoke."""

    def cpu_twin(self) -> Runtime | None:
        """The same graph on the CPU alone, to time an accelerator against (None when this is the CPU)."""
        return None

    def at_input_size(self, height: int, width: int) -> Runtime | None:
        """The same graph and weights taking a (height, width) input, or None when this runtime cannot.

        Why: the reduced pass sees a board shrunk to 0.8; letterboxed into the full input it pays for
        padding (a 512 px board in a 640 px input is 36 % padding). A fully convolutional graph can run
        at the shrunk size itself. None keeps the letterboxed pass: always for an accelerator (a
        delegate or provider often compiles for one input size), and for runtimes without `_built_at`.
        """
        spec = self.inputs[0]
        old = (spec.shape[1], spec.shape[2])
        if (height, width) == old:
            return self
        if self.backend.accelerated or len(spec.shape) != 4:
            return None
        return self._built_at(old, (height, width))

    def _built_at(self, old: tuple[int, int], new: tuple[int, int]) -> Runtime | None:
        """This graph built for a `new` (h, w) input instead of `old`, on the CPU; None where it cannot be."""
        return None

    def close(self) -> None:
        """Release the graph and any accelerator."""

"""What a runtime is to the packaged-model detector: load a graph, say what runs it, fill the input, invoke.

Why so small: everything a model package means (channels, tiles, passes, decoding, merging) is the
same whatever executes the graph, and lives in `inspector.detect.packaged`. A runtime only turns
bytes into something that can be invoked and reports, truthfully, which hardware took the graph.
Adding one is a module here with a `Runtime` subclass plus one line in `runtimes.RUNTIMES`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ...config import ExternalDelegate
from ..delegates import Backend


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output as the runtime holds it (the sidecar is checked against these)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    quantisation: tuple[float, int] | None
    """(scale, zero point) of an integer tensor; None for float tensors."""


@dataclass(slots=True)
class RuntimeOptions:
    """The `[detector]` settings a runtime may use; each runtime reads the ones that apply to it."""

    threads: int = 2
    delegate: str | ExternalDelegate = "cpu"
    """LiteRT: 'auto', 'cpu' or one external delegate."""
    auto_delegates: Sequence[ExternalDelegate] = ()
    delegate_loader: Callable | None = None
    """LiteRT: replaces `load_delegate` (tests)."""
    providers: Sequence[str] = ()
    """ONNX Runtime: execution providers by name, in order of preference; CPU is always last."""
    extra: dict[str, Any] = field(default_factory=dict)


class Runtime(ABC):
    """A loaded graph. Built in the thread that will invoke it; used by that thread only."""

    #: The sidecar's `runtime` value this class serves.
    name: ClassVar[str]

    backend: Backend
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @abstractmethod
    def __init__(self, blob: bytes, where: str, options: RuntimeOptions):
        """Load `blob` (the verified model bytes); ModelError naming `where` when it cannot run."""

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

    def close(self) -> None:
        """Release the graph and any accelerator."""

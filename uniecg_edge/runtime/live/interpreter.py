"""The ``Interpreter`` protocol the live pipeline runs on.

Anything with ``interpret(record, base_report=...) -> Report`` and ``generate(request, hr=, age=, sex=, steps=,
scheduler=, seed=) -> GeneratedEcg`` will do: the torch reference (``model.pipeline.TorchPipeline``) and the
edge runtime (``runtime.engine.EdgeRuntime``) both are; the commands load either with
``commands._model_options.load_runner``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ...record import EcgRecord
from ...report import Report


@runtime_checkable
class Interpreter(Protocol):
    """ECG → report text (``interpret``) and text → ECG (``generate``)."""

    def interpret(self, record: EcgRecord, *, base_report: Report | None = None) -> Report:
        """The model's report for ``record`` beside the DSP measurements of ``base_report``."""
        ...

    def generate(self, request: str, *, hr: float, age: float, sex: str, steps: int | None = None,
                 scheduler: str | None = None, seed: int = 0) -> Any:
        """A ``GeneratedEcg`` (``.record``: 12 leads, 500 Hz, 10 s) for ``request`` and the patient."""
        ...

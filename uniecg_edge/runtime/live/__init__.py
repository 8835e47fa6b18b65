"""The live pipeline behind ``uniecg-edge run``: acquisition thread, continuous WFDB recording, sliding windows,
fast path (DSP, quality gate, critical rules), a latest-wins model worker, reference waveforms and sinks.

See ``pipeline`` for the threads and the JSON-lines events, ``recorder`` for the on-disk layout.
"""

from __future__ import annotations

from .config import LiveConfig, ReferenceSettings
from .interpreter import Interpreter
from .pipeline import LivePipeline, stop_on_signals
from .recorder import StreamRecorder, recover_recording
from .reference import ReferenceResult, compare_with_reference, generate_reference, reference_request
from .sinks import SINKS, SinkSet
from .windows import LeadPlan, LiveWindow, WindowMaker
from .worker import LatestSlot, ModelWorker

__all__ = [
    "SINKS", "Interpreter", "LatestSlot", "LeadPlan", "LiveConfig", "LivePipeline", "LiveWindow", "ModelWorker",
    "ReferenceResult", "ReferenceSettings", "SinkSet", "StreamRecorder", "WindowMaker", "compare_with_reference",
    "generate_reference", "recover_recording", "reference_request", "stop_on_signals",
]

"""Export a real-size decoder (Qwen2-0.5B's shape, random weights, built offline) and measure peak memory.

Runs in a child process so that its peak RSS is the export's own. Slow (about 2-3 minutes on 2 cores, ~4 GB of
memory): set UNIECG_RUN_SLOW=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PEAK_RSS_LIMIT = 2.5  # x the fp32 weight bytes

CHILD = r"""
import json, resource, sys, time
from types import SimpleNamespace
import numpy as np, torch
from uniecg_edge.export.onnx_export import export_graph
from uniecg_edge.export.onnx_generate import GraphRunner, OnnxDecoder
from uniecg_edge.export.parity import compare_outputs, run_torch
from uniecg_edge.export.spec import graph_specs
from uniecg_edge.export.specs.decoder import DecoderWithPast
from uniecg_edge.model.llm import build_llm, qwen2_0_5b

torch.manual_seed(0)
start = time.perf_counter()
llm = build_llm(qwen2_0_5b())
build_s = time.perf_counter() - start
spec = graph_specs(["decoder"])[0]
result = export_graph(spec, SimpleNamespace(llm=llm), sys.argv[1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
decoder = OnnxDecoder(GraphRunner.from_file(result.path))
rng = np.random.default_rng(0)
embeds = (0.02 * rng.standard_normal((1, 6, llm.config.hidden_size))).astype(np.float32)
inputs = (embeds, np.ones((1, 6), np.int64), np.arange(6, dtype=np.int64)[None], *decoder.empty_past(1))
names = [s.name for s in spec.outputs(SimpleNamespace(llm=llm))]
diff, rel, _ = compare_outputs(decoder.runner(*inputs), run_torch(DecoderWithPast(llm).eval(), inputs), names)
print(json.dumps({
    "params": sum(p.numel() for p in llm.parameters()), "weight_bytes": result.weight_bytes,
    "build_s": build_s, "export_s": result.export_s, "size_bytes": result.size_bytes,
    "data_files": result.data_files, "peak_rss": peak, "prefill_max_abs_diff": diff,
}))
"""


@pytest.mark.slow
def test_a_half_billion_parameter_decoder_exports_within_memory(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=1800, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(figures))
    assert figures["params"] >= 490_000_000  # Qwen2-0.5B: 494 M
    ratio = figures["peak_rss"] / figures["weight_bytes"]
    assert ratio <= PEAK_RSS_LIMIT, f"peak RSS {figures['peak_rss'] / 1e9:.2f} GB = {ratio:.2f} x the weights"
    assert figures["data_files"] == ["decoder.onnx.data"]  # over 1.5 GiB: weights beside the graph
    assert figures["prefill_max_abs_diff"] < 1e-3

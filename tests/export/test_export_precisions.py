"""fp16 / int8 / int4: the fp32 export is quantized by ``uniecg_edge.export.quantize`` and the quantized graph is
checked against torch fp32 at that precision's tolerance (relative max error)."""

from __future__ import annotations

from pathlib import Path

import pytest

from uniecg_edge.export import ExportOptions, export_bundle, load_bundle
from uniecg_edge.export.parity import ParityError

quantize = pytest.importorskip("uniecg_edge.export.quantize")


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_a_quantized_graph_is_checked_at_its_precision_tolerance(tiny_model_dir: Path, tmp_path: Path,
                                                                 precision: str) -> None:
    out = tmp_path / precision
    manifest = export_bundle(out, tiny_model_dir, ExportOptions(precision=precision, graphs=("gen_head",)))
    graph = manifest["graphs"]["gen_head"]
    assert manifest["precision"] == precision and graph["precision"] == precision
    parity = graph["parity"]
    assert parity["metric"] == "relative_max_error" and parity["passed"]
    assert parity["tolerance"] == quantize.TOLERANCES[precision]["gen_head"]
    assert 0 < parity["relative_max_error"] <= parity["tolerance"]
    assert graph["quantization"]["method"]
    assert load_bundle(out).precision == precision
    assert sorted(p.name for p in tmp_path.iterdir()) == [precision]  # no fp32 scratch left behind


def test_a_quantized_graph_beyond_its_tolerance_fails(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path,
                                                      tmp_path: Path) -> None:
    monkeypatch.setitem(quantize.TOLERANCES["int8"], "gen_head", 0.0)
    with pytest.raises(ParityError, match=r"graph gen_head \(int8\).*relative max error .* > tolerance 0"):
        export_bundle(tmp_path / "b", tiny_model_dir, ExportOptions(precision="int8", graphs=("gen_head",)))
    assert list(tmp_path.iterdir()) == []


def test_a_quantized_understanding_path_is_gated_against_its_fp32_twin(tiny_model_dir: Path, tmp_path: Path) -> None:
    graphs = ("ecg_encoder", "embed_tokens", "decoder")
    manifest = export_bundle(tmp_path / "int8", tiny_model_dir, ExportOptions(precision="int8", graphs=graphs))
    assert list(manifest["graphs"]) == list(graphs)
    assert manifest["parity"]["greedy_tokens_equal"] in (True, False)  # recorded, not required, when quantized
    gates = manifest["gates"]
    assert {"top1_agreement", "ecg_token_cosine"} <= set(gates)
    assert all(gate["passed"] in (True, None) for gate in gates.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8"]  # the fp32 twin is gone

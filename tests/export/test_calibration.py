"""Calibration windows from real WFDB records, never from the gates' check records; static QDQ calibrated on them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from uniecg_edge.errors import InputError
from uniecg_edge.export.calibration import CHECK_RECORDS, ecg_calibration_windows, is_check_record, record_name
from uniecg_edge.preprocess import to_model_input
from uniecg_edge.wfdb_io import read_record


def _cinc(shared_ecg: Path, names) -> list[Path]:
    return [shared_ecg / "cinc2021" / f"{name}.hea" for name in names]


def test_check_records_exist_one_per_cinc_source(shared_ecg):
    assert {name[:1] for name in CHECK_RECORDS} == {"H", "E", "J"}
    for path in _cinc(shared_ecg, CHECK_RECORDS):
        assert path.is_file()
        assert is_check_record(path) and record_name(path) in CHECK_RECORDS


def test_ten_second_records_give_one_window_each(shared_ecg):
    paths = _cinc(shared_ecg, ["HR06000", "E07500", "JS20000"])
    windows = list(ecg_calibration_windows(paths))
    assert len(windows) == 3
    for window, path in zip(windows, paths, strict=True):
        assert window.shape == (12, 5000) and window.dtype == np.float32
        np.testing.assert_array_equal(window, to_model_input(read_record(path))[0])


def test_check_records_are_never_used(shared_ecg, caplog):
    every = sorted((shared_ecg / "cinc2021").glob("*.hea"))
    with caplog.at_level(logging.INFO, logger="uniecg_edge.export.calibration"):
        windows = list(ecg_calibration_windows(every))
    assert len(windows) == len(every) - len(CHECK_RECORDS)
    checks = [to_model_input(read_record(p))[0] for p in _cinc(shared_ecg, CHECK_RECORDS)]
    assert not any(np.array_equal(w, c) for w in windows for c in checks)
    assert all(name in caplog.text for name in CHECK_RECORDS)
    with pytest.raises(InputError, match="no usable 12-lead window"):
        list(ecg_calibration_windows(_cinc(shared_ecg, CHECK_RECORDS)))


def test_long_record_slides_in_windows(shared_ecg):
    ptb = shared_ecg / "ptbdb" / "s0010_re.hea"  # 38.4 s at 1000 Hz
    plain = list(ecg_calibration_windows([ptb]))
    assert len(plain) == 4  # 0-10, 10-20, 20-30 s and the 8.4 s tail (more than half a window), zero-padded
    assert np.all(plain[-1][:, 4300:] == 0) and np.any(plain[-1][:, :4000] != 0)
    overlapping = list(ecg_calibration_windows([ptb], stride_s=5.0))
    assert len(overlapping) == 7
    # window k+1 starts 5 s (2500 samples at 500 Hz) into window k; away from the resampling edges they agree
    np.testing.assert_allclose(overlapping[1][:, 500:2000], overlapping[0][:, 3000:4500], atol=5e-3)
    assert len(list(ecg_calibration_windows([ptb], stride_s=5.0, max_windows=2))) == 2


def test_records_without_twelve_leads_are_left_out(shared_ecg, caplog):
    mitdb = shared_ecg / "mitdb" / "100.hea"  # MLII + V5 only
    with caplog.at_level(logging.WARNING, logger="uniecg_edge.export.calibration"):
        windows = list(ecg_calibration_windows([mitdb, shared_ecg / "cinc2021" / "HR06001.hea"]))
    assert len(windows) == 1
    assert "100 left out" in caplog.text
    with pytest.raises(InputError):
        list(ecg_calibration_windows([mitdb]))


def test_bad_window_arguments():
    with pytest.raises(InputError, match="window"):
        list(ecg_calibration_windows([], window_s=0))
    with pytest.raises(InputError, match="stride"):
        list(ecg_calibration_windows([], stride_s=-1))


def test_static_qdq_calibrated_on_real_windows(shared_ecg, tmp_path):
    """An ECG-encoder-shaped model (patch conv, GELU, LayerNorm, projection): QDQ with symmetric, per-channel
    int8, close to fp32 on every check record (JS20009 reaches 3.3 mV, beyond the calibration windows' 2.3)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from onnx import numpy_helper

    from uniecg_edge.export.quantize import TOLERANCES, quantize_graph, relative_max_error

    torch.manual_seed(0)

    class TinyEcgEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patch = torch.nn.Conv1d(12, 32, kernel_size=50, stride=50)
            self.norm = torch.nn.LayerNorm(32)
            self.proj = torch.nn.Linear(32, 64)

        def forward(self, ecg):
            return self.proj(self.norm(torch.nn.functional.gelu(self.patch(ecg)).transpose(1, 2)))

    src = tmp_path / "ecg_encoder.onnx"
    torch.onnx.export(TinyEcgEncoder().eval(), (torch.randn(2, 12, 5000),), str(src), dynamo=True,
                      opset_version=18, input_names=["ecg"], output_names=["ecg_embeds"],
                      dynamic_shapes={"ecg": {0: torch.export.Dim("batch", max=8)}})
    calibration_paths = sorted((shared_ecg / "cinc2021").glob("*.hea"))[:8]
    samples = [{"ecg": w[None]} for w in ecg_calibration_windows(calibration_paths)]
    dst = tmp_path / "ecg_encoder.int8.onnx"
    facts = quantize_graph("ecg_encoder", src, dst, "int8", calibration=samples)
    assert facts["method"].startswith("int8 static QDQ") and str(len(samples)) in facts["method"]
    # the patch convolution reads the raw ECG (mV, spikes beyond the calibration range): it stays float
    assert any("reads a graph input" in item for item in facts["excluded"])

    model = onnx.load(str(dst))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(np.all(z == 0) for z in zero_points)  # symmetric: what TensorRT needs
    weight_scales = [inits[n.input[1]] for n in model.graph.node
                     if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[0]].ndim >= 2]
    assert weight_scales and all(s.size > 1 for s in weight_scales)  # per-channel weights

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (src, dst)]
    for name in CHECK_RECORDS:
        check = {"ecg": to_model_input(read_record(shared_ecg / "cinc2021" / f"{name}.hea"))[0][None]}
        ref, got = (s.run(None, check) for s in sessions)
        assert relative_max_error(ref, got) <= TOLERANCES["int8"]["ecg_encoder"], name

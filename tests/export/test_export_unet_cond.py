"""The ``unet_cond`` graph of a UNet with standardised patient scalars matches torch in onnxruntime."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import torch

from uniecg_edge.export.onnx_export import export_graph
from uniecg_edge.export.spec import graph_specs
from uniecg_edge.model.unet import ConditionalUNet1d, UNetConfig


def test_standardised_scalars_export_and_match_torch(tmp_path) -> None:
    torch.manual_seed(0)
    config = dataclasses.replace(UNetConfig.tiny(), scalar_center=(0.5, 50.0, 80.0),
                                 scalar_scale=(2.0, 0.05, 1.0 / 30.0))
    unet = ConditionalUNet1d(config).eval()
    spec = graph_specs(["unet_cond"])[0]
    result = export_graph(spec, SimpleNamespace(unet=unet), tmp_path)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    cond = np.random.default_rng(0).standard_normal((3, 1, config.cond_dim)).astype(np.float32)
    sex = np.array([1, 0, 1], np.float32).reshape(3, 1, 1)
    age = np.array([30, 60, 85], np.float32).reshape(3, 1, 1)
    hr = np.array([45, 80, 140], np.float32).reshape(3, 1, 1)
    got = session.run(None, {"cond": cond, "sex": sex, "age": age, "hr": hr})
    with torch.no_grad():
        want = unet.condition_terms(*(torch.from_numpy(a) for a in (cond, sex, age, hr)))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=1e-4)
    assert not np.allclose(got[0][0], got[0][2], atol=1e-3)  # the rate moves the terms

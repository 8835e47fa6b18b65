from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.errors import LeadError
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.model.pipeline import TorchPipeline
from uniecg_edge.record import EcgRecord
from uniecg_edge.wfdb_io import read_record


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir: Path) -> TorchPipeline:
    return TorchPipeline.from_pretrained(tiny_model_dir)


def test_interpret_is_deterministic_and_provenanced(pipeline: TorchPipeline) -> None:
    record = read_record(EXAMPLE_RECORD)
    first = pipeline.interpret(record, max_new_tokens=12)
    second = pipeline.interpret(record, max_new_tokens=12)
    assert isinstance(first.text, str) and first.text == second.text
    prov = first.provenance
    assert prov["trained"] is False and prov["backend"] == "torch" and len(prov["model_sha256"]) == 64
    assert prov["stop_reason"] in {"eos", "max_new_tokens", "ecg_tokens"}
    assert set(first.claims or {}) >= {"heart_rate_bpm", "qtc_ms"}


def test_interpret_derives_missing_limb_leads_and_refuses_missing_chest_leads(pipeline: TorchPipeline) -> None:
    full = read_record(EXAMPLE_RECORD)
    keep = [i for i, n in enumerate(STANDARD_LEADS) if n not in ("III", "aVR", "aVL", "aVF")]
    eight = EcgRecord(full.signal[keep], fs=full.fs, leads=tuple(STANDARD_LEADS[i] for i in keep), name="eight")
    report = pipeline.interpret(eight, max_new_tokens=4)
    assert report.provenance["leads_derived"] == ["III", "aVR", "aVL", "aVF"]
    no_v6 = EcgRecord(full.signal[:11], fs=full.fs, leads=STANDARD_LEADS[:11], name="no_v6")
    with pytest.raises(LeadError, match="V6"):
        pipeline.interpret(no_v6)


class _Bias(nn.Module):
    """Adds a large logit to one token so the model 'chooses' it."""

    def __init__(self, head: nn.Module, token_id: int) -> None:
        super().__init__()
        self.head, self.token_id = head, token_id

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(hidden)
        logits[..., self.token_id] += 1e4
        return logits


def test_the_model_chooses_generation_by_emitting_the_ecg_tokens(tiny_model_dir: Path) -> None:
    pipe = TorchPipeline.from_pretrained(tiny_model_dir)
    model = pipe.model
    model.llm.lm_head = _Bias(model.llm.lm_head, model.gen_token_ids[0])
    result, _ = pipe.respond(model.config.prompt.generate_prompt("normal sinus rhythm"), None, max_new_tokens=8)
    assert result.stop_reason == "ecg_tokens"
    assert result.token_ids == model.gen_token_ids
    assert result.ecg_token_states is not None
    assert result.ecg_token_states.shape == (model.config.num_ecg_tokens, model.llm.config.hidden_size)
    # The collected states are those a single prefill over prompt + [ECG] tokens gives at the same positions.
    ids = pipe._prompt_ids(model.config.prompt.generate_prompt("normal sinus rhythm"))
    ids = torch.cat([ids, torch.tensor([model.gen_token_ids])], dim=1)
    with torch.no_grad():
        out = model.llm(inputs_embeds=model.embed_tokens(ids), output_hidden_states=True)
    torch.testing.assert_close(result.ecg_token_states, out.hidden_states[-1][0, -model.config.num_ecg_tokens:],
                               rtol=1e-4, atol=1e-4)
    cond, _, how = pipe.condition_from_text("normal sinus rhythm")
    assert how == "emitted" and cond.shape == (1, 1, model.unet.config.cond_dim)


def test_generate_is_deterministic_for_a_seed(pipeline: TorchPipeline) -> None:
    a = pipeline.generate("sinus rhythm", hr=70, age=50, sex="F", steps=5, scheduler="ddim", seed=3)
    b = pipeline.generate("sinus rhythm", hr=70, age=50, sex="F", steps=5, scheduler="ddim", seed=3)
    c = pipeline.generate("sinus rhythm", hr=70, age=50, sex="F", steps=5, scheduler="ddim", seed=4)
    assert a.record.signal.shape == (12, 5000) and a.record.fs == 500.0 and a.record.leads == STANDARD_LEADS
    np.testing.assert_array_equal(a.record.signal, b.record.signal)
    assert not np.array_equal(a.record.signal, c.record.signal)
    sig = a.record.signal
    np.testing.assert_allclose(sig[2], sig[1] - sig[0], atol=1e-5)  # III = II - I
    np.testing.assert_allclose(sig[5], sig[1] - sig[0] / 2, atol=1e-5)  # aVF = II - I/2
    assert a.provenance["ecg_tokens"] in {"emitted", "forced"} and a.steps == 5


def test_generate_conditions_on_patient_values(pipeline: TorchPipeline) -> None:
    a = pipeline.generate("sinus rhythm", hr=60, age=50, sex="F", steps=3, scheduler="ddim", seed=0)
    b = pipeline.generate("sinus rhythm", hr=120, age=50, sex="F", steps=3, scheduler="ddim", seed=0)
    assert not np.allclose(a.record.signal, b.record.signal)

"""Generation head: (B, K, H) -> (B, 1, D) for any K, pooling rule, normalisation, training signal, save/load."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from uniecg_edge.model.gen_head import GenerationHead, GenHeadConfig


@pytest.fixture()
def head() -> GenerationHead:
    torch.manual_seed(0)
    return GenerationHead(GenHeadConfig.tiny()).eval()


@pytest.mark.parametrize("k", [1, 4, 7])
def test_any_number_of_tokens_gives_one_condition_vector(head: GenerationHead, k: int) -> None:
    with torch.inference_mode():
        cond = head(torch.randn(3, k, 64))
    assert cond.shape == (3, 1, 32)


def test_one_token_reduces_to_the_per_token_mlp(head: GenerationHead) -> None:
    states = torch.randn(2, 1, 64)
    x = F.layer_norm(states, (64,), head.norm.weight, head.norm.bias)
    expected = F.linear(F.gelu(F.linear(x, head.fc1.weight, head.fc1.bias)), head.fc2.weight, head.fc2.bias)
    with torch.inference_mode():
        torch.testing.assert_close(head(states), expected)


def test_pooling_is_a_convex_combination_of_token_values(head: GenerationHead) -> None:
    states = torch.randn(1, 4, 64)
    with torch.inference_mode():
        per_token = torch.cat([head(states[:, i : i + 1]) for i in range(4)], dim=1)  # (1, 4, D)
        pooled = head(states)
        shuffled = head(states[:, torch.tensor([2, 0, 3, 1])])
    torch.testing.assert_close(pooled, shuffled, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(pooled, per_token.mean(dim=1, keepdim=True))  # learned, not uniform weights
    lo, hi = per_token.min(dim=1, keepdim=True).values, per_token.max(dim=1, keepdim=True).values
    assert bool(((pooled >= lo - 1e-6) & (pooled <= hi + 1e-6)).all())


def test_l2_normalised_output_has_unit_norm() -> None:
    torch.manual_seed(0)
    head = GenerationHead(GenHeadConfig(num_tokens=3, hidden_dim=16, cond_dim=8, mlp_dim=16, l2_normalize=True))
    with torch.inference_mode():
        norms = head(torch.randn(5, 3, 16)).norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


def test_every_parameter_receives_a_gradient(head: GenerationHead) -> None:
    head.train()
    target = torch.randn(2, 1, 32)
    F.mse_loss(head(torch.randn(2, 4, 64)), target).backward()
    for name, param in head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_diffusets_preset_size_matches_the_budgeted_two_layer_mlp() -> None:
    with torch.device("meta"):
        head = GenerationHead(GenHeadConfig.diffusets(hidden_dim=4096))
    mlp = 4096 * 4096 + 4096 + 4096 * 1536 + 1536  # model-facts §5.1 #4: 2-layer MLP 4096 -> 4096 -> 1536
    extra = 2 * 4096 + 4096 + 1  # LayerNorm + score
    assert sum(p.numel() for p in head.parameters()) == mlp + extra


def test_rejects_wrong_hidden_width(head: GenerationHead) -> None:
    with pytest.raises(ValueError, match="expects"):
        head(torch.randn(1, 4, 32))


def test_save_and_load_round_trip(head: GenerationHead, tmp_path) -> None:
    loaded = GenerationHead.from_pretrained(head.save_pretrained(tmp_path / "head")).eval()
    assert loaded.config == head.config
    states = torch.randn(2, 4, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(states), head(states))

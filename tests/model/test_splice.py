"""Splicing ECG embeddings at ``<ecg>``: against a loop reference, left/right padding, label mapping, errors,
export, and an LLM check that a left-padded row gives the same logits as the same row unpadded."""

from __future__ import annotations

import pytest
import torch

from uniecg_edge.model.llm import build_llm, tiny_llama
from uniecg_edge.model.splice import expand_ids_for_splice, splice_ecg_embeddings

ECG = 5  # placeholder id in these tests
PAD = 0


def _loop_reference(input_ids, embeds, ecg, mask):
    """Row by row with Python lists: the obvious way."""
    rows_e, rows_m = [], []
    for b in range(input_ids.shape[0]):
        p = input_ids[b].tolist().index(ECG)
        rows_e.append(torch.cat([embeds[b, :p], ecg[b], embeds[b, p + 1 :]]))
        rows_m.append(torch.cat([mask[b, :p], torch.ones(ecg.shape[1], dtype=mask.dtype), mask[b, p + 1 :]]))
    return torch.stack(rows_e), torch.stack(rows_m)


def test_matches_the_loop_reference_with_placeholders_anywhere() -> None:
    torch.manual_seed(0)
    input_ids = torch.tensor([[ECG, 7, 8, 9, 10], [7, 8, ECG, 9, 10], [7, 8, 9, 10, ECG]])
    embeds, ecg = torch.randn(3, 5, 4), torch.randn(3, 3, 4)
    mask = torch.ones(3, 5, dtype=torch.long)
    out, out_mask, positions = splice_ecg_embeddings(input_ids, embeds, ecg, ECG, mask)
    ref, ref_mask = _loop_reference(input_ids, embeds, ecg, mask)
    assert out.shape == (3, 7, 4)
    assert torch.equal(out, ref)
    assert torch.equal(out_mask, ref_mask)
    assert torch.equal(positions, torch.arange(7).expand(3, 7))


def test_left_padding_keeps_pads_left_and_starts_positions_at_zero() -> None:
    torch.manual_seed(0)
    input_ids = torch.tensor([[PAD, PAD, 7, ECG, 8], [7, 8, 9, ECG, 10]])
    mask = (input_ids != PAD).long()
    embeds, ecg = torch.randn(2, 5, 4), torch.randn(2, 2, 4)
    out, out_mask, positions = splice_ecg_embeddings(input_ids, embeds, ecg, ECG, mask)
    ref, ref_mask = _loop_reference(input_ids, embeds, ecg, mask)
    assert torch.equal(out, ref) and torch.equal(out_mask, ref_mask)
    assert out_mask.tolist() == [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]]
    assert positions.tolist() == [[0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5]]
    assert out_mask.dtype == torch.long and positions.dtype == torch.long


def test_right_padding_and_missing_mask() -> None:
    torch.manual_seed(0)
    input_ids = torch.tensor([[ECG, 7, PAD], [ECG, 7, 8]])
    mask = (input_ids != PAD).long()
    embeds, ecg = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    _, out_mask, positions = splice_ecg_embeddings(input_ids, embeds, ecg, ECG, mask)
    assert out_mask.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert positions[0, :4].tolist() == [0, 1, 2, 3]
    _, ones, _ = splice_ecg_embeddings(input_ids, embeds, ecg, ECG, None)
    assert bool((ones == 1).all()) and ones.shape == (2, 5)


@pytest.mark.parametrize(
    "input_ids, row, found",
    [([[ECG, 7], [7, 8]], 1, 0), ([[ECG, ECG], [ECG, 8]], 0, 2)],
)
def test_rows_without_exactly_one_placeholder_are_named(input_ids, row: int, found: int) -> None:
    ids = torch.tensor(input_ids)
    with pytest.raises(ValueError, match=f"row {row}: expected exactly one <ecg> placeholder .* found {found}"):
        splice_ecg_embeddings(ids, torch.randn(2, 2, 4), torch.randn(2, 3, 4), ECG)


def test_shape_mismatches_are_value_errors() -> None:
    ids = torch.tensor([[ECG, 7]])
    with pytest.raises(ValueError, match="ecg_embeds"):
        splice_ecg_embeddings(ids, torch.randn(1, 2, 4), torch.randn(1, 3, 8), ECG)
    with pytest.raises(ValueError, match="attention_mask"):
        splice_ecg_embeddings(ids, torch.randn(1, 2, 4), torch.randn(1, 3, 4), ECG, torch.ones(1, 3))


def test_expand_ids_maps_labels_and_finds_generation_tokens() -> None:
    input_ids = torch.tensor([[PAD, 7, ECG, 8, 20, 21], [7, ECG, 8, 9, 20, 21]])
    labels = torch.tensor([[-100, -100, -100, 8, 20, 21], [-100, -100, 8, 9, 20, 21]])
    spliced_labels = expand_ids_for_splice(labels, input_ids, ECG, num_ecg=3)
    assert spliced_labels.tolist() == [
        [-100, -100, -100, -100, -100, 8, 20, 21],
        [-100, -100, -100, -100, 8, 9, 20, 21],
    ]
    spliced_ids = expand_ids_for_splice(input_ids, input_ids, ECG, num_ecg=3, fill_value=-1)
    table = torch.randn(30, 4)
    embeds, _, _ = splice_ecg_embeddings(input_ids, table[input_ids], torch.randn(2, 3, 4), ECG)
    where = spliced_ids == 20
    assert where.sum() == 2
    assert torch.equal(embeds[where], table[20].expand(2, -1))  # same slots in both layouts


def test_traces_with_torch_export() -> None:
    def splice(ids, embeds, ecg, mask):
        return splice_ecg_embeddings(ids, embeds, ecg, ECG, mask, check=False)

    class Splice(torch.nn.Module):
        def forward(self, ids, embeds, ecg, mask):
            return splice(ids, embeds, ecg, mask)

    ids = torch.tensor([[PAD, 7, ECG, 8], [7, 8, 9, ECG]])
    args = (ids, torch.randn(2, 4, 4), torch.randn(2, 3, 4), (ids != PAD).long())
    batch, seq = torch.export.Dim("batch", min=1, max=16), torch.export.Dim("seq", min=2, max=512)
    program = torch.export.export(
        Splice(), args, dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq}, {0: batch}, {0: batch, 1: seq})
    )
    for got, want in zip(program.module()(*args), splice(*args), strict=True):
        assert torch.equal(got, want)


def test_left_padded_row_gives_the_same_logits_as_unpadded() -> None:
    torch.manual_seed(0)
    llm = build_llm(tiny_llama(vocab_size=64))
    table = llm.get_input_embeddings()
    ecg = torch.randn(1, 4, 64)
    short = torch.tensor([[1, 9, ECG, 11, 12]])
    padded = torch.tensor([[PAD, PAD, PAD, 1, 9, ECG, 11, 12], [1, 9, 10, ECG, 11, 12, 13, 14]])
    with torch.inference_mode():
        e1, m1, p1 = splice_ecg_embeddings(short, table(short), ecg, ECG)
        alone = llm(inputs_embeds=e1, attention_mask=m1, position_ids=p1).logits[0]
        e2, m2, p2 = splice_ecg_embeddings(
            padded, table(padded), torch.cat([ecg, torch.randn(1, 4, 64)]), ECG, (padded != PAD).long()
        )
        batched = llm(inputs_embeds=e2, attention_mask=m2, position_ids=p2).logits[0, 3:]
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)

"""Splice ECG embeddings into a prompt's input embeddings at its ``<ecg>`` placeholder (LLaVA-style).

Every row holds exactly one placeholder, which is replaced by that row's N ECG embeddings, so all rows grow by
the same N - 1 and padding stays where it was (left padding stays left). Everything is done with one gather
over ``cat([text, ecg])`` per output position: no Python loop over rows, traceable for export
(pass ``check=False`` there: the one-placeholder check reads tensor values).
"""

from __future__ import annotations

import torch


def _placeholder_positions(input_ids: torch.Tensor, ecg_token_id: int, check: bool) -> torch.Tensor:
    """(B,) index of each row's ``<ecg>`` placeholder; ``ValueError`` naming the row if it has not exactly one."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, seq), got {tuple(input_ids.shape)}")
    is_placeholder = input_ids == ecg_token_id
    if check:
        counts = is_placeholder.sum(dim=1)
        bad = torch.nonzero(counts != 1).flatten().tolist()
        if bad:
            row = bad[0]
            raise ValueError(
                f"row {row}: expected exactly one <ecg> placeholder (token id {ecg_token_id}), "
                f"found {int(counts[row])}" + (f" (rows with the same problem: {bad})" if len(bad) > 1 else "")
            )
    return torch.argmax(is_placeholder.to(torch.int32), dim=1)


def _splice_index(positions: torch.Tensor, seq_len: int, num_ecg: int) -> torch.Tensor:
    """(B, S - 1 + N) indices into ``cat([text (S), ecg (N)])`` along the sequence axis."""
    out_len = seq_len - 1 + num_ecg
    j = torch.arange(out_len, device=positions.device).unsqueeze(0)  # (1, T)
    p = positions.unsqueeze(1)  # (B, 1)
    before = j < p
    inside = (j >= p) & (j < p + num_ecg)
    text_after = j - num_ecg + 1
    ecg_index = seq_len + (j - p)
    return torch.where(before, j, torch.where(inside, ecg_index, text_after))


def splice_ecg_embeddings(
    input_ids: torch.Tensor,
    inputs_embeds: torch.Tensor,
    ecg_embeds: torch.Tensor,
    ecg_token_id: int,
    attention_mask: torch.Tensor | None = None,
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace each row's ``<ecg>`` embedding by its N ECG embeddings.

    Parameters
    ----------
    input_ids : (B, S) long, with exactly one ``ecg_token_id`` per row.
    inputs_embeds : (B, S, H) the token embeddings of ``input_ids``.
    ecg_embeds : (B, N, H) projected ECG tokens.
    attention_mask : (B, S) 1 = real token, 0 = padding (left or right); ``None`` means all ones.

    Returns
    -------
    embeds (B, S - 1 + N, H), attention_mask (B, S - 1 + N) (dtype of the input mask, long if none; the ECG
    positions are 1), position_ids (B, S - 1 + N) long = cumsum(mask) - 1 clamped at 0, so the first real
    token of a left-padded row is at position 0.
    """
    batch, seq_len = input_ids.shape
    if inputs_embeds.shape[:2] != (batch, seq_len):
        raise ValueError(f"inputs_embeds {tuple(inputs_embeds.shape)} does not match input_ids {(batch, seq_len)}")
    if ecg_embeds.dim() != 3 or ecg_embeds.shape[0] != batch or ecg_embeds.shape[2] != inputs_embeds.shape[2]:
        raise ValueError(
            f"ecg_embeds must be (batch={batch}, N, H={inputs_embeds.shape[2]}), got {tuple(ecg_embeds.shape)}"
        )
    num_ecg = ecg_embeds.shape[1]
    positions = _placeholder_positions(input_ids, ecg_token_id, check)
    index = _splice_index(positions, seq_len, num_ecg)

    source = torch.cat([inputs_embeds, ecg_embeds.to(inputs_embeds.dtype)], dim=1)
    embeds = torch.gather(source, 1, index.unsqueeze(-1).expand(-1, -1, source.shape[-1]))

    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} does not match input_ids {(batch, seq_len)}")
    ones = torch.ones((batch, num_ecg), dtype=attention_mask.dtype, device=attention_mask.device)
    mask = torch.gather(torch.cat([attention_mask, ones], dim=1), 1, index)
    position_ids = (torch.cumsum(mask.to(torch.long), dim=1) - 1).clamp(min=0)
    return embeds, mask, position_ids


def expand_ids_for_splice(
    ids: torch.Tensor,
    input_ids: torch.Tensor,
    ecg_token_id: int,
    num_ecg: int,
    fill_value: int = -100,
    check: bool = True,
) -> torch.Tensor:
    """Lay ``ids`` (B, S), aligned with ``input_ids``, out like the spliced sequence (B, S - 1 + N): the
    placeholder's slot becomes N copies of ``fill_value``.

    Use it for training labels (``fill_value=-100``: no loss on ECG positions) or, with ``ids=input_ids``, to
    find the positions of the ``[ECG_i]`` tokens in the spliced sequence.
    """
    if ids.shape != input_ids.shape:
        raise ValueError(f"ids {tuple(ids.shape)} must have the shape of input_ids {tuple(input_ids.shape)}")
    positions = _placeholder_positions(input_ids, ecg_token_id, check)
    index = _splice_index(positions, input_ids.shape[1], num_ecg)
    filler = torch.full((ids.shape[0], num_ecg), fill_value, dtype=ids.dtype, device=ids.device)
    return torch.gather(torch.cat([ids, filler], dim=1), 1, index)

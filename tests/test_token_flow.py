"""The decoding rules both loops share: stops, the token limit, and the forced [ECG] tokens."""

from __future__ import annotations

from uniecg_edge.token_flow import ECG_TOKENS, EOS, MAX_NEW_TOKENS, STOP_TOKEN, TokenFlow

EOS_ID, GEN = 2, (10, 11, 12)


def run(picks: list[int], **kwargs: object) -> tuple[TokenFlow, list[int], int]:
    """Drive a flow as the loops do: ``picks`` are what the model would choose, in order."""
    flow = TokenFlow(max_new_tokens=kwargs.pop("max_new_tokens", 5), eos_token_id=EOS_ID,  # type: ignore[arg-type]
                     gen_token_ids=GEN, **kwargs)  # type: ignore[arg-type]
    fed, collected, it = [], 0, iter(picks)
    next_id = next(it)
    while (token := flow.admit(next_id)) is not None:
        fed.append(token)
        if flow.collecting:
            collected += 1
            if flow.collected():
                break
            continue
        next_id = next(it)
    return flow, fed, collected


def test_eos_ends_without_feeding_it() -> None:
    flow, fed, _ = run([5, 6, EOS_ID, 7])
    assert fed == [5, 6] == flow.token_ids and flow.stop_reason == EOS


def test_limit_counts_free_tokens() -> None:
    flow, fed, _ = run([5] * 10, max_new_tokens=3)
    assert fed == [5, 5, 5] and flow.stop_reason == MAX_NEW_TOKENS


def test_ecg_0_forces_the_rest_whatever_the_model_picks() -> None:
    flow, fed, collected = run([5, GEN[0], 99, 98, 97])  # after [ECG_0] the picks are ignored
    assert fed == [5, *GEN] and collected == len(GEN) and flow.stop_reason == ECG_TOKENS


def test_forced_tokens_do_not_count_against_the_limit() -> None:
    flow, fed, _ = run([5, 5, GEN[0]], max_new_tokens=3)
    assert fed == [5, 5, *GEN] and flow.stop_reason == ECG_TOKENS


def test_extra_stop_tokens_and_later_ecg_tokens_alone() -> None:
    flow, fed, _ = run([5, 7, 8], stop_token_ids=(7, EOS_ID))
    assert fed == [5] and flow.stop_reason == STOP_TOKEN
    flow, fed, collected = run([GEN[1], EOS_ID])  # [ECG_1] without [ECG_0] is an ordinary token
    assert fed == [GEN[1]] and collected == 0 and flow.stop_reason == EOS

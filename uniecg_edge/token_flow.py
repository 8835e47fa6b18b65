"""The rules of a decoding loop, shared by the torch reference (``model.decoding``) and the runtime
(``runtime.generation``) so that both stop and force tokens identically. No torch, no numpy.

For each token the loop picks, :meth:`TokenFlow.admit` says what to feed next, or ``None`` to stop:

* end of sequence (``eos``) or one of the extra stop tokens (``stop_token``) ends the answer;
* ``max_new_tokens`` free tokens end it (``max_new_tokens``); the forced [ECG] tokens do not count against it;
* ``[ECG_0]`` makes the model's choice to generate: ``[ECG_1] .. [ECG_K-1]`` are then fed in turn whatever the
  model would pick, the last-layer hidden state after each of the K is collected (:attr:`collecting`), and
  decoding stops once all K are in (``ecg_tokens``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

EOS, STOP_TOKEN, ECG_TOKENS, MAX_NEW_TOKENS = "eos", "stop_token", "ecg_tokens", "max_new_tokens"


class TokenFlow:
    """One sequence's decoding state: tokens fed, [ECG] tokens still to force, why it stopped."""

    def __init__(self, *, max_new_tokens: int, eos_token_id: int, gen_token_ids: Sequence[int],
                 stop_token_ids: Iterable[int] = ()) -> None:
        self.max_new_tokens = max_new_tokens
        self.eos_token_id = int(eos_token_id)
        self.gen = [int(t) for t in gen_token_ids]
        self.stops = {int(t) for t in stop_token_ids} - {self.eos_token_id}
        self.token_ids: list[int] = []
        self.stop_reason = MAX_NEW_TOKENS
        self._forced: list[int] = []
        self._in_gen_run = False
        self._collected = 0

    @property
    def collecting(self) -> bool:
        """Whether the token just fed is one of the [ECG] tokens: the loop keeps its hidden state."""
        return self._in_gen_run

    def admit(self, picked: int) -> int | None:
        """The token to feed after the model picked ``picked``, or ``None`` when decoding ends here."""
        if not self._forced:
            if self._in_gen_run:
                return None
            if picked == self.eos_token_id:
                self.stop_reason = EOS
                return None
            if picked in self.stops:
                self.stop_reason = STOP_TOKEN
                return None
            if len(self.token_ids) >= self.max_new_tokens:
                return None
            if self.gen and picked == self.gen[0]:
                self._forced = list(self.gen)
                self._in_gen_run = True
        token = self._forced.pop(0) if self._forced else int(picked)
        self.token_ids.append(token)
        return token

    def collected(self) -> bool:
        """Count one collected [ECG]-token state; ``True`` once all K are in (decoding then stops)."""
        self._collected += 1
        if self._collected == len(self.gen):
            self.stop_reason = ECG_TOKENS
            return True
        return False

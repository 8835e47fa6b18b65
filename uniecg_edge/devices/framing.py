"""Resynchronising frame scanner shared by the binary serial protocols.

Bytes arrive in arbitrary pieces (a read may end inside a packet) and may be corrupted, truncated or mixed with
text. ``FrameScanner.feed`` keeps a buffer and returns the frames it can confirm, in order. A candidate at offset
``i`` (header, length, footer and value checks passed, see ``FrameFormat``) is accepted when

1. its counter continues the last accepted frame and the next header starts right after it (normal flow); or
2. the frame right after it is valid and continues its counter (or is a few counts ahead, packets having been
   lost, with this frame's counter between the last accepted one and it): two frames confirm a jump or the first
   frame of a stream. When noise or a damaged frame follows instead, a valid frame up to ``LOOKAHEAD`` frame
   lengths later confirms it the same way, unless a valid frame claims the same counter, a confirmed run of
   frames that leaves it out comes first, or a confirmed frame overlaps it; or
3. its counter continues the last accepted frame but corruption follows it, and no overlapping candidate is
   confirmed by rule 2 (so the last good packet before a burst of noise is kept, and a false frame inside the
   noise cannot swallow the good packet that follows).

Anything else drops ONE byte and rescans, never a whole frame, so the valid packet that follows corruption is
found. Formats without a counter use contiguity with the previous frame instead. The scanner waits (returns
nothing yet) when a decision needs bytes that have not arrived; ``flush()`` decides on what is left at the end of
a stream. Every loop iteration consumes a byte or waits, so no input can make it spin.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

_NEED = None  # "not decidable yet: wait for more bytes"
LOOKAHEAD = 4  # frames of noise a confirming successor may sit behind


@dataclass(frozen=True)
class Frame:
    """One accepted frame: its raw bytes and packet counter (``None`` for formats without one)."""

    data: bytes
    counter: int | None


class FrameFormat(abc.ABC):
    """A header/length/footer framing; subclasses describe one protocol."""

    header: bytes
    max_length: int
    counter_modulus: int | None = None  # None: the format has no packet counter
    repeats_allowed: bool = False  # a repeated counter is a new sample (Olimex captures)

    @abc.abstractmethod
    def length_at(self, buf: bytearray, i: int) -> int | None:
        """Length of the frame whose header starts at ``i``; ``None``: need more bytes; 0: not a frame."""

    @abc.abstractmethod
    def is_valid(self, buf: bytearray, i: int, length: int) -> bool:
        """Footer and value checks of the complete candidate ``buf[i:i+length]``."""

    def counter(self, buf: bytearray, i: int) -> int | None:
        return None


@dataclass
class ScanStats:
    frames: int = 0
    skipped_bytes: int = 0
    rejected: int = 0  # candidates with a header that were not accepted


class FrameScanner:
    """Turns a byte stream into confirmed frames; see the module docstring for the acceptance rules."""

    def __init__(self, fmt: FrameFormat) -> None:
        self.fmt = fmt
        self.stats = ScanStats()
        self.reset()

    def reset(self) -> None:
        """Forget buffered bytes and counter history (after a reconnection)."""
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self._last_counter: int | None = None
        self._last_end: int | None = None  # stream offset just after the last accepted frame

    @property
    def buffered(self) -> int:
        return len(self._buf)

    # ---- candidate checks ----------------------------------------------------------------------------------
    def _candidate(self, i: int) -> int | None:
        """Length of a structurally valid frame at ``i``, 0 if there is none, ``None`` if undecidable yet."""
        buf = self._buf
        if len(buf) < i + len(self.fmt.header):
            return _NEED
        if not buf.startswith(self.fmt.header, i):
            return 0
        length = self.fmt.length_at(buf, i)
        if length is None:
            return _NEED
        if length <= 0:
            return 0
        if len(buf) < i + length:
            return _NEED
        return length if self.fmt.is_valid(buf, i, length) else 0

    def _continues(self, prev_counter: int | None, prev_end: int | None, counter: int | None, start: int) -> bool:
        modulus = self.fmt.counter_modulus
        if modulus is None:
            return prev_end is not None and start == prev_end
        if prev_counter is None or counter is None:
            return False
        step = (counter - prev_counter) % modulus
        return step == 1 or (step == 0 and self.fmt.repeats_allowed)

    def _follows(self, counter: int | None, later: int | None) -> bool:
        """Is ``later`` a plausible counter a few frames after ``counter`` (some of them lost)?"""
        modulus = self.fmt.counter_modulus
        if modulus is None or counter is None or later is None:
            return False
        step = (later - counter) % modulus
        return 1 <= step <= LOOKAHEAD + 1 or (step == 0 and self.fmt.repeats_allowed)

    def _between_last(self, counter: int | None, later: int | None) -> bool:
        """Does ``counter`` lie between the last accepted counter and ``later`` (a damaged counter does not)?"""
        modulus = self.fmt.counter_modulus
        if self._last_counter is None or modulus is None or counter is None or later is None:
            return True
        return (counter - self._last_counter) % modulus < (later - self._last_counter) % modulus

    def _forward_confirmed(self, i: int, length: int, counter: int | None, final: bool) -> bool | None:
        """Is the frame at ``i`` followed by a valid frame that continues it?

        At the end of a stream (``final``) a frame that ends exactly where the bytes end counts as confirmed:
        nothing can confirm it, nothing contradicts it.
        """
        j = i + length
        if final and j == len(self._buf):
            return True
        next_length = self._candidate(j)
        if next_length is _NEED:
            return False if final else _NEED
        if next_length == 0:
            return False
        later = self.fmt.counter(self._buf, j)
        if self._continues(counter, self._base + j, later, self._base + j):
            return True
        # the next frame is a few counts ahead (packets lost right after this one) and this one fits in between
        return self._follows(counter, later) and self._between_last(counter, later)

    def _confirmed_ahead(self, i: int, length: int, counter: int | None, final: bool) -> bool | None:
        """Does a valid frame whose counter follows this one's start within ``LOOKAHEAD`` frames after it?

        Confirms a packet that has corruption on both sides (a lost packet before, noise or a damaged packet
        after). Formats without a counter cannot be confirmed across noise.
        """
        if self.fmt.counter_modulus is None:
            return False
        buf = self._buf
        header = self.fmt.header
        limit = i + length + LOOKAHEAD * self.fmt.max_length
        k = buf.find(header, i + length + 1, limit + len(header))
        while 0 <= k < limit:
            k_length = self._candidate(k)
            if k_length is _NEED:
                return False if final else _NEED
            if k_length:
                later = self.fmt.counter(buf, k)
                if later == counter and not self.fmt.repeats_allowed:
                    return False  # a valid frame claims the same counter: this one's counter is the damaged one
                if self._follows(counter, later) and self._between_last(counter, later):
                    return True
                # a valid frame that does not fit: if the frame after it continues it, the stream goes on without us
                after = self._candidate(k + k_length)
                if after is _NEED:
                    return False if final else _NEED
                if after and self._continues(later, None, self.fmt.counter(buf, k + k_length), -1):
                    return False
            k = buf.find(header, k + 1, limit + len(header))
        if len(buf) < limit + len(header) and not final:
            return _NEED
        return False

    def _overlapping_confirmed(self, i: int, length: int, final: bool) -> bool | None:
        """Does a forward-confirmed candidate start inside ``(i, i + length)``?"""
        buf = self._buf
        header = self.fmt.header
        k = buf.find(header, i + 1, i + length + len(header) - 1)
        while 0 <= k < i + length:
            k_length = self._candidate(k)
            if k_length is _NEED and not final:
                return _NEED
            if k_length:
                confirmed = self._forward_confirmed(k, k_length, self.fmt.counter(buf, k), final)
                if confirmed is _NEED or confirmed:
                    return confirmed
            k = buf.find(header, k + 1, i + length + len(header) - 1)
        return False

    # ---- scanning ------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames confirmed so far (possibly none)."""
        if data:
            self._buf += data
        return self._scan(final=False)

    def flush(self) -> list[Frame]:
        """At the end of a stream: accept what rules 1-3 would accept if no more bytes were coming."""
        return self._scan(final=True)

    def _accept(self, out: list[Frame], i: int, length: int, counter: int | None) -> int:
        out.append(Frame(bytes(self._buf[i : i + length]), counter))
        self._last_counter = counter
        self._last_end = self._base + i + length
        self.stats.frames += 1
        return i + length

    def _scan(self, final: bool) -> list[Frame]:
        buf = self._buf
        fmt = self.fmt
        header = fmt.header
        out: list[Frame] = []
        pos = 0
        while True:
            i = buf.find(header, pos)
            if i < 0:
                keep = 0 if final else len(header) - 1
                new_pos = max(pos, len(buf) - keep)
                self.stats.skipped_bytes += new_pos - pos
                pos = new_pos
                break
            self.stats.skipped_bytes += i - pos
            pos = i
            length = self._candidate(i)
            if length is _NEED:
                if final:
                    self.stats.rejected += 1
                    pos = i + 1
                    self.stats.skipped_bytes += 1
                    continue
                break
            if length == 0:
                self.stats.rejected += 1
                self.stats.skipped_bytes += 1
                pos = i + 1
                continue
            counter = fmt.counter(buf, i)
            if self._continues(self._last_counter, self._last_end, counter, self._base + i):
                # rule 1: the next header follows
                end = i + length
                if len(buf) >= end + len(header) and buf.startswith(header, end):
                    pos = self._accept(out, i, length, counter)
                    continue
                if len(buf) < end + len(header) and not final:
                    break
                # rule 3: corruption follows; keep it unless a confirmed frame overlaps it
                overlap = self._overlapping_confirmed(i, length, final)
                if overlap is _NEED:
                    break
                if not overlap:
                    pos = self._accept(out, i, length, counter)
                    continue
            else:
                # rule 2: a jump (or the first frame) needs the next frame to confirm it
                confirmed = self._forward_confirmed(i, length, counter, final)
                if confirmed is False and self._candidate(i + length) == 0:
                    # noise or a damaged frame right after it (not a valid frame that contradicts it): a later frame
                    # may still confirm it, unless a confirmed frame overlaps it
                    confirmed = self._confirmed_ahead(i, length, counter, final)
                    if confirmed:
                        overlap = self._overlapping_confirmed(i, length, final)
                        confirmed = _NEED if overlap is _NEED else not overlap
                if confirmed is _NEED:
                    break
                if confirmed:
                    pos = self._accept(out, i, length, counter)
                    continue
            self.stats.rejected += 1
            self.stats.skipped_bytes += 1
            pos = i + 1
        if pos:
            del buf[:pos]
            self._base += pos
        return out

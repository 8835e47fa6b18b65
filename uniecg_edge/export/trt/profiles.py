"""TensorRT optimization profiles (min / opt / max shape per dynamic input) from the bundle manifest.

The manifest's per-input ``profile`` wins. Inputs without one get a fallback derived from the input's shape in
the manifest: integer dimensions are fixed, named (dynamic) dimensions get a range by their role:

==========  =====================================  ===========================================
role        axis names (case-insensitive)          min / opt / max
==========  =====================================  ===========================================
batch       contains ``batch``                     1 / opt_batch / max_batch   (default 1 / 1 / 4)
past        contains ``past``                      0 / opt_past / max_past     (past length 0 = prefill)
total       contains ``total`` or ``+``            seq + past at each of min, opt and max
seq         contains ``seq``, ``len`` or ``token``  1 / opt_seq / max_seq
==========  =====================================  ===========================================

``total`` (the attention mask, past + seq) is the sum at every point so that each of the three shapes is one
consistent call of the decoder. When a manifest profile ranges a named axis (``seq`` of ``inputs_embeds``), the
fallback of every other input uses that same range for that name and for its role, so the min, opt and max
shapes stay consistent across inputs. A named axis of no known role is refused: give it a manifest profile.
Everything here is pure and tested without TensorRT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ...errors import ConfigError

Shape = tuple[int, ...]
PROMPT_ALLOWANCE = 256  # text prompt tokens assumed on top of the ECG embeddings and the generated tokens
DEFAULT_MAX_CONTEXT = 1024


@dataclass(frozen=True)
class ShapeRange:
    """The min / opt / max shapes of one input in one optimization profile."""

    min: Shape
    opt: Shape
    max: Shape

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass(frozen=True)
class ProfileLimits:
    """Ranges of the dynamic axes for the fallback profile (saved in engine.json)."""

    max_batch: int = 4
    opt_batch: int = 1
    max_seq: int = DEFAULT_MAX_CONTEXT
    opt_seq: int = 64
    max_past: int = DEFAULT_MAX_CONTEXT
    opt_past: int = 128

    def __post_init__(self) -> None:
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ConfigError(f"batch range 1..{self.max_batch} with opt {self.opt_batch} is invalid")
        if not 1 <= self.opt_seq <= self.max_seq:
            raise ConfigError(f"sequence range 1..{self.max_seq} with opt {self.opt_seq} is invalid")
        if not 0 <= self.opt_past <= self.max_past:
            raise ConfigError(f"past range 0..{self.max_past} with opt {self.opt_past} is invalid")

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, max_batch: int = 4, max_context: int | None = None
                    ) -> ProfileLimits:
        """Limits for a bundle's ``config.json``: the context holds the ECG embeddings, a prompt allowance and
        ``max_new_tokens`` (rounded up to a multiple of 64) unless ``max_context`` is given."""
        if max_context is None:
            try:
                needed = int(config["num_ecg_embeddings"]) + PROMPT_ALLOWANCE + int(config["max_new_tokens"])
                max_context = -(-needed // 64) * 64
            except (KeyError, TypeError, ValueError):
                max_context = DEFAULT_MAX_CONTEXT
        if max_context < 1:
            raise ConfigError(f"max context {max_context} must be >= 1")
        return cls(max_batch=max_batch, opt_batch=1, max_seq=max_context, opt_seq=min(64, max_context),
                   max_past=max_context, opt_past=min(128, max_context))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _role(axis: str) -> str | None:
    name = axis.lower()
    for role, needles in (("batch", ("batch",)), ("past", ("past",)), ("total", ("total", "+")),
                          ("seq", ("seq", "len", "token"))):
        if any(n in name for n in needles):
            return role
    return None


AxisRange = tuple[int, int, int]  # min, opt, max of one named axis


def role_ranges(limits: ProfileLimits, known_axes: Mapping[str, AxisRange] | None = None) -> dict[str, AxisRange]:
    """The range of each axis role: from ``limits``, overridden by named axes that manifest profiles already
    range (so a fallback input agrees with them), and ``total`` = seq + past at each point."""
    ranges = {"batch": (1, limits.opt_batch, limits.max_batch), "seq": (1, limits.opt_seq, limits.max_seq),
              "past": (0, limits.opt_past, limits.max_past)}
    for axis, rng in (known_axes or {}).items():
        role = _role(axis)
        if role in ranges:
            ranges[role] = rng
    seq, past = ranges["seq"], ranges["past"]
    ranges["total"] = (seq[0] + past[0], seq[1] + past[1], seq[2] + past[2])
    return ranges


def fallback_range(graph: str, input_name: str, shape: Sequence[int | str | None], limits: ProfileLimits,
                   known_axes: Mapping[str, AxisRange] | None = None) -> ShapeRange:
    """The min / opt / max of an input from its manifest shape: ints fixed; a named axis takes the range that a
    manifest profile gives the same name, else the range of its role."""
    known = dict(known_axes or {})
    by_role = role_ranges(limits, known)
    mins, opts, maxs = [], [], []
    for axis in shape:
        if isinstance(axis, int) and axis >= 0:
            lo = mid = hi = axis
        elif isinstance(axis, str) and axis in known:
            lo, mid, hi = known[axis]
        else:
            role = _role(str(axis)) if isinstance(axis, str) else None
            if role is None:
                raise ConfigError(f"graph {graph} input {input_name}: dynamic axis {axis!r} has no known role "
                                  "(batch/seq/past/total); give the input a 'profile' in manifest.json")
            lo, mid, hi = by_role[role]
        mins.append(lo)
        opts.append(mid)
        maxs.append(hi)
    return ShapeRange(tuple(mins), tuple(opts), tuple(maxs))


def _known_axes(graph: str, declared: Mapping[str, Sequence[Any]], ranged: Mapping[str, ShapeRange]
                ) -> dict[str, AxisRange]:
    """Named axes ranged by manifest profiles; the same name ranged two ways is refused."""
    known: dict[str, AxisRange] = {}
    where: dict[str, str] = {}
    for name, rng in ranged.items():
        for index, axis in enumerate(declared.get(name) or ()):
            if not isinstance(axis, str) or index >= len(rng.min):
                continue
            value = (rng.min[index], rng.opt[index], rng.max[index])
            if axis in known and known[axis] != value:
                raise ConfigError(f"graph {graph}: axis {axis!r} is {list(known[axis])} in the profile of "
                                  f"{where[axis]} but {list(value)} in that of {name}")
            known[axis], where[axis] = value, name
    return known


def _shape(value: Any, where: str) -> Shape:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{where} must be a list of integers, not {value!r}")
    return tuple(value)


def manifest_range(graph: str, input_name: str, entry: Mapping[str, Any]) -> ShapeRange:
    """A manifest ``profile`` entry ``{"min": [...], "opt": [...], "max": [...]}`` as a validated range."""
    where = f"graph {graph} profile of {input_name}"
    try:
        shapes = [_shape(entry[k], f"{where} '{k}'") for k in ("min", "opt", "max")]
    except (KeyError, TypeError):
        raise ConfigError(f"{where} needs 'min', 'opt' and 'max'") from None
    return ShapeRange(*shapes)


def validate_range(graph: str, input_name: str, rng: ShapeRange, declared: Sequence[int | str | None] | None = None
                   ) -> ShapeRange:
    """Check rank, 0 <= min <= opt <= max per axis, and that declared fixed axes are not ranged."""
    where = f"graph {graph} input {input_name}"
    if not len(rng.min) == len(rng.opt) == len(rng.max):
        raise ConfigError(f"{where}: min {list(rng.min)}, opt {list(rng.opt)}, max {list(rng.max)} differ in rank")
    for axis, (lo, mid, hi) in enumerate(zip(rng.min, rng.opt, rng.max, strict=True)):
        if not 0 <= lo <= mid <= hi:
            raise ConfigError(f"{where} axis {axis}: needs 0 <= min <= opt <= max, got {lo}, {mid}, {hi}")
    if declared is not None:
        if len(declared) != len(rng.min):
            raise ConfigError(f"{where}: profile rank {len(rng.min)} but the input has rank {len(declared)}")
        for axis, dim in enumerate(declared):
            if isinstance(dim, int) and dim >= 0 and not rng.min[axis] == rng.opt[axis] == rng.max[axis] == dim:
                raise ConfigError(f"{where} axis {axis} is fixed at {dim} but the profile ranges it "
                                  f"{rng.min[axis]}..{rng.max[axis]}")
    return rng


def graph_profile(graph: str, inputs: Sequence[Mapping[str, Any]], manifest_profile: Mapping[str, Any],
                  limits: ProfileLimits) -> dict[str, ShapeRange]:
    """One profile for a graph: every input of the manifest, from its ``profile`` entry or the fallback (which
    reuses the ranges that the profile entries give to the same axis names)."""
    declared_names = {str(i.get("name")) for i in inputs}
    stray = sorted(set(manifest_profile) - declared_names)
    if inputs and stray:
        raise ConfigError(f"graph {graph} profile names unknown input(s) {', '.join(stray)}")
    declared: dict[str, list[Any]] = {}
    for spec in inputs:
        shape = spec.get("shape")
        if isinstance(shape, (list, tuple)):
            declared[str(spec.get("name"))] = list(shape)
    ranged = {name: validate_range(graph, name, manifest_range(graph, name, entry), declared.get(name))
              for name, entry in manifest_profile.items()}
    known = _known_axes(graph, declared, ranged)
    profile: dict[str, ShapeRange] = {}
    for spec in inputs:
        name = str(spec.get("name"))
        if name in ranged:
            profile[name] = ranged[name]
        elif name in declared:
            profile[name] = validate_range(graph, name, fallback_range(graph, name, declared[name], limits, known),
                                           declared[name])
        else:
            raise ConfigError(f"graph {graph} input {name} has neither a shape nor a profile in manifest.json")
    for name, rng in ranged.items():  # a profile with no 'inputs' list in the manifest
        profile.setdefault(name, rng)
    return profile


def network_input_range(graph: str, name: str, network_shape: Sequence[int], profile: Mapping[str, ShapeRange]
                        ) -> ShapeRange | None:
    """The range to set for a parsed network input (-1 = dynamic axis), or None for a static input.

    Refuses a dynamic input without a range and a range that contradicts the network's static axes.
    """
    shape = tuple(int(d) for d in network_shape)
    rng = profile.get(name)
    if rng is None:
        if any(d < 0 for d in shape):
            raise ConfigError(f"graph {graph} input {name} has dynamic shape {list(shape)} but no profile "
                              "(add it to the manifest's 'profile')")
        return None
    declared: list[int | str | None] = [d if d >= 0 else None for d in shape]
    return validate_range(graph, name, rng, declared)


def profile_to_dict(profile: Mapping[str, ShapeRange]) -> dict[str, dict[str, list[int]]]:
    return {name: rng.to_dict() for name, rng in sorted(profile.items())}

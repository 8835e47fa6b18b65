"""Evaluation of trained UniECG models on real records (issue 6): heart rate, stated rate, rhythm words,
generation control, and a student against its teacher.

* Records: the CinC 2021 12-lead records (group ``cinc2021``, the targets) and other held-out 12-lead records
  (group ``extra``, listed separately). Each record is cut to the model's window (its first 10 s) so that the
  reference, the DSP and the model see the same signal; it then goes through the ``interpret`` command's path:
  ``pipeline.interpret(record, base_report=analyze_record(record))``.
* Reference heart rate: CinC has no beat annotations, so the reference is NeuroKit2 on lead II (``ecg_clean`` with
  its default method, ``ecg_peaks``), scored as 60 / mean RR: the ventricular rate of a 10 s ECG counts every beat
  (premature ones too), which is what the reports and the DSP state; 60 / median RR is kept beside it (with
  premature beats the two differ by 10 bpm and more) and can be scored instead.
  NeuroKit2 is a development dependency, imported lazily.
* Expected rhythm: the header's ``# Dx`` SNOMED codes (:data:`RHYTHM_CODES`; the first listed there wins, so a
  rate-named sinus code beats plain sinus rhythm). Records with none of them are left out of the rhythm score.
* The model's rhythm words: :func:`~uniecg_edge.training.evaluate.labels_in_text` (its impression where it has
  one) restricted to :data:`RHYTHM_WORDS`. ``\\bsinus rhythm`` does not match "sinus bradycardia", so each word
  counts once. A record agrees when the text names the expected rhythm and no other of the five.
* Generation control: one truth-free request per rate in the training's ``impression_rate`` style, the DSP's heart
  rate of the generated ECG against the requested one, and ``max |III - (II - I)|`` in memory and after a WFDB
  round trip (1 µV per count), per sampler with its UNet evaluations.
* Comparison: the model with the most parameters is the teacher; every other model is a student.

Every threshold is in :data:`TARGETS`.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError, UniEcgError
from ..record import EcgRecord

log = logging.getLogger(__name__)

RHYTHM_CODES: dict[str, str] = {  # SNOMED CT -> expected rhythm word; earlier entries win
    "164889003": "atrial_fibrillation", "164890007": "atrial_flutter", "427084000": "sinus_tachycardia",
    "426177001": "sinus_bradycardia", "426783006": "sinus_rhythm", "427393009": "sinus_rhythm",
}
RHYTHM_WORDS: tuple[str, ...] = (
    "sinus_rhythm", "sinus_bradycardia", "sinus_tachycardia", "atrial_fibrillation", "atrial_flutter")
CINC, EXTRA = "cinc2021", "extra"
EXTRA_RECORDS = ("ptbdb/s0010_re",)  # under --data; the package's own example record is added to them
REFERENCE_SAMPLER = ("ddpm", 1000)
RR_STATISTICS = ("median", "mean")


@dataclass(frozen=True)
class Targets:
    """Issue 6's thresholds (fractions in 0..1, differences in percentage points)."""

    hr_tolerance_bpm: float = 5.0
    hr_fraction: float = 0.90
    stated_fraction: float = 0.80
    stated_tolerance_bpm: float = 10.0
    stated_within_fraction: float = 0.80
    rhythm_fraction: float = 0.80
    gen_rates_bpm: tuple[float, ...] = (50, 60, 70, 80, 90, 100, 110, 120, 130)
    gen_tolerance_bpm: float = 10.0
    gen_fraction: float = 0.80
    limb_memory_lsb: float = 0.5  # in memory III = II - I up to float rounding
    limb_written_lsb: float = 1.5  # three values rounded to 1 count each
    student_parameter_ratio: float = 4.0
    student_points: float = 5.0
    few_step_evaluation_ratio: float = 100.0
    few_step_points: float = 5.0  # "same heart-rate control": no more than this many points below the reference


TARGETS = Targets()


# ---- labels and reference ------------------------------------------------------------------------------------
def expected_rhythm(dx_codes: Iterable[str]) -> str | None:
    """The rhythm word the SNOMED codes ask for, or None when they name no rhythm of :data:`RHYTHM_CODES`."""
    codes = {str(c).strip() for c in dx_codes}
    return next((word for code, word in RHYTHM_CODES.items() if code in codes), None)


def model_rhythms(text: str | None) -> set[str]:
    """The rhythm words of :data:`RHYTHM_WORDS` that the report's impression (or whole text) names."""
    from .evaluate import labels_in_text

    return labels_in_text(text or "") & set(RHYTHM_WORDS)


def rhythm_verdict(named: set[str], expected: str | None) -> str:
    """``unlabelled`` (no expected rhythm), ``agrees``, ``mixed`` (also another), ``disagrees`` or ``none``."""
    if expected is None:
        return "unlabelled"
    if not named:
        return "none"
    if expected in named:
        return "agrees" if named == {expected} else "mixed"
    return "disagrees"


@dataclass(frozen=True)
class ReferenceRate:
    """NeuroKit2's heart rate from the mean RR (the scored reference by default) and from the median RR."""

    median_bpm: float | None
    mean_bpm: float | None
    beats: int

    def bpm(self, statistic: str = "mean") -> float | None:
        if statistic not in RR_STATISTICS:
            raise ConfigError(f"RR statistic must be one of {', '.join(RR_STATISTICS)}, got {statistic!r}")
        return self.median_bpm if statistic == "median" else self.mean_bpm


def reference_heart_rate(record: EcgRecord, lead: str = "II") -> ReferenceRate:
    """NeuroKit2 on ``lead``: ``ecg_clean`` (default method), ``ecg_peaks``, 60 / median RR and 60 / mean RR."""
    try:
        import neurokit2 as nk
    except ImportError:
        raise ConfigError("the reference heart rate needs neurokit2 (pip install 'uniecg-edge[dev]')") from None
    x = np.nan_to_num(record.lead(lead).astype(np.float64))
    fs = int(round(record.fs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, info = nk.ecg_peaks(nk.ecg_clean(x, sampling_rate=fs), sampling_rate=fs)
        except Exception as exc:  # noqa: BLE001 - a reference that fails leaves the record without one
            log.warning("%s: NeuroKit2 found no R peaks (%s)", record.name, exc)
            return ReferenceRate(None, None, 0)
    peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    if peaks.size < 2:
        return ReferenceRate(None, None, int(peaks.size))
    rr_s = np.diff(peaks) / record.fs
    return ReferenceRate(float(60.0 / np.median(rr_s)), float(60.0 / np.mean(rr_s)), int(peaks.size))


def model_window(record: EcgRecord, seconds: float) -> EcgRecord:
    """The first ``seconds`` of ``record`` (the model's window), or the record itself when it is no longer."""
    n = int(round(seconds * record.fs))
    if record.n_samples <= n:
        return record
    return EcgRecord(record.signal[:, :n], record.fs, record.leads, record.name, dict(record.meta))


# ---- one record ----------------------------------------------------------------------------------------------
@dataclass
class RecordRow:
    group: str
    record: str
    path: str
    dx: list[str] = field(default_factory=list)
    expected_rhythm: str | None = None
    reference_hr_bpm: float | None = None  # the scored reference (mean RR unless asked otherwise)
    reference_hr_median_bpm: float | None = None
    reference_hr_mean_bpm: float | None = None
    reference_beats: int = 0
    measured_hr_bpm: float | None = None  # the report's measurement (DSP)
    stated_hr_bpm: float | None = None  # what the model's text states
    model_rhythms: list[str] = field(default_factory=list)
    dsp_rhythm: str | None = None
    hr_within: bool | None = None
    stated_within: bool | None = None
    rhythm_verdict: str = "unlabelled"
    text: str | None = None
    seconds: float | None = None
    error: str | None = None


def score_record(text: str | None, *, reference_hr: float | None, measured_hr: float | None,
                 expected: str | None, targets: Targets = TARGETS) -> dict[str, Any]:
    """The flags of one report: DSP rate and stated rate against the reference, rhythm words against the label."""
    from ..evidence import extract_claims

    stated = extract_claims(text)["heart_rate_bpm"]
    named = model_rhythms(text)
    hr_within = None if reference_hr is None else (
        measured_hr is not None and abs(measured_hr - reference_hr) <= targets.hr_tolerance_bpm)
    stated_within = None if stated is None or reference_hr is None else bool(
        abs(stated - reference_hr) <= targets.stated_tolerance_bpm)
    return {"stated_hr_bpm": stated, "model_rhythms": sorted(named), "hr_within": hr_within,
            "stated_within": stated_within, "rhythm_verdict": rhythm_verdict(named, expected)}


def evaluate_record(pipeline: Any, group: str, path: Path, *, window_s: float = 10.0,
                    max_new_tokens: int | None = None, rr_statistic: str = "mean",
                    targets: Targets = TARGETS) -> RecordRow:
    """Read, cut to the model's window, reference, interpret and score one record; errors go into ``row.error``."""
    from ..dsp import analyze_record
    from ..wfdb_io import read_record

    row = RecordRow(group=group, record=path.with_suffix("").name, path=str(path))
    start = time.perf_counter()
    try:
        record = model_window(read_record(path), window_s)
        row.dx = list(record.meta.get("dx", []))
        row.expected_rhythm = expected_rhythm(row.dx)
        reference = reference_heart_rate(record)
        row.reference_hr_bpm = reference.bpm(rr_statistic)
        row.reference_hr_median_bpm, row.reference_hr_mean_bpm = reference.median_bpm, reference.mean_bpm
        row.reference_beats = reference.beats
        report = pipeline.interpret(record, max_new_tokens=max_new_tokens, base_report=analyze_record(record))
    except UniEcgError as exc:
        row.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        row.seconds = round(time.perf_counter() - start, 3)
        return row
    row.text, row.dsp_rhythm = report.text, report.rhythm
    row.measured_hr_bpm = report.measurements.heart_rate_bpm
    for key, value in score_record(report.text, reference_hr=row.reference_hr_bpm, measured_hr=row.measured_hr_bpm,
                                   expected=row.expected_rhythm, targets=targets).items():
        setattr(row, key, value)
    row.seconds = round(time.perf_counter() - start, 3)
    return row


def find_records(data: Path, limit: int | None = None) -> list[tuple[str, Path]]:
    """(group, header path): the CinC records, then the extra 12-lead records; at most ``limit`` in all."""
    from ..data import EXAMPLE_RECORD

    found = [(CINC, p) for p in sorted((data / CINC).glob("*.hea"))]
    found += [(EXTRA, data / f"{name}.hea") for name in EXTRA_RECORDS] + [(EXTRA, EXAMPLE_RECORD)]
    return found[:limit] if limit is not None else found


def _progress(total: int, desc: str, unit: str, show: bool) -> Any:
    """The training's tqdm bar on stderr (:func:`uniecg_edge.training.loop.progress`), or a disabled one."""
    from tqdm.auto import tqdm

    from .loop import progress

    return progress(total, desc, unit=unit) if show else tqdm(total=total, disable=True)


# ---- summaries -----------------------------------------------------------------------------------------------
def fraction(hits: Sequence[bool], target: float) -> dict[str, Any]:
    n, k = len(hits), int(sum(bool(h) for h in hits))
    value = k / n if n else None
    return {"n": n, "hits": k, "fraction": None if value is None else round(value, 4), "target": target,
            "met": None if value is None else value >= target}


def summarise_rows(rows: Sequence[RecordRow], targets: Targets = TARGETS) -> dict[str, Any]:
    """The fractions of one group. Failed records count nowhere; records without a reference leave the rate
    scores, unlabelled ones the rhythm score (both counted); a DSP with no rate is a miss."""
    ok = [r for r in rows if r.error is None]
    referenced = [r for r in ok if r.reference_hr_bpm is not None]
    labelled = [r for r in ok if r.expected_rhythm is not None]
    stated = [r for r in referenced if r.stated_hr_bpm is not None]
    return {
        "records": len(rows), "evaluated": len(ok), "no_reference": len(ok) - len(referenced),
        "no_rhythm_label": len(ok) - len(labelled),
        "failed": [{"record": r.record, "error": r.error} for r in rows if r.error is not None],
        "hr_within_tolerance": {**fraction([bool(r.hr_within) for r in referenced], targets.hr_fraction),
                                "tolerance_bpm": targets.hr_tolerance_bpm},
        "hr_stated": fraction([r.stated_hr_bpm is not None for r in ok], targets.stated_fraction),
        "stated_hr_within_tolerance": {**fraction([bool(r.stated_within) for r in stated],
                                                  targets.stated_within_fraction),
                                       "tolerance_bpm": targets.stated_tolerance_bpm},
        "rhythm_agrees": fraction([r.rhythm_verdict == "agrees" for r in labelled], targets.rhythm_fraction),
    }


# ---- generation control ----------------------------------------------------------------------------------------
def generation_request(rate: float, sex: str = "M") -> str:
    """A normal ECG at ``rate`` asked for in the training's ``impression_rate`` style."""
    from .labels import findings_labels
    from .reports import REQUEST_STYLES

    truth: dict[str, Any] = {
        "scenario": "sinus_rhythm", "rhythm": "sinus", "conduction": "normal", "hr_bpm": float(rate),
        "atrial_rate_bpm": float(rate),
        "axis_deg": 60.0, "n_pac": 0, "n_pvc": 0, "st_shift_mv": 0.0, "st_territory": None,
        "st_elevation_leads": [], "st_depression_leads": [], "qtc_ms": 410.0, "sex": sex,
    }
    truth["labels"] = findings_labels(truth)
    return REQUEST_STYLES.get("impression_rate")(truth, "")


def parse_sampler(text: str) -> tuple[str, int]:
    """``KIND:STEPS`` (e.g. ``ddim:8``) -> (kind, steps)."""
    kind, sep, steps = text.partition(":")
    if not sep or not kind or not steps.isdigit() or int(steps) < 1:
        raise InputError(f"--sampler {text!r}: expected KIND:STEPS, e.g. ddim:8 or ddpm:1000")
    return kind, int(steps)


def limb_relation_error(record: EcgRecord) -> float:
    """max |III - (II - I)| in mV."""
    i, ii, iii = (record.lead(name).astype(np.float64) for name in ("I", "II", "III"))
    return float(np.nanmax(np.abs(iii - (ii - i))))


def written_limb_error(record: EcgRecord) -> float:
    """:func:`limb_relation_error` of ``record`` written as WFDB and read back."""
    from ..wfdb_io import read_record, write_record

    with tempfile.TemporaryDirectory() as tmp:
        return limb_relation_error(read_record(write_record(record, Path(tmp) / record.name)))


def generation_control(pipeline: Any, sampler: tuple[str, int] | None = None, *, per_rate: int = 3,
                       rates: Sequence[float] | None = None, age: float = 50.0, show_progress: bool = True,
                       targets: Targets = TARGETS) -> dict[str, Any]:
    """Generate ``per_rate`` ECGs (seeds 0..) per rate with ``sampler`` (default: the model's own), sex alternating;
    the DSP's rate against the request and the limb-lead relation."""
    from ..dsp import analyze_record
    from ..model.schedulers import unet_evaluations
    from ..wfdb_io import WRITE_GAIN_PER_MV
    own = pipeline.model.scheduler
    kind, steps = sampler or (own.kind, own.num_inference_steps)
    cfg = replace(own, kind=kind, num_inference_steps=steps)
    rates = tuple(targets.gen_rates_bpm if rates is None else rates)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    with _progress(len(rates) * per_rate, f"generate {kind}:{steps}", "ECG", show_progress) as bar:
        for rate in rates:
            for seed in range(per_rate):
                sex = "M" if len(rows) % 2 == 0 else "F"
                request = generation_request(rate, sex)
                generated = pipeline.generate(request, hr=float(rate), age=age, sex=sex, steps=steps,
                                              scheduler=kind, seed=seed)
                measured = analyze_record(generated.record).measurements.heart_rate_bpm
                rows.append({
                    "rate_bpm": float(rate), "seed": seed, "sex": sex, "request": request,
                    "hr_measured_bpm": None if measured is None else round(float(measured), 2),
                    "within": measured is not None and abs(measured - rate) <= targets.gen_tolerance_bpm,
                    "limb_error_mv": limb_relation_error(generated.record),
                    "limb_error_written_mv": written_limb_error(generated.record),
                    "ecg_tokens": generated.ecg_tokens})
                bar.update(1)
    lsb = 1.0 / WRITE_GAIN_PER_MV
    memory = max((r["limb_error_mv"] for r in rows), default=0.0)
    written = max((r["limb_error_written_mv"] for r in rows), default=0.0)
    errors = [abs(r["hr_measured_bpm"] - r["rate_bpm"]) for r in rows if r["hr_measured_bpm"] is not None]
    return {
        "sampler": f"{kind}:{steps}", "kind": kind, "steps": steps, "unet_evaluations": unet_evaluations(cfg),
        "hr_within_tolerance": {**fraction([r["within"] for r in rows], targets.gen_fraction),
                                "tolerance_bpm": targets.gen_tolerance_bpm},
        "hr_mean_abs_error_bpm": round(float(np.mean(errors)), 2) if errors else None,
        "limb_relation": {
            "max_error_mv": memory, "max_error_written_mv": written, "lsb_mv": lsb,
            "met": memory <= targets.limb_memory_lsb * lsb and written <= targets.limb_written_lsb * lsb},
        "seconds": round(time.perf_counter() - start, 2), "rows": rows,
    }


def few_step_check(few: dict[str, Any], reference: dict[str, Any], targets: Targets = TARGETS) -> dict[str, Any]:
    """Fewer UNet evaluations than ``reference`` (1000-step DDPM) at the same heart-rate control?"""
    ratio = reference["unet_evaluations"] / few["unet_evaluations"]
    a, b = few["hr_within_tolerance"]["fraction"], reference["hr_within_tolerance"]["fraction"]
    points = None if a is None or b is None else round(100.0 * (a - b), 2)
    return {"few_step": few["sampler"], "reference": reference["sampler"], "evaluation_ratio": round(ratio, 2),
            "hr_control_points": points, "met": bool(ratio >= targets.few_step_evaluation_ratio and points is not None
                                                     and points >= -targets.few_step_points)}


def _reference_run(runs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in runs if (r["kind"], r["unet_evaluations"]) == REFERENCE_SAMPLER), None)


def _fewest(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return min(runs, key=lambda r: r["unet_evaluations"])


# ---- one model, several models ---------------------------------------------------------------------------------
def model_label(model_dir: Path) -> str:
    model_dir = Path(model_dir)
    return f"{model_dir.parent.name}/{model_dir.name}" if model_dir.parent.name else model_dir.name


def evaluate_model(model_dir: Path, records: Sequence[tuple[str, Path]], *, samplers: Sequence[str] = (),
                   per_rate: int = 3, rates: Sequence[float] | None = None, window_s: float = 10.0,
                   max_new_tokens: int | None = None, rr_statistic: str = "mean", device: str = "cpu",
                   show_progress: bool = True, targets: Targets = TARGETS, ungrounded: bool = False) -> dict[str, Any]:
    """Every record row, the summaries per group, generation control per sampler and the parameter counts.

    ``ungrounded`` interprets without the DSP's evidence line even when the model was trained to read it."""
    from ..model.pipeline import TorchPipeline

    if rr_statistic not in RR_STATISTICS:
        raise InputError(f"reference RR statistic must be one of {', '.join(RR_STATISTICS)}, got {rr_statistic!r}")
    pipeline = TorchPipeline.from_pretrained(model_dir, device=device)
    if ungrounded:
        pipeline.model.config = replace(pipeline.model.config, grounded=False)
    label = model_label(model_dir)
    rows: list[RecordRow] = []
    start = time.perf_counter()
    with _progress(len(records), f"interpret {label}", "record", show_progress) as bar:
        for group, path in records:
            rows.append(evaluate_record(pipeline, group, path, window_s=window_s, max_new_tokens=max_new_tokens,
                                        rr_statistic=rr_statistic, targets=targets))
            bar.update(1)
    interpret_s = time.perf_counter() - start
    own = pipeline.model.scheduler
    wanted = [(own.kind, own.num_inference_steps)]
    wanted += [s for s in map(parse_sampler, samplers) if s not in wanted]
    runs = [generation_control(pipeline, s, per_rate=per_rate, rates=rates, show_progress=show_progress,
                               targets=targets) for s in wanted]
    reference = _reference_run(runs)
    counts = pipeline.model.parameter_counts()
    groups = sorted({group for group, _ in records}, key=[CINC, EXTRA].index)
    return {
        "model": label, "model_dir": str(model_dir), "reference_rr_statistic": rr_statistic,
        "name": pipeline.model.config.name, "trained": pipeline.model.config.trained,
        "grounded": pipeline.model.config.grounded,
        "parameters": {**counts, "total": int(sum(counts.values()))},
        "summary": {g: summarise_rows([r for r in rows if r.group == g], targets) for g in groups},
        "generation": runs,
        "few_step": None if reference is None or _fewest(runs) is reference else few_step_check(
            _fewest(runs), reference, targets),
        "seconds": {"interpret": round(interpret_s, 2), "generation": round(sum(r["seconds"] for r in runs), 2)},
        "records": [asdict(r) for r in rows],
    }


def headline_metrics(result: dict[str, Any]) -> dict[str, float | None]:
    """The fractions the targets are set on (CinC and the model's own sampler), keyed by a readable name."""
    cinc = result["summary"].get(CINC, {})
    out = {f"cinc2021 {key}": cinc[key]["fraction"] if cinc else None
           for key in ("hr_within_tolerance", "hr_stated", "stated_hr_within_tolerance", "rhythm_agrees")}
    out["generation hr_within_tolerance"] = result["generation"][0]["hr_within_tolerance"]["fraction"]
    return out


def compare_models(results: Sequence[dict[str, Any]], targets: Targets = TARGETS) -> dict[str, Any] | None:
    """The teacher (most parameters) against each other model: parameter ratio, each headline metric's difference
    in points (a student may be at most ``student_points`` below), and few-step sampling against 1000-step DDPM."""
    if len(results) < 2:
        return None
    teacher = max(results, key=lambda r: r["parameters"]["total"])
    out: dict[str, Any] = {"teacher": teacher["model"], "students": []}
    for student in (r for r in results if r is not teacher):
        ratio = teacher["parameters"]["total"] / student["parameters"]["total"]
        metrics = []
        for name, t_value in headline_metrics(teacher).items():
            s_value = headline_metrics(student)[name]
            points = None if t_value is None or s_value is None else round(100.0 * (s_value - t_value), 2)
            metrics.append({"metric": name, "teacher": t_value, "student": s_value, "points": points,
                            "met": points is not None and points >= -targets.student_points})
        reference = _reference_run(teacher["generation"]) or _reference_run(student["generation"])
        few = _fewest(student["generation"])
        out["students"].append({
            "model": student["model"], "parameter_ratio": round(ratio, 2),
            "parameter_ratio_met": ratio >= targets.student_parameter_ratio, "metrics": metrics,
            "few_step": None if reference is None or few is reference else few_step_check(few, reference, targets),
        })
    return out

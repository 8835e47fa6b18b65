"""The 12-lead paper plot: true scale in pixels, lead placement, missing leads, the reference overlay."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from uniecg_edge.errors import InputError
from uniecg_edge.leads import STANDARD_LEADS
from uniecg_edge.plot import DEFAULT_LAYOUT, build_figure, figure_size_px, plot_12lead
from uniecg_edge.record import EcgRecord

LAYOUT = DEFAULT_LAYOUT
DPI = 100
PX_PER_MM = DPI / 25.4


def _record(fs: float, seconds: float, leads: tuple[str, ...] = STANDARD_LEADS, name: str = "synthetic") -> EcgRecord:
    return EcgRecord(np.zeros((len(leads), int(round(fs * seconds))), dtype=np.float32), fs, leads, name=name)


def _dark_pixels(png: Path) -> np.ndarray:
    """True where the PNG is ink (the traces are black; the red/pink grid and white paper are not dark)."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    return rgb.max(axis=2) < 110


def _x_px(x_mm: float) -> float:
    return (LAYOUT.margin_mm + x_mm) * PX_PER_MM


def _y_px(y_mm: float, image_height: int) -> float:
    """Pixel row (from the top) of a grid height in mm (from the bottom of the grid)."""
    return image_height - (LAYOUT.margin_mm + y_mm) * PX_PER_MM


def _band_rows(row: int, image_height: int) -> slice:
    baseline = LAYOUT.baseline_mm(row)
    half = LAYOUT.row_pitch_mm / 2.0
    return slice(int(_y_px(baseline + half, image_height)), int(_y_px(baseline - half, image_height)))


def _mean_ink_row(dark: np.ndarray, rows: slice, x_from_mm: float, x_to_mm: float) -> float:
    """Median over the columns of [x_from, x_to] of the mean pixel row of the ink inside ``rows``."""
    centres = []
    for col in range(int(np.ceil(_x_px(x_from_mm))), int(_x_px(x_to_mm)) + 1):
        ink = np.flatnonzero(dark[rows, col])
        if ink.size:
            centres.append(rows.start + ink.mean())
    assert centres, "no ink found where a trace should be"
    return float(np.median(centres))


def test_png_pixel_size_follows_the_millimetre_layout(tmp_path: Path) -> None:
    record = _record(500, 10)
    for dpi in (72, 100, 150):
        out = plot_12lead(record, tmp_path / f"ecg_{dpi}.png", dpi=dpi)
        width, height = Image.open(out).size
        # 4 panels of 2.5 s at 25 mm/s plus calibration, pads and margins, in whole pixels at this dpi.
        assert width == pytest.approx(LAYOUT.figure_width_mm * dpi / 25.4, abs=1.0)
        assert height == pytest.approx(LAYOUT.figure_height_mm * dpi / 25.4, abs=1.0)
        assert (width, height) == figure_size_px(dpi)
    assert LAYOUT.grid_width_mm >= 4 * 62.5 + LAYOUT.calibration_mm


def test_grid_is_true_to_scale_in_pixels(tmp_path: Path) -> None:
    out = plot_12lead(_record(500, 10), tmp_path / "ecg.png", dpi=DPI)
    rgb = np.asarray(Image.open(out).convert("RGB")).astype(int)
    paper = (rgb[..., 0] > 200) & (rgb[..., 0] - rgb[..., 1] > 20)  # pink/red grid lines, not grey ink
    cols = np.flatnonzero(paper.any(axis=0))
    rows = np.flatnonzero(paper.any(axis=1))
    assert cols[-1] - cols[0] + 1 == pytest.approx(LAYOUT.grid_width_mm * PX_PER_MM, abs=2)
    assert rows[-1] - rows[0] + 1 == pytest.approx(LAYOUT.grid_height_mm * PX_PER_MM, abs=2)
    # Major lines every 5 mm: in one pixel row through the grid, the darkest columns repeat every 5 mm.
    line = rgb[rows[0] + int(2.5 * PX_PER_MM), cols[0]:cols[-1], 1]  # green channel: lower on red lines
    major = np.flatnonzero(line < 160)
    gaps = np.diff(major)
    gaps = gaps[gaps > 2]
    assert np.median(gaps) == pytest.approx(5 * PX_PER_MM, abs=1.0)


def test_one_millivolt_pulse_is_ten_millimetres_tall_in_the_lead_i_panel(tmp_path: Path) -> None:
    fs = 500.0
    record = _record(fs, 10)
    record.signal[STANDARD_LEADS.index("I"), int(1.0 * fs):int(1.5 * fs)] = 1.0
    out = plot_12lead(record, tmp_path / "pulse.png", dpi=DPI)
    dark = _dark_pixels(out)
    height = dark.shape[0]
    x0 = LAYOUT.trace_x0_mm
    row_i = _band_rows(0, height)
    flat = _mean_ink_row(dark, row_i, x0 + 0.3 * 25, x0 + 0.9 * 25)
    top = _mean_ink_row(dark, row_i, x0 + 1.1 * 25, x0 + 1.4 * 25)
    assert flat - top == pytest.approx(10 * PX_PER_MM, abs=2)
    # It sits on the I baseline, inside the I panel (first column, first row) ...
    assert flat == pytest.approx(_y_px(LAYOUT.baseline_mm(0), height), abs=2)
    edges = [c for c in range(int(_x_px(x0)), int(_x_px(x0 + 62.5))) if dark[row_i, c].sum() > 5 * PX_PER_MM]
    assert edges, "no vertical pulse edge in the I panel"
    assert min(edges) == pytest.approx(_x_px(x0 + 1.0 * 25), abs=2)
    assert max(edges) == pytest.approx(_x_px(x0 + 1.5 * 25), abs=2)
    # ... and nowhere else: the aVR panel beside it and the lead II row below stay flat at the same times.
    x_avr = LAYOUT.panel_x0_mm(1)
    avr_top = _mean_ink_row(dark, row_i, x_avr + 1.1 * 25, x_avr + 1.4 * 25)
    assert avr_top == pytest.approx(flat, abs=2)
    row_ii = _band_rows(1, height)
    ii_flat = _mean_ink_row(dark, row_ii, x0 + 1.1 * 25, x0 + 1.4 * 25)
    assert ii_flat == pytest.approx(_y_px(LAYOUT.baseline_mm(1), height), abs=2)


def test_a_two_and_a_half_second_trace_spans_62_5_mm(tmp_path: Path) -> None:
    fs = 250.0
    record = _record(fs, 2.5)
    lead_ii = STANDARD_LEADS.index("II")
    mark = int(0.1 * fs)
    record.signal[lead_ii, :mark] = 1.0  # the first and the last 0.1 s at 1 mV: the trace starts and ends
    record.signal[lead_ii, -mark:] = 1.0  # 10 mm above the baseline, away from the calibration's baseline
    out = plot_12lead(record, tmp_path / "short.png", dpi=DPI)
    dark = _dark_pixels(out)
    top = int(round(_y_px(LAYOUT.baseline_mm(LAYOUT.n_rows - 1) + 10.0, dark.shape[0])))
    start = int(_x_px(LAYOUT.trace_x0_mm - 1.0))  # right of the calibration pulse's top
    ink = start + np.flatnonzero(dark[top - 2:top + 3, start:].any(axis=0))
    assert ink.size
    assert ink[-1] - ink[0] + 1 == pytest.approx(62.5 * PX_PER_MM, abs=2)
    assert ink[0] == pytest.approx(_x_px(LAYOUT.trace_x0_mm), abs=2)


def test_missing_lead_gets_a_labelled_empty_panel_and_is_not_derived() -> None:
    leads = tuple(lead for lead in STANDARD_LEADS if lead not in ("III", "V3"))
    record = _record(360, 10, leads)
    record.signal[:] = np.sin(np.linspace(0, 60, record.n_samples))  # something to draw in every present lead
    fig = build_figure(record)
    ax = fig.axes[0]
    missing = [t for t in ax.texts if t.get_text() == "(missing)"]
    assert sorted(t.get_gid() for t in missing) == ["status:III", "status:V3"]
    v3 = next(t for t in missing if t.get_gid() == "status:V3")
    x, y = v3.get_position()
    assert LAYOUT.panel_x0_mm(2) < x < LAYOUT.panel_x0_mm(3)
    assert abs(y - LAYOUT.baseline_mm(2)) < LAYOUT.row_pitch_mm / 2
    drawn = {line.get_gid() for line in ax.lines}
    assert "live:III" not in drawn and "live:V3" not in drawn  # III is derivable from I and II: still not invented
    assert {f"live:{lead}" for lead in leads} <= drawn


def test_lead_names_match_case_insensitively_and_nan_is_a_gap(tmp_path: Path) -> None:
    fs = 1000.0
    record = _record(fs, 10, tuple(lead.upper() for lead in STANDARD_LEADS))
    t = np.arange(record.n_samples) / fs
    record.signal[:] = 0.5 * np.sin(2 * np.pi * 1.3 * t)
    lead_i = STANDARD_LEADS.index("I")
    record.signal[lead_i, int(1.0 * fs):int(1.6 * fs)] = np.nan
    fig = build_figure(record)
    assert not [t for t in fig.axes[0].texts if t.get_text() in ("(missing)", "(no data)")]
    out = plot_12lead(record, tmp_path / "gap.png", dpi=DPI)
    dark = _dark_pixels(out)
    row_i = _band_rows(0, dark.shape[0])
    x0 = LAYOUT.trace_x0_mm
    gap = dark[row_i, int(_x_px(x0 + 1.1 * 25)):int(_x_px(x0 + 1.5 * 25))]
    before = dark[row_i, int(_x_px(x0 + 0.4 * 25)):int(_x_px(x0 + 0.8 * 25))]
    assert gap.sum() == 0
    assert before.sum() > 0


def test_only_the_first_ten_seconds_are_drawn_and_short_records_as_far_as_they_go() -> None:
    long_fig = build_figure(_record(250, 30))
    rhythm = next(line for line in long_fig.axes[0].lines if line.get_gid() == "live:II"
                  and len(line.get_xdata()) > 2 * 250 * 2.5)
    xs = np.asarray(rhythm.get_xdata())
    assert xs.min() == pytest.approx(LAYOUT.trace_x0_mm)
    assert xs.max() - xs.min() == pytest.approx((10.0 - 1 / 250) * 25, abs=1e-6)  # 10 s of 30, at 25 mm/s
    short_fig = build_figure(_record(500, 6.0))
    v4_lines = [line for line in short_fig.axes[0].lines if line.get_gid() == "live:V4"]
    assert v4_lines == []  # the fourth column (7.5-10 s) lies past the end of a 6 s record
    assert not [t for t in short_fig.axes[0].texts if t.get_text() in ("(missing)", "(no data)")]
    v1 = next(line for line in short_fig.axes[0].lines if line.get_gid() == "live:V1")
    assert np.ptp(np.asarray(v1.get_xdata())) == pytest.approx((6.0 - 5.0 - 1 / 500) * 25, abs=1e-6)


def test_a_dc_offset_is_removed_so_the_trace_sits_on_its_baseline() -> None:
    fs = 500.0
    record = _record(fs, 10)
    t = np.arange(record.n_samples) / fs
    record.signal[STANDARD_LEADS.index("I")] = 300.0 + 0.5 * np.sin(2 * np.pi * 4.0 * t)  # raw front-end offset
    fig = build_figure(record)
    lead_i = next(line for line in fig.axes[0].lines if line.get_gid() == "live:I")
    ys = np.asarray(lead_i.get_ydata())
    assert np.median(ys) == pytest.approx(LAYOUT.baseline_mm(0), abs=0.5)
    assert np.ptp(ys) == pytest.approx(10.0, abs=0.2)  # the 1 mV peak-to-peak wave is still 10 mm


def test_reference_overlay_draws_a_second_line_set_with_a_legend() -> None:
    live = _record(500, 10, name="live-rec")
    reference = _record(250, 10, name="generated-ref")
    plain = build_figure(live)
    assert not [line for line in plain.axes[0].lines if str(line.get_gid()).startswith("reference:")]
    fig = build_figure(live, reference=reference, title="compare")
    lines = fig.axes[0].lines
    live_lines = [line for line in lines if str(line.get_gid()).startswith("live:")]
    ref_lines = [line for line in lines if str(line.get_gid()).startswith("reference:")]
    assert len(live_lines) == len(ref_lines) == 13  # 12 panels + rhythm strip
    assert {line.get_color() for line in ref_lines}.isdisjoint({line.get_color() for line in live_lines})
    legend_texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any("live-rec" in t for t in legend_texts) and any("generated-ref" in t for t in legend_texts)


def test_caption_names_speed_gain_rate_record_and_title() -> None:
    fig = build_figure(_record(360, 10, name="rec-42"), title="hello")
    caption = " ".join(t.get_text() for t in fig.texts)
    for part in ("25 mm/s, 10 mm/mV", "360 Hz", "rec-42", "hello"):
        assert part in caption


def test_bad_dpi_and_unwritable_path_raise_input_errors(tmp_path: Path) -> None:
    record = _record(500, 10)
    with pytest.raises(InputError, match="dpi"):
        plot_12lead(record, tmp_path / "x.png", dpi=0)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot write"):
        plot_12lead(record, blocker / "x.png")


def test_plotting_leaves_pyplot_and_the_backend_alone(tmp_path: Path) -> None:
    code = (
        "import sys, matplotlib; raw = lambda: dict.__getitem__(matplotlib.rcParams, 'backend'); before = raw();"
        "import numpy as np; from uniecg_edge.record import EcgRecord; from uniecg_edge.plot import plot_12lead;"
        f"plot_12lead(EcgRecord(np.zeros((1, 500)), 250, ('I',)), {str(tmp_path / 'p.png')!r});"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; assert raw() == before, 'backend changed'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert (tmp_path / "p.png").is_file()


def test_real_record_smoke(shared_ecg: Path, tmp_path: Path) -> None:
    from uniecg_edge.wfdb_io import read_record

    record = read_record(shared_ecg / "cinc2021" / "HR06000")
    started = time.perf_counter()
    out = plot_12lead(record, tmp_path / "HR06000.png", title="smoke")
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0
    assert Image.open(out).size == figure_size_px(100)
    dark = _dark_pixels(out)
    for row in range(4):  # ink in every panel of every row
        band = dark[_band_rows(row, dark.shape[0])]
        for column in range(4):
            x0 = LAYOUT.panel_x0_mm(column)
            panel = band[:, int(_x_px(x0 + 5)):int(_x_px(x0 + 60))]
            assert panel.sum() > 100

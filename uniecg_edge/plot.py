"""The 12-lead ECG in the standard paper layout, true to scale, as a PNG (matplotlib Agg, no pyplot).

25 mm/s and 10 mm/mV on a millimetre grid: a 3 x 4 grid of 2.5 s panels (I aVR V1 V4 / II aVL V2 V5 /
III aVF V3 V6, each column the next 2.5 s of the first 10 s) and a full-width 10 s rhythm strip, a 1 mV
calibration pulse at the start of every row, lead labels and a caption. Everything is drawn in one Axes
whose data units are millimetres and whose size on the figure is the layout's size in millimetres, so
1 mm on the grid is exactly ``dpi / 25.4`` pixels.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from .errors import InputError
from .leads import find_lead
from .record import EcgRecord

log = logging.getLogger(__name__)

MM_PER_INCH = 25.4
PAPER_SPEED_MM_PER_S = 25.0
GAIN_MM_PER_MV = 10.0
PANEL_SECONDS = 2.5
PANEL_ROWS: tuple[tuple[str, ...], ...] = (
    ("I", "aVR", "V1", "V4"),
    ("II", "aVL", "V2", "V5"),
    ("III", "aVF", "V3", "V6"),
)
N_COLUMNS = 4
STRIP_SECONDS = PANEL_SECONDS * N_COLUMNS  # 10 s: the panels and the rhythm strip
MIN_DPI, MAX_DPI = 20, 1200

PAPER_COLOUR = "#fff7f7"
MINOR_GRID_COLOUR = "#f6c3c3"
MAJOR_GRID_COLOUR = "#e27b7b"
LIVE_COLOUR = "black"
REFERENCE_COLOUR = "#1f5fd6"
REFERENCE_ALPHA = 0.8
MISSING_TEXT = "(missing)"
NO_DATA_TEXT = "(no data)"

# Artist ids (gid) so that callers and tests can find what was drawn.
GID_LIVE = "live"
GID_REFERENCE = "reference"
GID_CALIBRATION = "calibration"


@dataclass(frozen=True)
class PaperLayout:
    """Geometry of the printout in millimetres (x to the right, y upwards from the bottom of the grid)."""

    left_pad_mm: float = 5.0  # grid before the calibration pulse
    calibration_mm: float = 10.0  # baseline 2.5 mm, pulse 5 mm (0.2 s) wide and 10 mm (1 mV) tall, baseline 2.5 mm
    right_pad_mm: float = 5.0
    row_pitch_mm: float = 40.0
    vertical_pad_mm: float = 5.0  # grid above the first row and below the rhythm strip
    margin_mm: float = 5.0  # white paper around the grid
    caption_mm: float = 12.0  # white paper above the grid for the caption and legend
    n_rows: int = len(PANEL_ROWS) + 1  # panel rows + rhythm strip

    @property
    def trace_x0_mm(self) -> float:
        return self.left_pad_mm + self.calibration_mm

    @property
    def panel_width_mm(self) -> float:
        return PANEL_SECONDS * PAPER_SPEED_MM_PER_S

    @property
    def grid_width_mm(self) -> float:
        return self.trace_x0_mm + N_COLUMNS * self.panel_width_mm + self.right_pad_mm

    @property
    def grid_height_mm(self) -> float:
        return 2 * self.vertical_pad_mm + self.n_rows * self.row_pitch_mm

    @property
    def figure_width_mm(self) -> float:
        return self.grid_width_mm + 2 * self.margin_mm

    @property
    def figure_height_mm(self) -> float:
        return self.grid_height_mm + self.margin_mm + self.caption_mm

    def baseline_mm(self, row: int) -> float:
        """Height of the 0 mV line of ``row`` (0 = top row, ``n_rows - 1`` = rhythm strip), on a major line."""
        top = self.grid_height_mm - self.vertical_pad_mm
        return top - (row + 0.5) * self.row_pitch_mm

    def panel_x0_mm(self, column: int) -> float:
        return self.trace_x0_mm + column * self.panel_width_mm


DEFAULT_LAYOUT = PaperLayout()


def figure_size_px(dpi: int, layout: PaperLayout = DEFAULT_LAYOUT) -> tuple[int, int]:
    """(width, height) in pixels of the PNG that ``plot_12lead`` writes at ``dpi``.

    The layout's millimetres rounded up to whole pixels; the extra fraction of a pixel is white paper at the
    right and top, so the grid itself keeps exactly ``dpi / 25.4`` pixels per millimetre.
    """
    px_per_mm = dpi / MM_PER_INCH
    width = math.ceil(layout.figure_width_mm * px_per_mm - 1e-6)
    return width, math.ceil(layout.figure_height_mm * px_per_mm - 1e-6)


def _check_dpi(dpi: int) -> None:
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not MIN_DPI <= dpi <= MAX_DPI:
        raise InputError(f"dpi must be a whole number from {MIN_DPI} to {MAX_DPI}, got {dpi!r}")


def _draw_paper(ax: Axes, layout: PaperLayout) -> None:
    width, height = layout.grid_width_mm, layout.grid_height_mm
    ax.add_patch(Rectangle((0, 0), width, height, facecolor=PAPER_COLOUR, edgecolor="none", zorder=0))
    for step, colour, lw, z in ((1.0, MINOR_GRID_COLOUR, 0.3, 1), (5.0, MAJOR_GRID_COLOUR, 0.6, 2)):
        xs = np.arange(0.0, width + 1e-6, step)
        ys = np.arange(0.0, height + 1e-6, step)
        segments = [((x, 0.0), (x, height)) for x in xs] + [((0.0, y), (width, y)) for y in ys]
        ax.add_collection(LineCollection(segments, colors=colour, linewidths=lw, zorder=z))


def _draw_calibration(ax: Axes, layout: PaperLayout, baseline: float) -> None:
    x0 = layout.left_pad_mm
    flat = (layout.calibration_mm - 0.2 * PAPER_SPEED_MM_PER_S) / 2.0
    xs = [x0, x0 + flat, x0 + flat, x0 + flat + 0.2 * PAPER_SPEED_MM_PER_S, x0 + flat + 0.2 * PAPER_SPEED_MM_PER_S,
          x0 + layout.calibration_mm]
    top = baseline + 1.0 * GAIN_MM_PER_MV
    ys = [baseline, baseline, top, top, baseline, baseline]
    ax.add_line(Line2D(xs, ys, color=LIVE_COLOUR, linewidth=0.8, gid=GID_CALIBRATION, zorder=4))


def _display_window(record: EcgRecord) -> np.ndarray:
    """The first 10 s (or all of a shorter record), each lead shifted by its median so it sits on its baseline."""
    n = min(record.n_samples, int(round(STRIP_SECONDS * record.fs)))
    window = np.array(record.signal[:, :n], dtype=np.float64)
    for row in window:
        finite = np.isfinite(row)
        if finite.any():
            row -= float(np.median(row[finite]))
    return window


def _segment_xy(values: np.ndarray, fs: float, start_s: float, stop_s: float, x0_mm: float
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """Samples from ``start_s`` to ``stop_s`` (inclusive, so columns join) as x from ``x0_mm``, in mm."""
    first = int(math.ceil(start_s * fs - 1e-9))
    last = min(len(values) - 1, int(math.floor(stop_s * fs + 1e-9)))
    if last <= first:
        return None
    idx = np.arange(first, last + 1)
    return x0_mm + (idx / fs - start_s) * PAPER_SPEED_MM_PER_S, values[first:last + 1]


def _draw_lead(ax: Axes, window: np.ndarray, fs: float, index: int | None, *, start_s: float, stop_s: float,
               x0_mm: float, baseline: float, colour: str, alpha: float, gid: str, label: str) -> bool:
    """One lead segment on the grid; returns False when there is nothing to draw."""
    if index is None:
        return False
    xy = _segment_xy(window[index], fs, start_s, stop_s, x0_mm)
    if xy is None or not np.isfinite(xy[1]).any():
        return False
    xs, values = xy
    ax.add_line(Line2D(xs, baseline + values * GAIN_MM_PER_MV, color=colour, alpha=alpha, linewidth=0.7,
                       gid=f"{gid}:{label}", zorder=5 if gid == GID_LIVE else 6, solid_joinstyle="round"))
    return True


def _panel_text(ax: Axes, layout: PaperLayout, x0_mm: float, width_mm: float, baseline: float, lead: str,
                status: str | None) -> None:
    top = baseline + layout.row_pitch_mm / 2.0
    ax.text(x0_mm + 1.5, top - 2.0, lead, fontsize=9, fontweight="bold", va="top", ha="left", zorder=7)
    if status is not None:
        ax.text(x0_mm + width_mm / 2.0, baseline + 2.0, status, fontsize=8, style="italic", color="#555555",
                va="bottom", ha="center", zorder=7, gid=f"status:{lead}")


def _status(record: EcgRecord, lead: str, drew: bool, start_s: float) -> str | None:
    """"(missing)" for a lead the record lacks, "(no data)" for an all-NaN stretch; blank past the record's end."""
    if find_lead(record.leads, lead) is None:
        return MISSING_TEXT
    return None if drew or start_s >= record.duration_s else NO_DATA_TEXT


def _caption(record: EcgRecord, title: str | None) -> str:
    parts = [f"{PAPER_SPEED_MM_PER_S:g} mm/s, {GAIN_MM_PER_MV:g} mm/mV", f"fs {record.fs:g} Hz", record.name]
    if record.duration_s < STRIP_SECONDS:
        parts.append(f"{record.duration_s:.2f} s")
    if title:
        parts.append(title)
    return "  ·  ".join(parts)


def build_figure(record: EcgRecord, *, reference: EcgRecord | None = None, title: str | None = None,
                 dpi: int = 100, rhythm_lead: str = "II", layout: PaperLayout = DEFAULT_LAYOUT) -> Figure:
    """The printout as a matplotlib ``Figure`` (with an Agg canvas) that ``plot_12lead`` saves.

    Live lines carry gid ``"live:<lead>"``, reference lines ``"reference:<lead>"``, calibration pulses
    ``"calibration"`` and the "(missing)" / "(no data)" texts ``"status:<lead>"``.
    """
    _check_dpi(dpi)
    width_px, height_px = figure_size_px(dpi, layout)
    # A hair over the whole pixel count, so that Agg's truncation to whole pixels cannot lose one.
    fig = Figure(figsize=((width_px + 1e-3) / dpi, (height_px + 1e-3) / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    mm_per_px = MM_PER_INCH / dpi
    w, h = (width_px + 1e-3) * mm_per_px, (height_px + 1e-3) * mm_per_px  # figure size in mm
    ax = fig.add_axes((layout.margin_mm / w, layout.margin_mm / h, layout.grid_width_mm / w,
                       layout.grid_height_mm / h))
    ax.set_xlim(0.0, layout.grid_width_mm)
    ax.set_ylim(0.0, layout.grid_height_mm)
    ax.set_axis_off()
    _draw_paper(ax, layout)

    sources = [(record, _display_window(record), LIVE_COLOUR, 1.0, GID_LIVE)]
    if reference is not None:
        sources.append((reference, _display_window(reference), REFERENCE_COLOUR, REFERENCE_ALPHA, GID_REFERENCE))

    def draw_everywhere(lead: str, start_s: float, stop_s: float, x0: float, baseline: float) -> bool:
        drew_live = False
        for rec, window, colour, alpha, gid in sources:
            drew = _draw_lead(ax, window, rec.fs, find_lead(rec.leads, lead), start_s=start_s, stop_s=stop_s,
                              x0_mm=x0, baseline=baseline, colour=colour, alpha=alpha, gid=gid, label=lead)
            drew_live = drew_live or (gid == GID_LIVE and drew)
        return drew_live

    for row, leads in enumerate(PANEL_ROWS):
        baseline = layout.baseline_mm(row)
        _draw_calibration(ax, layout, baseline)
        for column, lead in enumerate(leads):
            x0 = layout.panel_x0_mm(column)
            start = column * PANEL_SECONDS
            drew = draw_everywhere(lead, start, start + PANEL_SECONDS, x0, baseline)
            status = _status(record, lead, drew, start)
            _panel_text(ax, layout, x0, layout.panel_width_mm, baseline, lead, status)
            if column:
                ax.add_line(Line2D([x0, x0], [baseline - 3.0, baseline + 3.0], color=LIVE_COLOUR, linewidth=0.8,
                                   zorder=4))

    rhythm_row = len(PANEL_ROWS)
    baseline = layout.baseline_mm(rhythm_row)
    _draw_calibration(ax, layout, baseline)
    x0 = layout.trace_x0_mm
    drew = draw_everywhere(rhythm_lead, 0.0, STRIP_SECONDS, x0, baseline)
    status = _status(record, rhythm_lead, drew, 0.0)
    _panel_text(ax, layout, x0, N_COLUMNS * layout.panel_width_mm, baseline, rhythm_lead, status)

    top_of_caption = (layout.margin_mm + layout.grid_height_mm + layout.caption_mm / 2.0) / h
    fig.text(layout.margin_mm / w, top_of_caption, _caption(record, title), fontsize=9, va="center", ha="left")
    if reference is not None:
        handles = [Line2D([], [], color=LIVE_COLOUR, linewidth=1.0),
                   Line2D([], [], color=REFERENCE_COLOUR, alpha=REFERENCE_ALPHA, linewidth=1.0)]
        right = (layout.margin_mm + layout.grid_width_mm) / w
        fig.legend(handles, [f"live: {record.name}", f"reference: {reference.name}"], loc="center right",
                   bbox_to_anchor=(right, top_of_caption), ncol=2, fontsize=8, frameon=False)
    return fig


def plot_12lead(record: EcgRecord, path: str | os.PathLike[str], *, reference: EcgRecord | None = None,
                title: str | None = None, dpi: int = 100, rhythm_lead: str = "II") -> Path:
    """Write ``record`` as a PNG in the standard 12-lead paper layout and return the path written.

    Parameters
    ----------
    record
        The ECG; leads are found by name, case-insensitively. Absent leads get an empty panel labelled
        "(missing)" (nothing is derived), NaN samples show as gaps, only the first 10 s are drawn, and each
        lead is shifted by its median over those 10 s so it sits on its baseline.
    path
        Where the PNG goes; missing parent folders are created.
    reference
        An optional second ECG (e.g. a generated reference) drawn over the live one in blue, with a legend.
    title
        Appended to the caption.
    dpi
        Pixels per inch: 1 mm on the grid is ``dpi / 25.4`` pixels.
    rhythm_lead
        The lead of the full-width 10 s rhythm strip.
    """
    out = Path(path)
    fig = build_figure(record, reference=reference, title=title, dpi=dpi, rhythm_lead=rhythm_lead)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", dpi=dpi)
    except OSError as exc:
        raise InputError(f"cannot write the ECG plot {out}: {exc.strerror or exc}") from exc
    log.info("wrote %s (%d x %d px)", out, *figure_size_px(dpi))
    return out


__all__: Sequence[str] = ("PaperLayout", "build_figure", "figure_size_px", "plot_12lead")

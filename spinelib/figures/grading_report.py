"""The per-study grading report of ``spinelib grade --report DIR``: where Stage 1 looked and what Stage 2 said.

One self-contained HTML page per study (every image embedded as a base64
PNG, no external file) and one PNG of the same views:

* the Sagittal T2/STIR slice with the predicted spinal canal point per level;
* the Sagittal T1 slices with the left and right foraminal points;
* the Axial T2 slice of each level with the left and right subarticular points;
* the study's 25 rows (``normal_mild, moderate, severe``), the most likely grade highlighted.

A view whose series is missing, unreadable or not localised is replaced by a
sentence saying so (its rows then come from the training prior). Points are in
native pixels (x right, y down) of the slice ``k`` of their series; a point
predicted on another slice than the one shown is drawn hollow with its slice.
Rendering uses matplotlib's Agg canvas at a low dpi, one small figure per view;
the PNG tiles the rendered views, so each view is drawn once.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from spinelib.competition import PROBABILITY_COLUMNS, row_ids
from spinelib.constants import AXIAL_T2, CONDITIONS, GRADES, LEVEL_WORDS, LEVELS, SAGITTAL_T1, SAGITTAL_T2
from spinelib.crops.geometry import to_uint8

log = logging.getLogger(__name__)
DPI = 80
SAGITTAL_SIZE = (3.0, 3.2)      # inches (width, height) of a sagittal view: 240 x 256 px at 80 dpi
AXIAL_SIZE = (2.4, 2.6)         # 192 x 208 px
GRADE_COLOURS = ("#4caf50", "#ff9800", "#e53935")   # normal/mild, moderate, severe
LEVEL_COLOURS = dict(zip(LEVELS, ("#00e5ff", "#ffea00", "#ff4081", "#76ff03", "#ff9100")))
SIDES = {"left": "L", "right": "R"}
OUTLINE = [patheffects.withStroke(linewidth=1.5, foreground="black")]   # labels readable on bright tissue


@dataclass
class StudyView:
    """What Stage 1 looked at in one study (``Grader(keep_views=True)`` keeps one per graded study).

    ``series``: series_id → description of every series read; ``shapes``: series_id → native (H, W);
    ``points``: :func:`spinelib.studies.multistage.localisation.localise_study`'s rows (condition, level, series_id,
    series_description, k, instance_number, x, y in native pixels); ``slices``: (series_id, k) → the native
    slice (H, W) uint8 under the points; ``problems``: series that could not be read.
    """

    study_id: int
    series: dict[int, str]
    shapes: dict[int, tuple[int, int]]
    points: pd.DataFrame
    slices: dict[tuple[int, int], np.ndarray]
    problems: list[str] = field(default_factory=list)
    # the ranking study's continuous severity per level and task (spinelib.grading.disc_scores), when its
    # models were given: columns level, task, score, spread; ``ranking_note`` says which run, or why there is none
    ranking: pd.DataFrame | None = None
    ranking_note: str = ""


def study_view(study_id: int, images: dict, volumes: dict, points: pd.DataFrame,
               problems: list[str] | None = None) -> StudyView:
    """A :class:`StudyView` from what ``Grader.grade`` already holds (``read_study``'s images and volumes).

    Keeps only the slices that carry a point (a few per study), as uint8: 11 slices of 512² ≈ 3 MB.
    """
    series = {int(s): image.description for s, image in images.items()}
    shapes = {int(s): tuple(int(v) for v in image.geometry.shape[1:]) for s, image in images.items()}
    slices = {}
    if len(points) and "series_id" in points:
        for series_id, k in points[["series_id", "k"]].drop_duplicates().itertuples(index=False):
            series_id, k = int(series_id), int(k)
            if series_id in volumes and 0 <= k < volumes[series_id].pixels.shape[0]:
                slices[(series_id, k)] = to_uint8(volumes[series_id].pixels[k])
            elif series_id in images and 0 <= k < images[series_id].depth:   # no volume kept: the resized slice
                slices[(series_id, k)] = images[series_id].slices[k]
    return StudyView(int(study_id), series, shapes, points.reset_index(drop=True), slices, list(problems or []))


@dataclass
class Panel:
    """One view of the report: a rendered image (H, W, 3) uint8, or ``None`` and the sentence saying why not."""

    key: str
    title: str
    image: np.ndarray | None = None
    note: str = ""


# --- the views -------------------------------------------------------------------------------------------------

def _absent(view: StudyView, series_type: str, what: str) -> str:
    """Why a series type has no view: missing, unreadable, or read but not localised."""
    prior = f"the {what} rows come from the training prior"
    unreadable = [p for p in view.problems if f"({series_type})" in p]
    if unreadable:
        return f"The {series_type} series could not be read ({'; '.join(unreadable)}): {prior}."
    present = sorted(s for s, d in view.series.items() if d == series_type)
    if not present:
        return f"This study has no {series_type} series: {prior}."
    return f"{series_type} series {', '.join(map(str, present))} read, but no {what} point was localised: {prior}."


def _render(image: np.ndarray, shape: tuple[int, int], size: tuple[float, float], title: str,
            marks: list[tuple[float, float, str, str, bool]]) -> np.ndarray:
    """Draw ``image`` over native extent ``shape`` (H, W) with marks (x, y, label, colour, filled) → (h, w, 3) uint8."""
    fig = Figure(figsize=size, dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 0.86))
    height, width = shape
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, extent=(0, width, height, 0), interpolation="bilinear")
    for x, y, label, colour, filled in marks:
        ax.scatter([x], [y], s=22, marker="o", linewidths=1.2, edgecolors=colour,
                   facecolors=colour if filled else "none")
        ax.annotate(label, (x, y), xytext=(5, 2), textcoords="offset points", color=colour, fontsize=6.5,
                    fontweight="bold", path_effects=OUTLINE)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    fig.text(0.5, 0.93, title, ha="center", va="center", fontsize=6.5, linespacing=1.2)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _text_tile(text: str, size: tuple[float, float]) -> np.ndarray:
    """A light grey tile carrying ``text`` (the PNG's stand-in for a missing view)."""
    fig = Figure(figsize=size, dpi=DPI, facecolor="#eeeeee")
    canvas = FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, _wrap(text, 34 if size[0] >= 3 else 28), ha="center", va="center", fontsize=7)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])


def _shown_slice(rows: pd.DataFrame) -> tuple[int, int]:
    """(series_id, k) most of ``rows``' points sit on (ties: the lowest), the slice a view shows."""
    counts = rows.groupby(["series_id", "k"]).size()
    series_id, k = counts[counts == counts.max()].index[0]
    return int(series_id), int(k)


def _panel(view: StudyView, rows: pd.DataFrame, key: str, title: str, size: tuple[float, float],
           label: Callable[[tuple], str]) -> Panel | None:
    """The view of ``rows``' points on the slice most of them share; ``label(row)`` names a point."""
    series_id, k = _shown_slice(rows)
    image = view.slices.get((series_id, k))
    if image is None:
        return None
    marks = []
    for p in rows.itertuples():
        elsewhere = (int(p.series_id), int(p.k)) != (series_id, k)
        on = f"series {int(p.series_id)}, " if int(p.series_id) != series_id else ""
        text = label(p) + (f" ({on}slice {int(p.k)})" if elsewhere else "")
        marks.append((float(p.x), float(p.y), text, LEVEL_COLOURS.get(p.level, "white"), not elsewhere))
    instance = rows.loc[(rows["series_id"] == series_id) & (rows["k"] == k), "instance_number"]
    suffix = f", instance {int(instance.iloc[0])}" if len(instance) and pd.notna(instance.iloc[0]) else ""
    where = f"series {series_id}, slice {k}{suffix}"
    shape = view.shapes.get(series_id, image.shape)
    return Panel(key, f"{title} ({where})", _render(image, shape, size, f"{title}\n{where}", marks))


def _at(view: StudyView, conditions: tuple[str, ...], level: str | None = None) -> pd.DataFrame:
    points = view.points
    if points.empty or "series_id" not in points:
        return points.iloc[0:0]
    keep = points["condition"].isin(conditions)
    if level is not None:
        keep &= points["level"] == level
    return points[keep]


def sagittal_panels(view: StudyView) -> list[Panel]:
    """Sagittal T2 (canal points) and Sagittal T1 (left, right foraminal points): three views or their notes."""
    panels = []
    canal = _at(view, ("spinal_canal_stenosis",))
    panel = _panel(view, canal, "sagittal_t2", "Sagittal T2/STIR: spinal canal", SAGITTAL_SIZE,
                   lambda p: LEVEL_WORDS[p.level]) if len(canal) else None
    panels.append(panel or Panel("sagittal_t2", "Sagittal T2/STIR: spinal canal",
                                 note=_absent(view, SAGITTAL_T2, "spinal canal")))
    for side in SIDES:
        key, title = f"sagittal_t1_{side}", f"Sagittal T1: {side} foramina"
        foramina = _at(view, (f"{side}_neural_foraminal_narrowing",))
        panel = _panel(view, foramina, key, title, SAGITTAL_SIZE,
                       lambda p: LEVEL_WORDS[p.level]) if len(foramina) else None
        panels.append(panel or Panel(key, title, note=_absent(view, SAGITTAL_T1, f"{side} foraminal")))
    return panels


def axial_panels(view: StudyView) -> list[Panel]:
    """One Axial T2 view per level with its left (L) and right (R) subarticular points, or one note for all."""
    conditions = tuple(f"{side}_subarticular_stenosis" for side in SIDES)
    if _at(view, conditions).empty:
        return [Panel("axial", "Axial T2: subarticular recesses", note=_absent(view, AXIAL_T2, "subarticular"))]
    panels = []
    for level in LEVELS:
        key, title = f"axial_{level}", f"Axial T2: {LEVEL_WORDS[level]}"
        at = _at(view, conditions, level)
        panel = _panel(view, at, key, title, AXIAL_SIZE,
                       lambda p: SIDES[p.condition.split("_")[0]]) if len(at) else None
        panels.append(panel or Panel(key, title, note=f"No axial slice was found for {LEVEL_WORDS[level]} (the canal "
                                                      "point projects onto no axial stack): its subarticular rows "
                                                      "come from the training prior."))
    return panels


def grade_grid(rows: pd.DataFrame, study_id: int) -> np.ndarray:
    """The 25 rows as a condition × level grid: colour = most likely grade, text = its probability (for the PNG)."""
    fig = Figure(figsize=(SAGITTAL_SIZE[0], SAGITTAL_SIZE[1]), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.30, 0.12, 0.68, 0.74))
    table = _study_rows(rows, study_id).set_index("row_id")
    for i, condition in enumerate(CONDITIONS):
        for j, level in enumerate(LEVELS):
            row_id = f"{study_id}_{condition}_{level}"
            if row_id not in table.index:
                continue
            proba = table.loc[row_id, list(PROBABILITY_COLUMNS)].to_numpy(float)
            grade = int(np.argmax(proba))
            ax.add_patch(_cell(j, i, GRADE_COLOURS[grade]))
            ax.text(j + 0.5, i + 0.5, f"{proba[grade]:.2f}", ha="center", va="center", fontsize=6, color="white")
    ax.set_xlim(0, len(LEVELS))
    ax.set_ylim(len(CONDITIONS), 0)
    ax.set_xticks(np.arange(len(LEVELS)) + 0.5, [LEVEL_WORDS[lv] for lv in LEVELS], fontsize=5.5)
    short = ["canal", "L foramen", "R foramen", "L subartic.", "R subartic."]
    ax.set_yticks(np.arange(len(CONDITIONS)) + 0.5, short, fontsize=6)
    ax.tick_params(length=0)
    fig.text(0.5, 0.95, "Most likely grade (its probability)", ha="center", va="center", fontsize=7)
    for g, (grade, colour) in enumerate(zip(GRADES, GRADE_COLOURS)):
        fig.text(0.2 + 0.3 * g, 0.02, f"■ {grade}", ha="center", fontsize=6, color=colour, fontweight="bold")
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _cell(x: int, y: int, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle((x + 0.04, y + 0.04), 0.92, 0.92, color=colour)


# --- output ----------------------------------------------------------------------------------------------------

def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def tile(rows_of_images: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    """Images (h, w, 3) laid out row by row on a white canvas, ``gap`` pixels apart → (H, W, 3) uint8."""
    rows_of_images = [r for r in rows_of_images if r]
    widths = [sum(i.shape[1] for i in r) + gap * (len(r) - 1) for r in rows_of_images]
    heights = [max(i.shape[0] for i in r) for r in rows_of_images]
    canvas = np.full((sum(heights) + gap * (len(heights) - 1), max(widths), 3), 255, dtype=np.uint8)
    top = 0
    for row, height in zip(rows_of_images, heights):
        left = 0
        for image in row:
            canvas[top:top + image.shape[0], left:left + image.shape[1]] = image
            left += image.shape[1] + gap
        top += height + gap
    return canvas


def _study_rows(rows: pd.DataFrame, study_id: int) -> pd.DataFrame:
    """The study's rows in submission order (conditions then levels); rows of other studies dropped."""
    order = pd.DataFrame({"row_id": row_ids(study_id)})
    return order.merge(rows[["row_id", *PROBABILITY_COLUMNS]], on="row_id", how="inner")


def _where(view: StudyView, row_id: str) -> str:
    """'Series s, instance i, (x, y)' of the point a row was graded at, or that there is none."""
    points = view.points
    if points.empty or "series_id" not in points:
        return "not localised (prior)"
    key = row_id[len(str(view.study_id)) + 1:]
    at = points[(points["condition"] + "_" + points["level"]) == key]
    if at.empty:
        return "not localised (prior)"
    p = at.iloc[0]
    return f"series {int(p['series_id'])}, instance {int(p['instance_number'])}, ({p['x']:.0f}, {p['y']:.0f})"


def rows_table(rows: pd.DataFrame, view: StudyView) -> str:
    """The study's rows as an HTML table, the most likely grade of each row highlighted."""
    table = _study_rows(rows, view.study_id)
    head = "".join(f"<th>{c}</th>" for c in ("row_id", *PROBABILITY_COLUMNS, "point (series, instance, x, y)"))
    body = []
    for r in table.itertuples(index=False):
        proba = [float(getattr(r, c)) for c in PROBABILITY_COLUMNS]
        top = int(np.argmax(proba))
        cells = "".join(f'<td class="top g{g}">{v:.3f}</td>' if g == top else f"<td>{v:.3f}</td>"
                        for g, v in enumerate(proba))
        body.append(f"<tr><td>{html.escape(r.row_id)}</td>{cells}<td>{html.escape(_where(view, r.row_id))}</td></tr>")
    return f'<table class="rows"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 72em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.4em; }
figure { display: inline-block; margin: 0 0.6em 0.6em 0; vertical-align: top; }
figcaption { font-size: 0.8em; color: #555; max-width: 20em; }
p.missing { background: #fff3e0; border-left: 4px solid #ff9800; padding: 0.4em 0.8em; }
table.rows { border-collapse: collapse; font-size: 0.85em; }
table.rows th, table.rows td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
table.rows td:first-child, table.rows td:last-child { text-align: left; font-family: monospace; }
td.top { font-weight: bold; color: white; }
td.g0 { background: #4caf50; } td.g1 { background: #ff9800; } td.g2 { background: #e53935; }
"""


def ranking_table(view: StudyView) -> str:
    """The continuous severity section: one row per level, one column per task, "score ± spread" (HTML)."""
    if view.ranking is None or view.ranking.empty:
        return f"<p>{html.escape(view.ranking_note)}</p>" if view.ranking_note else ""
    cells = [f"{score:.2f} ± {spread:.2f}" for score, spread in zip(view.ranking["score"], view.ranking["spread"])]
    frame = view.ranking.assign(cell=cells)
    table = frame.pivot(index="level", columns="task", values="cell")[list(dict.fromkeys(frame["task"]))]
    head = "".join(f"<th>{html.escape(t.replace('_', ' '))}</th>" for t in table.columns)
    body = "".join(f"<tr><td>{html.escape(str(level))}</td>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row)
                   + "</tr>" for level, row in table.iterrows())
    return (f"<h2>Continuous severity (ranking study)</h2>\n<p>{html.escape(view.ranking_note)}</p>\n"
            f"<table><tr><th>level</th>{head}</tr>{body}</table>")


def _section(heading: str, panels: list[Panel]) -> str:
    parts = [f"<h2>{html.escape(heading)}</h2>"]
    for panel in panels:
        if panel.image is None:
            parts.append(f'<p class="missing" data-view="{panel.key}">{html.escape(panel.note)}</p>')
        else:
            data = base64.b64encode(_png(panel.image)).decode("ascii")
            parts.append(f'<figure data-view="{panel.key}"><img alt="{html.escape(panel.title)}" '
                         f'src="data:image/png;base64,{data}"><figcaption>{html.escape(panel.title)}</figcaption>'
                         "</figure>")
    return "\n".join(parts)


def report_paths(out_dir: Path | str, study_id: int) -> tuple[Path, Path]:
    """(HTML, PNG) paths of one study's report: ``<out_dir>/<study_id>.html`` and ``.png``."""
    out_dir = Path(out_dir)
    return out_dir / f"{int(study_id)}.html", out_dir / f"{int(study_id)}.png"


def write_report(view: StudyView, rows: pd.DataFrame, out_dir: Path | str, notes: Sequence[str] = ()) -> Path:
    """Write ``<out_dir>/<study_id>.html`` (self-contained) and ``<study_id>.png``; return the HTML path.

    ``rows``: submission rows (row_id + the three probabilities), of this study or of several (the others are
    ignored); ``notes``: the grader's log lines about this study, listed on the page. Missing series give a
    sentence on the page and a grey tile in the PNG, never an error.
    """
    study_id = view.study_id
    html_path, png_path = report_paths(out_dir, study_id)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    sagittal, axial = sagittal_panels(view), axial_panels(view)
    grid = grade_grid(rows, study_id)
    tiles = [[p.image if p.image is not None else _text_tile(p.note, SAGITTAL_SIZE) for p in sagittal] + [grid],
             [p.image if p.image is not None else _text_tile(p.note, AXIAL_SIZE) for p in axial]]
    png_path.write_bytes(_png(tile(tiles)))
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in dict.fromkeys([*view.problems, *notes]))
    graded = _study_rows(rows, study_id)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Study {study_id}: grading report</title>
<style>{STYLE}</style></head>
<body>
<h1>Study {study_id}: grading report</h1>
<p>Points: Stage 1's predicted slice and in-plane position per condition and level (native pixels; a hollow
point lies on another slice than the one shown). Grades: Stage 2's probabilities at those points; a row
without a point comes from the training prior. Series read: {html.escape(_series_list(view))}.</p>
{f'<ul class="problems">{problems}</ul>' if problems else ''}
{_section("Sagittal T2/STIR: spinal canal", sagittal[:1])}
{_section("Sagittal T1: neural foramina", sagittal[1:])}
{_section("Axial T2: subarticular recesses", axial)}
<h2>Grades ({len(graded)} rows)</h2>
{rows_table(rows, view)}
{ranking_table(view)}
</body></html>
"""
    html_path.write_text(page, encoding="utf-8")
    return html_path


def _series_list(view: StudyView) -> str:
    if not view.series:
        return "none"
    return "; ".join(f"{s} ({d})" for s, d in sorted(view.series.items()))


def write_kept_reports(views: dict[int, StudyView], rows: pd.DataFrame, out_dir: Path | str,
                       messages: Sequence[str] = ()) -> list[Path]:
    """Write the report of every kept view whose study has rows in ``rows``, and drop the view (frees its slices).

    ``views`` is ``Grader.views`` (``Grader(keep_views=True)``); ``messages`` the grader's log, of which each
    study's page lists the lines starting ``study <id>:``. A report that cannot be written is logged and skipped:
    the grading goes on. Returns the HTML paths written.
    """
    graded = set(rows["row_id"].str.split("_", n=1).str[0].astype(int))
    written = []
    for study_id in [s for s in views if s in graded]:
        view = views.pop(study_id)
        notes = [m.split(": ", 1)[1] for m in messages if m.startswith(f"study {study_id}: ")]
        try:
            written.append(write_report(view, rows, out_dir, notes))
        except Exception as err:  # a report must not stop a cohort's grading: log it and go on
            log.warning("study %s: grading report not written (%s: %s)", study_id, type(err).__name__, err)
    return written

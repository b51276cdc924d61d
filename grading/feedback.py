"""``feedback``: one self-contained HTML page per student, beside nbgrader's own feedback.

``feedback/<student>/hw2/report.html`` holds: every graded cell with its points (from the
gradebook), what went wrong while autograding, the loop-quality figures (FAD with its 95 %
interval, IS ± std, the thresholds and the points they gave), how the graded loops were made
from the checkpoint and whether the handed-in preview matches it, every reason a loop did not
count (invalid, near-duplicate, copy of a training loop and which one), a spectrogram grid
and players for a few of the graded loops. Images and audio are embedded (base64), so the
page can be uploaded to the LMS as it is.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import soundfile as sf

from grading.course import ASSIGNMENT, NOTEBOOK, db_url
from grading.policy import Policy
from grading.score import REPRODUCED_SNR_DB, ScoreReport, graded_loops_dir

N_PREVIEW = 4


def _cells_table(course_dir: Path, student: str) -> str:
    from nbgrader.api import Gradebook, MissingEntry

    rows = []
    with Gradebook(db_url(course_dir), course_id="music-synthesis") as gb:
        try:
            nb = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student)
        except MissingEntry:
            return "<p><b>No autograded notebook:</b> the code and written parts could not be graded.</p>"
        for grade in sorted(nb.grades, key=lambda g: g.cell.name):
            score = grade.score if grade.score is not None else 0.0
            if grade.needs_manual_grade:
                status = "waits for a TA"
            else:
                status = "full" if score >= grade.max_score else ("partial" if score > 0 else "none")
            rows.append(f"<tr><td>{html.escape(grade.cell.name)}</td><td>{score:g} / {grade.max_score:g}</td>"
                        f"<td>{status}</td></tr>")
    return ("<table><tr><th>graded cell</th><th>points</th><th></th></tr>" + "".join(rows) + "</table>")


def _audio_tag(x: np.ndarray, sr: int) -> str:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<audio controls src="data:audio/wav;base64,{data}"></audio>'


def _spectrogram_grid(clips: np.ndarray, sr: int, titles: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from course_lib import plot

    fig, _ = plot.clip_grid(torch.from_numpy(clips), sr, ncols=min(4, len(clips)), kind="mel", titles=titles)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return f'<img alt="spectrograms" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _quality_section(report: ScoreReport, policy: Policy, loops_dir: Path) -> str:
    sub = policy.submission
    parts = [f"<h2>Loop quality: {report.points:g} / {report.max_points:g}</h2>",
             f"<p>{html.escape(report.summary())}</p>"]
    if report.fad is not None:
        ci = f" (95 % bootstrap interval {report.fad_ci[0]:.2f} – {report.fad_ci[1]:.2f})" if report.fad_ci else ""
        parts.append("<table><tr><th>metric</th><th>value</th><th>points</th></tr>"
                     f"<tr><td>FAD (lower is better)</td><td>{report.fad:.3f}{ci}</td><td>{report.fad_points:g}</td></tr>"
                     f"<tr><td>IS (higher is better)</td><td>{report.inception_score:.3f} ± "
                     f"{report.inception_score_std or 0:.3f}</td><td>{report.is_points:g}</td></tr>"
                     f"<tr><td>usable loops</td><td>{report.n_usable} / {sub.n_loops}</td>"
                     f"<td>x {report.usable_factor:.2f}</td></tr></table>")
    rows_fad = "".join(f"<li>FAD ≤ {limit:g}: {pts:g} points</li>" for limit, pts in policy.fad_rows)
    rows_is = "".join(f"<li>IS ≥ {limit:g}: {pts:g} points</li>" for limit, pts in policy.is_rows)
    parts.append(f"<details><summary>thresholds (grading/thresholds.toml)</summary><ul>{rows_fad}</ul>"
                 f"<ul>{rows_is}</ul><p>points = (FAD points + IS points) × min(1, usable / {sub.n_loops}); "
                 f"no points with fewer than {sub.min_usable} usable loops.</p></details>")
    ck = report.checkpoint
    if ck:
        parts.append(f"<p><b>How your loops were made:</b> the grader generated the {report.n_required} graded loops "
                     f"itself from your <code>checkpoint.pt</code> (seed {ck.get('seed')}, truncation psi "
                     f"{ck.get('truncation_psi')}, {ck.get('parameters')} parameters, "
                     f"{ck.get('generation_seconds')} s); the WAVs you handed in are not graded.</p>")
        for note in ck.get("notes", []):
            parts.append(f"<p><b>Note:</b> {html.escape(note)}</p>")
    rep = report.reproduction
    if rep.get("compared"):
        doubt = "" if rep["reproduced"] == rep["compared"] else " — flagged for a TA, who may ask how the others were made"
        parts.append(f"<p><b>Reproducibility</b> (no points): {rep['reproduced']} of the first {rep['compared']} "
                     f"loops you handed in match what your checkpoint.pt generates at seed 0 "
                     f"(SNR ≥ {REPRODUCED_SNR_DB:g} dB){doubt}.</p>")
    elif rep:
        parts.append(f"<p><b>Reproducibility</b> (no points): {html.escape(rep.get('note', ''))}.</p>")
    handed = report.handed_in.get("problems", []) if report.handed_in else []
    if handed:
        parts.append(f"<details><summary>Problems in the loops/ you handed in ({len(handed)}; no points depend "
                     f"on them)</summary><ul>" + "".join(f"<li>{html.escape(p)}</li>" for p in handed[:300])
                     + "</ul></details>")
    reasons = [html.escape(p) for p in report.problems]
    reasons += [f"{html.escape(d['loop'])}: near-duplicate of {html.escape(d['same_as'])} "
                f"(distance {d['distance']:.3f})" for d in report.duplicates]
    reasons += [f"{html.escape(m['loop'])}: copy of training loop {html.escape(m['training_loop'])} "
                f"(distance {m['distance']:.3f}, shifted {m['shift_frames']} frames)" for m in report.memorised]
    if reasons:
        parts.append(f"<h3>Why some loops did not count ({len(reasons)})</h3><ul>"
                     + "".join(f"<li>{r}</li>" for r in reasons[:300]) + "</ul>")
    generated = bool(report.checkpoint)  # graded loops made by the scorer: a few kept as WAVs beside the report
    preview = [n for n in report.usable_names[:N_PREVIEW]
               if (loops_dir / (f"{n}.wav" if generated else n)).is_file()]
    if preview and not loops_dir.is_symlink():
        clips = []
        for name in preview:
            x, _ = sf.read(str(loops_dir / (f"{name}.wav" if generated else name)), dtype="float32")
            clips.append(x)
        clips_arr = np.stack(clips)
        parts.append(f"<h3>Some of your {'graded (generated) ' if generated else ''}loops</h3>" + _spectrogram_grid(clips_arr, sub.sample_rate, preview))
        parts.append("".join(f"<p>{html.escape(n)}<br>{_audio_tag(c, sub.sample_rate)}</p>"
                             for n, c in zip(preview, clips_arr)))
    return "\n".join(parts)


def write_report(course_dir: Path, student: str, report: ScoreReport | None, policy: Policy,
                 autograde_message: str = "") -> Path:
    """Write ``feedback/<student>/hw2/report.html`` and return its path."""
    course_dir = Path(course_dir)
    out = course_dir / "feedback" / student / ASSIGNMENT / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    loops_dir = graded_loops_dir(course_dir, student)
    if report is not None and not report.checkpoint:
        loops_dir = course_dir / "submitted" / student / ASSIGNMENT / "loops"
    body = [f"<h1>HW2 feedback — {html.escape(student)}</h1>", "<h2>Code and written parts</h2>",
            _cells_table(course_dir, student)]
    if autograde_message:
        body.append(f"<p><b>Autograding:</b> {html.escape(autograde_message)}</p>")
    body.append('<p>Your notebook with each test\'s output: <a href="hw2.html">hw2.html</a>.</p>')
    if report is None:
        body.append("<h2>Loop quality</h2><p>Not scored yet.</p>")
    else:
        body.append(_quality_section(report, policy, loops_dir))
    page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>HW2 feedback</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto} table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 10px} img{max-width:100%}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    out.write_text(page, encoding="utf-8")
    return out

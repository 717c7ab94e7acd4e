"""One stored AnalysisReport as a self-contained HTML page: inline SVG, CSS and JS, nothing from the network.

`render_report(report)` is a pure function of the report's JSON (a dict), shared by `GET /report/{id}` and
`reelscope analyze --html`. Analyzer results are read duck-typed (`.get` with defaults): a field an analyzer
does not produce yet leaves its lane empty instead of breaking the page, and an analyzer that did not end
`ok` turns its lane into "unavailable: reason".

The lane colours are fixed constants (`COLORS`) so a test can find the drawn timeline in a screenshot.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from deployments.schema import Thumbnail

COLORS = {
    "shot_a": "#3b6fb6", "shot_b": "#7fa7dc", "cut": "#d62728", "scene": "#8c6bb1", "speech": "#2e9e44",
    "text": "#e3b505", "object": "#c2569b", "loudness": "#e15759", "beat": "#f28e2b", "contact": "#17becf",
    "no_contact": "#c7d9dd", "unavailable": "#d9d9d9", "axis": "#555555",
}
CAMERA_COLORS = {"static": "#bdbdbd", "pan_left": "#1f77b4", "pan_right": "#4a98d0", "tilt_up": "#2ca02c",
                 "tilt_down": "#62c462", "zoom_in": "#ff7f0e", "zoom_out": "#ffae5c", "shake": "#9467bd"}
SCENE_COLORS = ("#8c6bb1", "#b39ddb")

WIDTH = 1200          # SVG user units = CSS pixels: the page draws the timeline at this fixed width
LABEL_W = 150         # left column with lane names
PLOT_W = WIDTH - LABEL_W - 30  # room for the last tick label
LANE_H = 30
THUMB_H = 64
MAX_OBJECT_ROWS = 6
MAX_TEXT_ROWS = 4
THUMBNAILS = 10
THUMBNAIL_SIDE = 160


def render_report(report: dict[str, Any]) -> str:
    video = report.get("video") or {}
    duration = float(video.get("duration") or 0.0) or _latest_time(report) or 1.0
    outcomes = report.get("analyzers") or {}
    timeline = _Timeline(duration)
    timeline.thumbnails(report.get("thumbnails") or [])
    _lane_shots(timeline, outcomes.get("cut_analysis"))
    _lane_scenes(timeline, outcomes.get("scene_segmentation"))
    _lane_speech(timeline, outcomes.get("speech_transcription"))
    _lane_text(timeline, outcomes.get("text_overlay"))
    _lanes_objects(timeline, outcomes.get("object_detection"))
    _lane_loudness(timeline, outcomes.get("audio_analysis"))
    _lane_eye_contact(timeline, outcomes.get("eye_tracking"))
    _lane_camera(timeline, outcomes.get("camera_analysis"))
    source = report.get("source") or {}
    title = f"reelscope report: {source.get('filename', report.get('id', ''))}"
    body = "\n".join([
        _header(report, video, source),
        '<section id="timeline"><h2>Timeline</h2>', timeline.svg(), "</section>",
        _summary_section(outcomes.get("video_llava")),
        _transcript_section(outcomes.get("speech_transcription")),
        _text_section(outcomes.get("text_overlay")),
        _objects_section(outcomes.get("object_detection")),
        _status_section(report, outcomes),
    ])
    return PAGE.format(title=_e(title), style=STYLE, body=body, script=SCRIPT.replace("__DURATION__", json.dumps(duration))
                       .replace("__PLOT_X__", str(LABEL_W)).replace("__PLOT_W__", str(PLOT_W)))


def make_thumbnails(bundle: Any, count: int = THUMBNAILS, side: int = THUMBNAIL_SIDE) -> list[Thumbnail]:
    """A few small JPEGs from a frame set the analyzers asked for anyway: no extra decoding. Prefers the set
    closest to `side` from above (sharp, cheap to shrink) with enough frames; none when no frames were decoded."""
    import base64

    import cv2
    import numpy as np

    sets = [s for s in bundle.frame_sets.values() if len(s)]
    if not sets:
        return []
    chosen = max(sets, key=lambda s: (min(s.spec.max_side, side), min(len(s), count), -s.spec.max_side, -len(s), s.spec.key))
    picks = np.unique(np.linspace(0, len(chosen) - 1, min(count, len(chosen))).round().astype(int))
    out = []
    for i in picks.tolist():
        frame = chosen.frames[i]
        scale = side / max(frame.shape[:2])
        if scale < 1:
            frame = cv2.resize(frame, (max(1, round(frame.shape[1] * scale)), max(1, round(frame.shape[0] * scale))),
                               interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])
        if ok:
            out.append(Thumbnail(time=round(float(chosen.timestamps[i]), 3), jpeg_base64=base64.b64encode(jpeg.tobytes()).decode()))
    return out


# ---- reading results duck-typed --------------------------------------------------------------------------

def _ok(outcome: Any) -> dict[str, Any] | None:
    if isinstance(outcome, dict) and outcome.get("status") == "ok" and isinstance(outcome.get("result"), dict):
        return outcome["result"]
    return None


def _why_not(outcome: Any, name: str) -> str:
    if not isinstance(outcome, dict):
        return f"not requested: {name} was not part of this analysis"
    status = outcome.get("status") or "unknown"
    reason = outcome.get("error") or "no result"
    return f"{'unavailable' if status in ('unavailable', 'not_implemented') else status}: {reason}"


def _num(value: Any, default: float = 0.0) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _latest_time(report: dict[str, Any]) -> float:
    cut = _ok((report.get("analyzers") or {}).get("cut_analysis")) or {}
    return max([_num(s.get("end")) for s in _list(cut.get("shots")) if isinstance(s, dict)], default=0.0)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _tick(seconds: float, step: float) -> str:
    return f"{seconds:g} s" if step < 1 else f"{int(seconds // 60)}:{int(round(seconds % 60)):02d}"


def _clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60)}:{seconds % 60:05.2f}"


# ---- the timeline ------------------------------------------------------------------------------------------

class _Timeline:
    def __init__(self, duration: float):
        self.duration = duration
        self.parts: list[str] = []
        self.y = 0

    def x(self, t: float) -> float:
        return round(LABEL_W + PLOT_W * min(max(_num(t) / self.duration, 0.0), 1.0), 2)

    def _label(self, name: str, height: int) -> None:
        self.parts.append(f'<text class="lane-label" x="{LABEL_W - 8}" y="{self.y + height / 2 + 4}" text-anchor="end">{_e(name)}</text>')

    def lane(self, name: str, height: int = LANE_H) -> int:
        """Start a lane; returns its top y."""
        self._label(name, height)
        self.parts.append(f'<rect class="lane-bg" x="{LABEL_W}" y="{self.y}" width="{PLOT_W}" height="{height}"/>')
        top = self.y
        self.y += height + 6
        return top

    def unavailable(self, name: str, reason: str) -> None:
        top = self.lane(name)
        self.parts.append(f'<rect x="{LABEL_W}" y="{top}" width="{PLOT_W}" height="{LANE_H}" fill="url(#hatch)" '
                          f'data-lane="{_e(name)}" class="unavailable"/>')
        self.parts.append(f'<text class="lane-note" x="{LABEL_W + 8}" y="{top + LANE_H / 2 + 4}">{_e(reason[:160])}</text>')

    def note(self, top: int, text: str, height: int = LANE_H) -> None:
        self.parts.append(f'<text class="lane-note" x="{LABEL_W + 8}" y="{top + height / 2 + 4}">{_e(text)}</text>')

    def span(self, top: int, start: float, end: float, color: str, tip: str, height: int = LANE_H, css: str = "") -> None:
        x0, x1 = self.x(start), self.x(end)
        self.parts.append(f'<rect class="item {css}" x="{x0}" y="{top + 3}" width="{max(x1 - x0, 2):.2f}" height="{height - 6}" '
                          f'fill="{color}" data-start="{_num(start):.3f}" data-end="{_num(end):.3f}"><title>{_e(tip)}</title></rect>')

    def mark(self, top: int, t: float, color: str, tip: str, height: int = LANE_H, width: float = 2) -> None:
        self.parts.append(f'<rect class="mark" x="{self.x(t) - width / 2:.2f}" y="{top}" width="{width}" height="{height}" '
                          f'fill="{color}" data-start="{_num(t):.3f}"><title>{_e(tip)}</title></rect>')

    def thumbnails(self, thumbs: list[Any]) -> None:
        thumbs = [t for t in thumbs if isinstance(t, dict) and t.get("jpeg_base64")]
        top = self.lane("frames", THUMB_H)
        if not thumbs:
            self.parts.append(f'<text class="lane-note" x="{LABEL_W + 8}" y="{top + THUMB_H / 2 + 4}">no frames were decoded for this report</text>')
            return
        slot = PLOT_W / len(thumbs)
        for i, thumb in enumerate(thumbs):
            x = LABEL_W + i * slot
            self.parts.append(
                f'<image class="thumb" x="{x + 1:.2f}" y="{top + 2}" width="{slot - 2:.2f}" height="{THUMB_H - 4}" '
                f'preserveAspectRatio="xMidYMid meet" href="data:image/jpeg;base64,{_e(thumb["jpeg_base64"])}">'
                f'<title>{_clock(_num(thumb.get("time")))}</title></image>')
            self.parts.append(f'<rect class="mark" x="{self.x(_num(thumb.get("time"))) - 1:.2f}" y="{top + THUMB_H - 4}" '
                              f'width="2" height="4" fill="{COLORS["axis"]}"/>')

    def axis(self) -> None:
        step = next((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300) if self.duration / s <= 12), 600)
        t = 0.0
        while t <= self.duration + 1e-6:
            x = self.x(t)
            self.parts.append(f'<line x1="{x}" x2="{x}" y1="{self.y}" y2="{self.y + 6}" stroke="{COLORS["axis"]}"/>'
                              f'<text class="tick" x="{x}" y="{self.y + 18}" text-anchor="middle">{_tick(t, step)}</text>')
            t += step
        self.y += 24

    def svg(self) -> str:
        self.axis()
        height = self.y
        return (f'<svg id="timeline-svg" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
                f'viewBox="0 0 {WIDTH} {height}" data-duration="{self.duration}">'
                '<defs><pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
                f'<rect width="8" height="8" fill="#f3f3f3"/><rect width="4" height="8" fill="{COLORS["unavailable"]}"/></pattern></defs>'
                + "".join(self.parts)
                + f'<line id="cursor" x1="{LABEL_W}" x2="{LABEL_W}" y1="0" y2="{height - 24}" stroke="#000" stroke-width="1" visibility="hidden"/>'
                + "</svg>")


def _lane_shots(tl: _Timeline, outcome: Any) -> None:
    result = _ok(outcome)
    if result is None:
        return tl.unavailable("shots & cuts", _why_not(outcome, "cut_analysis"))
    top = tl.lane("shots & cuts")
    for i, shot in enumerate(s for s in _list(result.get("shots")) if isinstance(s, dict)):
        start, end = _num(shot.get("start")), _num(shot.get("end"))
        tl.span(top, start, end, COLORS["shot_a"] if i % 2 == 0 else COLORS["shot_b"], f"shot {i + 1}: {_clock(start)}–{_clock(end)}")
    for tr in (t for t in _list(result.get("transitions")) if isinstance(t, dict)):
        tl.span(top, _num(tr.get("start")), _num(tr.get("end")), "#ffffff", f"{tr.get('kind', 'transition')} "
                f"{_clock(_num(tr.get('start')))}–{_clock(_num(tr.get('end')))}", css="transition")
    for cut in (c for c in _list(result.get("cuts")) if isinstance(c, dict)):
        tl.mark(top, _num(cut.get("time")), COLORS["cut"], f"cut at {_clock(_num(cut.get('time')))} (frame {cut.get('frame')})", width=3)


def _lane_scenes(tl: _Timeline, outcome: Any) -> None:
    result = _ok(outcome)
    if result is None:
        return tl.unavailable("scenes", _why_not(outcome, "scene_segmentation"))
    top = tl.lane("scenes")
    for i, scene in enumerate(s for s in _list(result.get("scenes")) if isinstance(s, dict)):
        start, end = _num(scene.get("start")), _num(scene.get("end"))
        tl.span(top, start, end, SCENE_COLORS[i % 2], f"scene {i + 1}: {_clock(start)}–{_clock(end)}")


def _lane_speech(tl: _Timeline, outcome: Any) -> None:
    result = _ok(outcome)
    if result is None:
        return tl.unavailable("speech", _why_not(outcome, "speech_transcription"))
    top = tl.lane("speech")
    segments = [s for s in _list(result.get("segments")) if isinstance(s, dict)]
    for seg in segments:
        tl.span(top, _num(seg.get("start")), _num(seg.get("end")), COLORS["speech"], str(seg.get("text", "")).strip())
    if not segments:
        tl.note(top, "no speech found")


def _lane_text(tl: _Timeline, outcome: Any) -> None:
    result = _ok(outcome)
    if result is None:
        return tl.unavailable("on-screen text", _why_not(outcome, "text_overlay"))
    events = sorted((e for e in _list(result.get("events")) if isinstance(e, dict)), key=lambda e: _num(e.get("start")))
    rows = _pack([(_num(e.get("start")), _num(e.get("end"))) for e in events], MAX_TEXT_ROWS)
    row_h = 16
    count = max(rows, default=0) + 1
    top = tl.lane("on-screen text", max(LANE_H, count * row_h + 4))
    for event, row in zip(events, rows):
        tl.span(top + 2 + row * row_h, _num(event.get("start")), _num(event.get("end")), COLORS["text"],
                f'{_clock(_num(event.get("start")))}–{_clock(_num(event.get("end")))} {event.get("text", "")}', height=row_h)
    if not events:
        tl.note(top, "no text found")


def _pack(spans: list[tuple[float, float]], max_rows: int) -> list[int]:
    """Row per span so that spans on one row do not overlap (texts shown at once stack); the last row takes the rest."""
    row_ends: list[float] = []
    rows = []
    for start, end in spans:
        row = next((i for i, last in enumerate(row_ends) if last <= start), None)
        if row is None:
            row = len(row_ends) if len(row_ends) < max_rows else max_rows - 1
            if row == len(row_ends):
                row_ends.append(end)
        row_ends[row] = max(row_ends[row], end) if row_ends[row] > start else end
        rows.append(row)
    return rows


def _lanes_objects(tl: _Timeline, outcome: Any) -> None:
    result = _ok(outcome)
    if result is None:
        return tl.unavailable("objects", _why_not(outcome, "object_detection"))
    tracks = [t for t in _list(result.get("tracks")) if isinstance(t, dict)]
    by_label: dict[str, list[dict]] = {}
    for track in tracks:
        by_label.setdefault(str(track.get("label", "?")), []).append(track)
    if not by_label:
        top = tl.lane("objects")
        tl.parts.append(f'<text class="lane-note" x="{LABEL_W + 8}" y="{top + LANE_H / 2 + 4}">no objects tracked</text>')
        return
    ranked = sorted(by_label.items(), key=lambda kv: -sum(_num(t.get("last_seen")) - _num(t.get("first_seen")) for t in kv[1]))
    for label, label_tracks in ranked[:MAX_OBJECT_ROWS]:
        top = tl.lane(f"object: {label}"[:24], 20)
        for track in label_tracks:
            first, last = _num(track.get("first_seen")), _num(track.get("last_seen"))
            tl.span(top, first, last, COLORS["object"], f"{label} #{track.get('track_id')}: {_clock(first)}–{_clock(last)}", height=20)


def _lane_loudness(tl: _Timeline, outcome: Any) -> None:
    result = _ok(outcome)
    if result is None:
        return tl.unavailable("loudness & beats", _why_not(outcome, "audio_analysis"))
    height = 50
    top = tl.lane("loudness & beats", height)
    points = [(_num(p.get("time")), _num(p.get("lufs"), -70.0)) for p in _list(result.get("short_term_lufs")) if isinstance(p, dict)]
    hop = _num(result.get("rms_hop_seconds"), 0.0)
    if hop > 0 and _list(result.get("rms_curve_dbfs")):
        points = [((i + 0.5) * hop, _num(v, -70.0)) for i, v in enumerate(result["rms_curve_dbfs"])]
    for beat in _list(result.get("beats")):
        tl.mark(top, _num(beat), COLORS["beat"], f"beat {_clock(_num(beat))}", height=height, width=1.5)
    if points:
        floor, ceil = -60.0, 0.0

        def y(level: float) -> float:
            return round(top + height - 2 - (height - 4) * (min(max(level, floor), ceil) - floor) / (ceil - floor), 2)

        path = " ".join(f"{tl.x(t)},{y(v)}" for t, v in points)
        lufs = result.get("integrated_lufs")
        tip = f"integrated {lufs} LUFS" if lufs is not None else "loudness"
        tl.parts.append(f'<polyline class="loudness" points="{path}" fill="none" stroke="{COLORS["loudness"]}" stroke-width="2">'
                        f'<title>{_e(tip)}</title></polyline>')


def _lane_eye_contact(tl: _Timeline, outcome: Any) -> None:
    result = _ok(outcome)
    if result is None:
        return tl.unavailable("eye contact", _why_not(outcome, "eye_tracking"))
    top = tl.lane("eye contact")
    samples = [(_num(s[0]), bool(s[1])) for s in _list(result.get("eye_contact_over_time")) if isinstance(s, (list, tuple)) and len(s) >= 2]
    if not samples:
        tl.parts.append(f'<text class="lane-note" x="{LABEL_W + 8}" y="{top + LANE_H / 2 + 4}">no face seen</text>')
        return
    step = min((b[0] - a[0] for a, b in zip(samples, samples[1:]) if b[0] > a[0]), default=0.1)
    run_start, run_value = samples[0]
    for (t, value), nxt in zip(samples, samples[1:] + [(samples[-1][0] + step, None)]):
        if nxt[1] != run_value or nxt[0] - t > 2.5 * step:
            color = COLORS["contact"] if run_value else COLORS["no_contact"]
            tl.span(top, run_start, t + step, color, f"{'eye contact' if run_value else 'looking away'} {_clock(run_start)}–{_clock(t + step)}")
            run_start, run_value = nxt[0], nxt[1]


def _lane_camera(tl: _Timeline, outcome: Any) -> None:
    result = _ok(outcome)
    if result is None:
        return tl.unavailable("camera motion", _why_not(outcome, "camera_analysis"))
    top = tl.lane("camera motion")
    for seg in (s for s in _list(result.get("segments")) if isinstance(s, dict)):
        label = str(seg.get("label", "?"))
        tl.span(top, _num(seg.get("start")), _num(seg.get("end")), CAMERA_COLORS.get(label, "#999999"),
                f"{label} {_clock(_num(seg.get('start')))}–{_clock(_num(seg.get('end')))}")


# ---- the sections ------------------------------------------------------------------------------------------

def _header(report: dict, video: dict, source: dict) -> str:
    cached = '<span class="badge">cached</span>' if report.get("cached") else ""
    facts = [
        f"{_num(video.get('duration')):.1f} s", f"{video.get('width', '?')}×{video.get('height', '?')}",
        f"{_num(video.get('fps')):.2f} fps", f"audio: {'yes' if video.get('has_audio') else 'no'}",
        f"analyzed in {_num(report.get('total_seconds')):.2f} s (decode {_num(report.get('decode_seconds')):.2f} s, "
        f"realtime factor {_num(report.get('realtime_factor')):.3f})",
    ]
    return (f'<header><h1>{_e(source.get("filename", "video"))} {cached}</h1>'
            f'<p class="facts">{" · ".join(_e(f) for f in facts)}</p>'
            f'<p class="meta">report {_e(report.get("id", ""))} · {_e(report.get("created_at", ""))} · '
            f'sha256 {_e(str(source.get("sha256", ""))[:16])}…</p></header>')


def _summary_section(outcome: Any) -> str:
    result = _ok(outcome)
    description = (result or {}).get("description") if result else None
    if not isinstance(description, dict):
        reason = _why_not(outcome, "video_llava") if result is None else f"the model's answer could not be read: {result.get('parse_error')}"
        return f'<section id="summary"><h2>Summary (video-LLM)</h2><p class="unavailable-note">{_e(reason)}</p></section>'
    rows = []
    for key in ("setting", "mood", "hook", "call_to_action"):
        if description.get(key):
            rows.append(f"<tr><th>{_e(key.replace('_', ' '))}</th><td>{_e(description[key])}</td></tr>")
    for key in ("people_and_actions", "objects_and_products", "on_screen_text", "topics", "hashtags"):
        items = [str(i) for i in _list(description.get(key))]
        if items:
            rows.append(f"<tr><th>{_e(key.replace('_', ' '))}</th><td>{_e(', '.join(items))}</td></tr>")
    return (f'<section id="summary"><h2>Summary (video-LLM)</h2><p>{_e(description.get("summary", ""))}</p>'
            f'<table class="kv">{"".join(rows)}</table></section>')


def _transcript_section(outcome: Any) -> str:
    result = _ok(outcome)
    if result is None:
        return f'<section id="transcript"><h2>Transcript</h2><p class="unavailable-note">{_e(_why_not(outcome, "speech_transcription"))}</p></section>'
    lines = [f'<li><button class="seek" data-start="{_num(s.get("start")):.3f}">{_clock(_num(s.get("start")))}</button> '
             f'{_e(str(s.get("text", "")).strip())}</li>' for s in _list(result.get("segments")) if isinstance(s, dict)]
    language = f' <span class="meta">[{_e(result.get("language", "?"))}]</span>'
    return f'<section id="transcript"><h2>Transcript{language}</h2><ol class="transcript">{"".join(lines) or "<li>no speech</li>"}</ol></section>'


def _text_section(outcome: Any) -> str:
    result = _ok(outcome)
    if result is None:
        return f'<section id="text"><h2>On-screen text</h2><p class="unavailable-note">{_e(_why_not(outcome, "text_overlay"))}</p></section>'
    # reports stored before events listed their zones carry only the two flags
    rows = [f"<tr><td>{_clock(_num(e.get('start')))}–{_clock(_num(e.get('end')))}</td><td>{_e(e.get('text', ''))}</td>"
            f"<td>{'⚠ safe zone' if e.get('zones') or e.get('under_right_buttons') or e.get('under_bottom_caption') else ''}</td></tr>"
            for e in _list(result.get("events")) if isinstance(e, dict)]
    return f'<section id="text"><h2>On-screen text</h2><table>{"".join(rows) or "<tr><td>none found</td></tr>"}</table></section>'


def _objects_section(outcome: Any) -> str:
    result = _ok(outcome)
    if result is None:
        return f'<section id="objects"><h2>Objects</h2><p class="unavailable-note">{_e(_why_not(outcome, "object_detection"))}</p></section>'
    counts = result.get("max_simultaneous") if isinstance(result.get("max_simultaneous"), dict) else {}
    rows = [f"<tr><td>{_e(label)}</td><td>{_e(n)}</td></tr>" for label, n in sorted(counts.items(), key=lambda kv: -_num(kv[1]))]
    note = " (random weights: not analysis)" if "random" in str(result.get("weights", "")) else ""
    return (f'<section id="objects"><h2>Objects{_e(note)}</h2><table><tr><th>class</th><th>most at once</th></tr>'
            f'{"".join(rows) or "<tr><td colspan=2>none tracked</td></tr>"}</table></section>')


def _status_section(report: dict, outcomes: dict) -> str:
    rows = []
    for name, outcome in outcomes.items():
        outcome = outcome if isinstance(outcome, dict) else {}
        status = str(outcome.get("status", "?"))
        seconds = outcome.get("seconds")
        rows.append(f'<tr class="status-{_e(status)}"><td>{_e(name)}</td><td>{_e(status)}</td>'
                    f'<td class="num">{"" if seconds is None else f"{_num(seconds):.2f} s"}</td>'
                    f'<td>{_e(outcome.get("model") or "")}</td><td>{_e(outcome.get("group") or "")}</td>'
                    f'<td>{_e((outcome.get("error") or "")[:300])}</td></tr>')
    return ('<section id="status"><h2>Analyzers</h2><table><tr><th>analyzer</th><th>status</th><th>time</th><th>model</th>'
            f'<th>group</th><th>why no result</th></tr>{"".join(rows)}</table></section>')


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title><style>{style}</style></head>
<body>{body}
<div id="tip" hidden></div>
<script>{script}</script></body></html>
"""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 18px 0 6px; }
.facts { margin: 0; } .meta { color: #777; font-size: 12px; margin: 2px 0; }
.badge { background: #ffe08a; border-radius: 4px; font-size: 12px; padding: 1px 6px; vertical-align: middle; }
.lane-bg { fill: #fafafa; stroke: #e6e6e6; } .lane-label { font-size: 12px; fill: #333; }
.lane-note { font-size: 12px; fill: #555; } .tick { font-size: 11px; fill: #555; }
.item:hover, .mark:hover { opacity: .75; } .transition { stroke: #3b6fb6; stroke-dasharray: 2 2; }
table { border-collapse: collapse; font-size: 13px; } td, th { border-bottom: 1px solid #eee; padding: 3px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; } .kv th { color: #555; font-weight: 600; }
tr.status-ok td:nth-child(2) { color: #2e7d32; } tr.status-error td:nth-child(2) { color: #c62828; }
tr.status-unavailable td:nth-child(2), tr.status-skipped td:nth-child(2), tr.status-not_implemented td:nth-child(2) { color: #8d6e00; }
.unavailable-note { color: #8d6e00; } ol.transcript { padding-left: 20px; }
button.seek { font: 12px monospace; border: 1px solid #ccc; background: #f6f6f6; border-radius: 3px; cursor: pointer; }
#tip { position: fixed; pointer-events: none; background: #222; color: #fff; font-size: 12px; padding: 3px 6px; border-radius: 3px; }
"""

SCRIPT = """
(function () {
  "use strict";
  var svg = document.getElementById("timeline-svg");
  var cursor = document.getElementById("cursor");
  var tip = document.getElementById("tip");
  var duration = __DURATION__, plotX = __PLOT_X__, plotW = __PLOT_W__;
  function clock(t) { var m = Math.floor(t / 60), s = (t % 60).toFixed(2); return m + ":" + (s.length < 5 ? "0" : "") + s; }
  function place(t) {
    var x = plotX + plotW * Math.min(Math.max(t / duration, 0), 1);
    cursor.setAttribute("x1", x); cursor.setAttribute("x2", x); cursor.setAttribute("visibility", "visible");
  }
  svg.addEventListener("mousemove", function (ev) {
    var box = svg.getBoundingClientRect(), x = ev.clientX - box.left;
    if (x < plotX || x > plotX + plotW) { cursor.setAttribute("visibility", "hidden"); tip.hidden = true; return; }
    var t = (x - plotX) / plotW * duration;
    place(t);
    var title = ev.target.querySelector ? ev.target.querySelector("title") : null;
    tip.textContent = clock(t) + (title ? "  " + title.textContent : "");
    tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px"; tip.hidden = false;
  });
  svg.addEventListener("mouseleave", function () { cursor.setAttribute("visibility", "hidden"); tip.hidden = true; });
  Array.prototype.forEach.call(document.querySelectorAll("button.seek"), function (b) {
    b.addEventListener("click", function () { place(parseFloat(b.getAttribute("data-start"))); svg.scrollIntoView(); });
  });
  document.body.setAttribute("data-ready", "1");
})();
"""

"""`index.html`: watch the detections over the video, in any browser, from the file itself (no server, no network).

People judge temporal detections by watching them, so the page puts each video's player above lanes of its
ground truth, detections and proposals; a click on a segment plays exactly that segment. The page is one file
with its CSS and JavaScript inline (it works from `file://` and can be mailed), and is rendered here, as HTML,
rather than by script from data: every segment is an element carrying `data-start`, `data-end` (seconds),
`data-label` (when labelled) and `data-score` (when scored), for tests and users' scripts, and all user text
(file names, labels) goes through `html.escape`, so no label can end a tag or a script.

A pure function of data (no torch): `predict` hands it what it found.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

UNLABELLED = "#5b6b8c"  # proposals: one neutral colour, the classes keep theirs
LANE_ROW_PX = 18


@dataclass(frozen=True)
class ViewerVideo:
    """One video of the page. A segment is a mapping {"segment": [start, end] seconds, "score": float,
    "label": str}; proposals need no label, ground truth no score (its label is optional too).

    `thumbnails`: a strip shown where the browser cannot play the video's codec, each a data URI
    (`thumbnail_uri`) or an image file (a path, linked relative to the page).
    """

    name: str
    path: Path
    duration: float
    detections: Sequence[Mapping[str, Any]] = ()
    proposals: Sequence[Mapping[str, Any]] = ()
    ground_truth: Sequence[Mapping[str, Any]] | None = None
    thumbnails: Sequence[str | Path] = ()


def thumbnail_uri(image: np.ndarray, quality: int = 70) -> str:
    """An RGB frame [H, W, 3] uint8 as a JPEG data URI: small enough to inline a strip per video."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def class_colour(label: str | None) -> str:
    """The same colour for a class in every lane, video and page: a hue hashed from its name."""
    if label is None:
        return UNLABELLED
    hue = int.from_bytes(hashlib.sha1(label.encode("utf-8")).digest()[:4], "big") % 360
    return f"hsl({hue} 65% 42%)"


def write_viewer(path: Path, videos: Sequence[ViewerVideo], top_k: int = 10) -> Path:
    """Write the page (atomically: a reader never sees half of it). Video and image files are linked by their
    path relative to the page's folder, so keep them where they are relative to it. `top_k`: the segments
    per lane shown at first (the page has a control)."""
    from visionzoo.files import write_text

    path = Path(path)
    page = render_viewer(videos, path.parent, top_k)
    write_text(path, page)
    return path


def render_viewer(videos: Sequence[ViewerVideo], folder: Path, top_k: int = 10) -> str:
    """The page's HTML, with files linked relative to `folder`."""
    labels = sorted(
        {str(s["label"]) for v in videos for s in [*v.detections, *(v.ground_truth or ())] if _label(s) is not None}
    )
    legend = "".join(f'<span class="chip" style="background:{class_colour(c)}">{escape(c)}</span>' for c in labels)
    sections = "".join(_video_section(index, v, folder) for index, v in enumerate(videos))
    rows = "".join(_list_row(index, v) for index, v in enumerate(videos))
    title = f"visionzoo: {len(videos)} video{'s' if len(videos) != 1 else ''}"
    return _PAGE.format(
        title=escape(title),
        css=_CSS,
        js=_JS,
        top_k=max(1, int(top_k)),
        legend=legend or '<span class="muted">no labelled class</span>',
        rows=rows,
        sections=sections,
    )


def _label(segment: Mapping[str, Any]) -> str | None:
    label = segment.get("label")
    return None if label is None else str(label)


def _url(target: str | Path, folder: Path) -> str:
    """A data URI as it is; a file as a URL relative to the page (spaces, '#' and '?' quoted)."""
    if isinstance(target, str) and target.startswith("data:"):
        return target
    relative = os.path.relpath(os.path.abspath(target), os.path.abspath(folder))
    return quote(Path(relative).as_posix(), safe="/")


def _ranked(segments: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(segments, key=lambda s: -float(s["score"]))


def _seg_attributes(video_id: str, segment: Mapping[str, Any], rank: int | None) -> str:
    start, end = (float(t) for t in segment["segment"])
    attributes = {"data-video": video_id, "data-start": f"{start:.3f}", "data-end": f"{end:.3f}"}
    if (label := _label(segment)) is not None:
        attributes["data-label"] = label
    if rank is not None:
        attributes |= {"data-score": f"{float(segment['score']):.4f}", "data-rank": str(rank)}
    return " ".join(f'{key}="{escape(value, quote=True)}"' for key, value in attributes.items())


def _rows(segments: Sequence[Mapping[str, Any]]) -> list[int]:
    """A row per segment so that none covers another in its lane (first fit, in the order given: best first)."""
    ends: list[float] = []
    rows = []
    for s in segments:
        start, end = (float(t) for t in s["segment"])
        row = next((r for r, last in enumerate(ends) if last <= start), len(ends))
        if row == len(ends):
            ends.append(end)
        ends[row] = max(ends[row], end)
        rows.append(row)
    return rows


def _lane(name: str, kind: str, video_id: str, duration: float, segments: Sequence[Mapping[str, Any]],
          scored: bool) -> str:  # fmt: skip
    rows = _rows(segments)
    items = []
    for rank, (s, row) in enumerate(zip(segments, rows, strict=True), start=1):
        start, end = (min(max(float(t), 0.0), duration) for t in s["segment"])
        width = max(100 * (end - start) / duration, 0.4)
        left = min(100 * start / duration, 100 - width)
        label = _label(s)
        colour = class_colour(label)
        text = label or ""
        if scored:
            text = f"{label} {float(s['score']):.2f}" if label else f"{float(s['score']):.2f}"
            alpha = 0.35 + 0.65 * min(max(float(s["score"]), 0.0), 1.0)
            colour = f"color-mix(in srgb, {colour} {alpha * 100:.0f}%, white)"
        style = f"left:{left:.3f}%;width:{width:.3f}%;top:{row * LANE_ROW_PX}px;background:{colour}"
        attributes = _seg_attributes(video_id, s, rank if scored else None)
        items.append(f'<div class="seg" tabindex="0" {attributes} style="{style}">{escape(text)}</div>')
    height = max(1, max(rows, default=0) + 1) * LANE_ROW_PX
    body = "".join(items) or '<span class="muted empty">none</span>'
    return (
        f'<div class="lane {kind}"><div class="lane-name">{escape(name)}</div>'
        f'<div class="track" style="height:{height}px">{body}<div class="playhead"></div></div></div>'
    )


def _axis(duration: float) -> str:
    """Tick marks at a round step, about 8 of them."""
    step = next((s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800) if duration / s <= 10), 3600)
    ticks = []
    for t in np.arange(0.0, duration * 0.95, step):  # none at the very end: its text would leave the track
        text = f"{t:.1f} s" if step < 1 else f"{int(t) // 60}:{int(t) % 60:02d}"
        ticks.append(f'<span class="tick" style="left:{100 * t / duration:.3f}%">{text}</span>')
    return f'<div class="lane axis"><div class="lane-name"></div><div class="track">{"".join(ticks)}</div></div>'


def _video_section(index: int, v: ViewerVideo, folder: Path) -> str:
    video_id = f"video-{index}"
    duration = max(float(v.duration), 1e-3)
    lanes = []
    if v.ground_truth is not None:
        truth = sorted(v.ground_truth, key=lambda s: float(s["segment"][0]))
        lanes.append(_lane("ground truth", "truth", video_id, duration, truth, scored=False))
    lanes.append(_lane("detections", "detections", video_id, duration, _ranked(v.detections), scored=True))
    lanes.append(_lane("proposals", "proposals", video_id, duration, _ranked(v.proposals), scored=True))
    thumbs = "".join(f'<img alt="" src="{escape(_url(t, folder), quote=True)}">' for t in v.thumbnails)
    file_name = escape(Path(v.path).name)
    return f"""
<section class="video" id="section-{index}">
  <h2>{escape(v.name)} <span class="muted">{file_name}, {duration:.1f} s</span></h2>
  <div class="player">
    <video id="{video_id}" src="{escape(_url(v.path, folder), quote=True)}" controls preload="auto" muted
      playsinline></video>
    <div class="fallback" hidden>
      <p class="note">This browser cannot play {file_name} (its codec or file is not supported here): the frames
        below stand in for it; open the file in a video player to watch it.</p>
      <div class="thumbs">{thumbs or '<span class="muted">no thumbnails</span>'}</div>
    </div>
  </div>
  <div class="timeline">{"".join(lanes)}{_axis(duration)}</div>
</section>"""


def _list_row(index: int, v: ViewerVideo) -> str:
    best = _ranked(v.detections)[:3]
    chips = "".join(
        f'<span class="chip pick" tabindex="0" {_seg_attributes(f"video-{index}", s, rank)} '
        f'style="background:{class_colour(_label(s))}">{escape(_label(s) or "?")} {float(s["score"]):.2f} '
        f"<small>{float(s['segment'][0]):.1f}-{float(s['segment'][1]):.1f} s</small></span>"
        for rank, s in enumerate(best, start=1)
    )
    truth = "-" if v.ground_truth is None else str(len(v.ground_truth))
    return (
        f'<tr><td><a href="#section-{index}">{escape(v.name)}</a></td><td>{float(v.duration):.1f} s</td>'
        f"<td>{truth}</td><td>{len(v.detections)}</td><td>{chips or '-'}</td></tr>"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<header>
  <h1>{title}</h1>
  <div class="controls">
    <label>score &ge; <input id="threshold" type="range" min="0" max="1" step="0.01" value="0">
      <output id="threshold-value">0.00</output></label>
    <label>top <input id="top-k" type="number" min="1" value="{top_k}"> per lane</label>
    <span id="shown" class="muted"></span>
  </div>
  <div class="legend">{legend}</div>
</header>
<main>
<table class="videos">
  <thead><tr><th>video</th><th>length</th><th>truth</th><th>detections</th><th>best detections (click to play)</th>
  </tr></thead>
  <tbody>{rows}</tbody>
</table>
{sections}
</main>
<div id="tip" role="tooltip" hidden></div>
<script>{js}</script>
</body>
</html>
"""

_CSS = """
[hidden] { display: none !important; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d232b; background: #f6f7f9; }
header { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid #d8dce2;
  padding: 8px 16px; display: flex; flex-wrap: wrap; gap: 8px 24px; align-items: center; }
h1 { font-size: 17px; margin: 0; }
h2 { font-size: 15px; margin: 0 0 8px; }
main { max-width: 1100px; margin: 0 auto; padding: 12px 16px 40px; }
.muted { color: #6b7480; font-weight: normal; }
.controls { display: flex; gap: 16px; align-items: center; }
.controls input[type=number] { width: 4em; }
.legend { display: flex; flex-wrap: wrap; gap: 4px; }
.chip { color: #fff; border-radius: 3px; padding: 1px 6px; font-size: 12px; white-space: nowrap; }
.chip.pick { cursor: pointer; margin-right: 4px; }
table.videos { border-collapse: collapse; width: 100%; background: #fff; margin-bottom: 16px; }
table.videos th, table.videos td { border-bottom: 1px solid #e3e6ea; padding: 4px 8px; text-align: left; }
section.video { background: #fff; border: 1px solid #d8dce2; border-radius: 6px; padding: 12px; margin: 12px 0; }
.player video { display: block; width: 100%; max-width: 560px; max-height: 315px; background: #000; }
.note { color: #8a4b00; background: #fff4e0; padding: 6px 8px; border-radius: 4px; margin: 0 0 6px; }
.thumbs { display: flex; gap: 2px; overflow-x: auto; }
.thumbs img { height: 72px; }
.timeline { margin-top: 10px; }
.lane { display: flex; align-items: stretch; margin: 3px 0; }
.lane-name { flex: 0 0 100px; font-size: 12px; color: #4a525c; padding-top: 1px; }
.track { position: relative; flex: 1; background: #eef0f3; border-radius: 3px; min-height: 18px; }
.axis .track { background: none; height: 16px; }
.tick { position: absolute; font-size: 11px; color: #6b7480; border-left: 1px solid #b9bfc7; padding-left: 2px; }
.seg { position: absolute; height: 16px; border-radius: 2px; font-size: 11px; line-height: 16px; color: #fff;
  overflow: hidden; white-space: nowrap; text-overflow: ellipsis; padding: 0 3px; box-sizing: border-box;
  cursor: pointer; outline: 1px solid rgba(255, 255, 255, .6); }
.seg:hover, .seg:focus, .seg.playing { outline: 2px solid #111; z-index: 1; }
.truth .seg { cursor: pointer; background-image: repeating-linear-gradient(45deg, transparent 0 6px,
  rgba(255, 255, 255, .18) 6px 9px); }
.empty { font-size: 12px; padding-left: 6px; }
.playhead { position: absolute; top: 0; bottom: 0; width: 2px; background: #d0021b; left: 0; pointer-events: none;
  display: none; }
#tip { position: fixed; z-index: 3; background: #1d232b; color: #fff; padding: 4px 8px; border-radius: 4px;
  font-size: 12px; pointer-events: none; white-space: pre; }
"""

_JS = """
(() => {
  const segments = [...document.querySelectorAll('[data-start]')];
  const scored = segments.filter(s => s.dataset.score !== undefined);
  const threshold = document.getElementById('threshold');
  const topK = document.getElementById('top-k');
  const tip = document.getElementById('tip');
  const playing = new Map();  // video -> the segment element it plays, until its end

  function stop(video) {
    const seg = playing.get(video);
    if (seg) seg.classList.remove('playing');
    playing.delete(video);
  }
  function play(seg) {
    const video = document.getElementById(seg.dataset.video);
    stop(video);
    playing.set(video, seg);
    seg.classList.add('playing');
    video.currentTime = parseFloat(seg.dataset.start);
    if (seg.classList.contains('pick')) video.closest('section').scrollIntoView({block: 'center'});
    video.play().catch(() => {});  // a video the browser cannot play shows its thumbnails instead
  }
  function filter() {
    const low = parseFloat(threshold.value), k = parseInt(topK.value, 10) || Infinity;
    document.getElementById('threshold-value').textContent = low.toFixed(2);
    let shown = 0;
    for (const seg of scored) {
      seg.hidden = parseFloat(seg.dataset.score) < low || parseInt(seg.dataset.rank, 10) > k;
      if (!seg.hidden && !seg.classList.contains('pick')) shown += 1;
    }
    const total = scored.filter(s => !s.classList.contains('pick')).length;
    document.getElementById('shown').textContent = `${shown} of ${total} scored segments shown`;
  }
  function fallback(video) {
    video.hidden = true;
    video.parentElement.querySelector('.fallback').hidden = false;
  }

  for (const video of document.querySelectorAll('video')) {
    const heads = video.closest('section').querySelectorAll('.playhead');
    if (video.error) fallback(video);
    video.addEventListener('error', () => fallback(video));
    video.addEventListener('timeupdate', () => {
      const seg = playing.get(video);
      if (seg && video.currentTime >= parseFloat(seg.dataset.end)) {
        stop(video);
        video.pause();
        video.currentTime = parseFloat(seg.dataset.end);
      }
      const at = `${100 * video.currentTime / video.duration}%`;
      for (const head of heads) { head.style.left = at; head.style.display = 'block'; }
    });
    video.addEventListener('seeking', () => {  // the user scrubbed away from the segment: let it play on
      const seg = playing.get(video);
      if (seg && (video.currentTime < parseFloat(seg.dataset.start) - 0.05
                  || video.currentTime > parseFloat(seg.dataset.end))) stop(video);
    });
  }
  document.addEventListener('click', event => {
    const seg = event.target.closest('[data-start]');
    if (seg) play(seg);
  });
  document.addEventListener('keydown', event => {
    const seg = event.target.closest && event.target.closest('[data-start]');
    if (seg && (event.key === 'Enter' || event.key === ' ')) { event.preventDefault(); play(seg); }
  });
  document.addEventListener('mouseover', event => {
    const seg = event.target.closest('[data-start]');
    if (!seg) { tip.hidden = true; return; }
    const d = seg.dataset, start = parseFloat(d.start), end = parseFloat(d.end);
    const lines = [d.label !== undefined ? d.label : (d.score !== undefined ? `proposal #${d.rank}` : 'segment')];
    if (d.score !== undefined) lines.push(`score ${parseFloat(d.score).toFixed(3)} (#${d.rank})`);
    lines.push(`${start.toFixed(2)} - ${end.toFixed(2)} s (${(end - start).toFixed(2)} s)`);
    tip.textContent = lines.join('\\n');
    tip.hidden = false;
  });
  document.addEventListener('mousemove', event => {
    tip.style.left = `${event.clientX + 12}px`;
    tip.style.top = `${event.clientY + 14}px`;
  });
  threshold.addEventListener('input', filter);
  topK.addEventListener('input', filter);
  filter();
})();
"""

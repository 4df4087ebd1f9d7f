"""Subtitles that never stack: at every moment the one best-scoring segment covering it, with its label and score.

Players show every cue whose time covers the moment, so overlapping proposals written as they are pile up on
the screen. Here the time line is cut at every segment's start and end (rounded to SRT's milliseconds), each
piece gets the best segment covering it (the earlier one on a tie: the higher ranked), and neighbouring pieces
of the same segment are one cue again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Cue:
    start: float  # seconds
    end: float
    text: str


def subtitle_track(segments: Sequence[Mapping[str, Any]]) -> list[Cue]:
    """Non-overlapping cues in time order from segments {"segment": [start, end], "score": float, "label"?: str}.

    A cue's text is its segment's label and score (unlabelled: its rank among the segments by score)."""
    order = sorted(range(len(segments)), key=lambda i: -float(segments[i]["score"]))
    rank = {i: position for position, i in enumerate(order, start=1)}
    spans = [tuple(round(float(t), 3) for t in segments[i]["segment"]) for i in order]
    cuts = sorted({t for span in spans for t in span})
    cues: list[Cue] = []
    last = None
    for start, end in zip(cuts, cuts[1:], strict=False):
        best = next((i for i, (a, b) in zip(order, spans, strict=True) if a <= start and end <= b), None)
        if best is None:
            last = None
            continue
        if best == last:  # the same segment goes on: one cue
            cues[-1] = Cue(cues[-1].start, end, cues[-1].text)
        else:
            cues.append(Cue(start, end, _text(segments[best], rank[best])))
        last = best
    return cues


def _text(segment: Mapping[str, Any], rank: int) -> str:
    label = segment.get("label")
    name = f"proposal #{rank}" if label is None else str(label)
    return f"{name} (score {float(segment['score']):.3f})"


def srt_time(seconds: float) -> str:
    milliseconds = int(round(max(0.0, seconds) * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d},{rest % 1000:03d}"


def format_srt(cues: Sequence[Cue]) -> str:
    return "\n".join(
        f"{number}\n{srt_time(cue.start)} --> {srt_time(cue.end)}\n{cue.text}\n"
        for number, cue in enumerate(cues, start=1)
    )


def write_srt(path: Path, segments: Sequence[Mapping[str, Any]]) -> Path:
    """The SRT of `subtitle_track(segments)`, written atomically (UTF-8: labels may be in any script)."""
    from visionzoo.files import write_text

    text = format_srt(subtitle_track(segments))
    write_text(Path(path), text)
    return Path(path)

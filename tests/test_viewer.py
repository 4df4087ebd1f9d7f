"""The viewer page's HTML without a browser (hostile labels and file names, the segments' data attributes, no
network URL) and subtitles that never stack."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from visionzoo.export.subtitles import format_srt, subtitle_track, write_srt
from visionzoo.export.viewer import ViewerVideo, class_colour, thumbnail_uri, write_viewer

HOSTILE = '</script><script>alert("x")</script> it\'s & <b>'


class Elements(HTMLParser):
    """Every start tag with its attributes, the text outside tags, and whether any script holds markup."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def _page(tmp_path: Path) -> tuple[str, Elements]:
    video_dir = tmp_path / "my videos"
    video_dir.mkdir()
    videos = [
        ViewerVideo(
            name=HOSTILE,
            path=video_dir / 'clip "1" #a.mp4',
            duration=10.0,
            ground_truth=[{"segment": [1.0, 4.0], "label": HOSTILE}, {"segment": [6.0, 8.0], "label": None}],
            detections=[
                {"segment": [1.2, 3.9], "label": HOSTILE, "score": 0.9},
                {"segment": [5.0, 9.0], "label": "juggling", "score": 0.3},
            ],
            proposals=[{"segment": [1.0, 4.0], "score": 0.8}, {"segment": [2.0, 5.0], "score": 0.6}],
            thumbnails=[thumbnail_uri(np.full((8, 12, 3), 200, np.uint8))],
        ),
        ViewerVideo(name="plain", path=tmp_path / "plain.webm", duration=5.0),
    ]
    path = write_viewer(tmp_path / "out" / "index.html", videos)
    page = path.read_text(encoding="utf-8")
    parsed = Elements()
    parsed.feed(page)
    return page, parsed


def test_hostile_text_stays_text(tmp_path: Path) -> None:
    page, parsed = _page(tmp_path)
    assert "alert(" not in "".join(parsed.scripts)  # nothing of the data ended up inside a script
    assert sum(1 for tag, _ in parsed.tags if tag == "script") == 1  # the page's own, no injected one
    assert sum(1 for tag, _ in parsed.tags if tag == "b") == 0
    assert HOSTILE in "".join(parsed.text)  # shown as the text it is
    labels = [a["data-label"] for tag, a in parsed.tags if "data-label" in a]
    assert labels.count(HOSTILE) == 3  # truth, detection lane, best-detections list
    sources = [a["src"] for tag, a in parsed.tags if tag == "video"]
    assert sources == ["../my%20videos/clip%20%221%22%20%23a.mp4", "../plain.webm"]  # relative to the page
    assert not re.search(r"https?:", page)  # nothing fetched from the network


def test_every_segment_carries_its_times_label_and_score(tmp_path: Path) -> None:
    _, parsed = _page(tmp_path)
    segments = [a for tag, a in parsed.tags if "seg" in (a.get("class") or "").split()]
    found = {(a["data-start"], a["data-end"], a.get("data-label"), a.get("data-score")) for a in segments}
    assert found == {
        ("1.000", "4.000", HOSTILE, None),  # ground truth: no score
        ("6.000", "8.000", None, None),
        ("1.200", "3.900", HOSTILE, "0.9000"),
        ("5.000", "9.000", "juggling", "0.3000"),
        ("1.000", "4.000", None, "0.8000"),  # proposals: no label
        ("2.000", "5.000", None, "0.6000"),
    }
    assert all(a["data-video"] == "video-0" for a in segments)
    # the two overlapping proposals are on two rows of their lane, not one over the other
    tops = sorted(
        a["style"].split("top:")[1].split(";")[0] for a in segments if a.get("data-rank") and "data-label" not in a
    )
    assert tops == ["0px", "18px"]
    # one colour per class wherever it appears
    hostile = [a["style"] for a in segments if a.get("data-label") == HOSTILE]
    assert all(class_colour(HOSTILE) in style for style in hostile)
    assert class_colour("juggling") != class_colour(HOSTILE)


def test_subtitles_show_one_cue_at_a_time_the_best_covering(tmp_path: Path) -> None:
    segments = [
        {"segment": [0.0, 10.0], "score": 0.5, "label": "long"},
        {"segment": [2.0, 4.0], "score": 0.9, "label": "short best"},
        {"segment": [3.0, 6.0], "score": 0.7},
        {"segment": [12.0, 13.0], "score": 0.1},
    ]
    cues = subtitle_track(segments)
    assert [(c.start, c.end, c.text) for c in cues] == [
        (0.0, 2.0, "long (score 0.500)"),
        (2.0, 4.0, "short best (score 0.900)"),
        (4.0, 6.0, "proposal #2 (score 0.700)"),
        (6.0, 10.0, "long (score 0.500)"),
        (12.0, 13.0, "proposal #4 (score 0.100)"),
    ]
    assert all(a.end <= b.start for a, b in zip(cues, cues[1:], strict=False))
    # each cue's text is that of the best-scoring segment covering its middle
    for cue in cues:
        middle = (cue.start + cue.end) / 2
        covering = [s for s in segments if s["segment"][0] <= middle <= s["segment"][1]]
        assert cue.text.startswith(str(max(covering, key=lambda s: s["score"]).get("label", "proposal")))
    path = write_srt(tmp_path / "a.srt", segments)
    assert path.read_text(encoding="utf-8") == format_srt(cues)
    assert format_srt(cues).splitlines()[:3] == ["1", "00:00:00,000 --> 00:00:02,000", "long (score 0.500)"]

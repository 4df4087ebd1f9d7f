"""Property-based fuzzing of every file format the project reads (issue 21).

Each format starts from a valid file the project itself writes (or, for the user's own annotation files, the
documented example), is mutated (values of other types, nesting, missing and extra keys, huge integers, NaN and
infinities, unicode, other encodings, truncation, stray bytes) and read: the reader returns a result or raises a
VisionZooError whose message is one line; nothing else. A sample goes through the CLI, where the outcome is exit 0
or exactly one `visionzoo: error:` line (exit 2).

A fixed seed and few examples by default (CI); `VISIONZOO_FUZZ_EXAMPLES=2000` for a longer local hunt, with
new examples on every run (hypothesis prints the seed of a failure: `--hypothesis-seed` replays it).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from visionzoo.cli import main
from visionzoo.commands.report import read_run
from visionzoo.data import feature_folder, own_annotations, thumos14
from visionzoo.data.activitynet import load_annotations
from visionzoo.data.builtin.anet_demo import make_anet_demo
from visionzoo.engine import progress
from visionzoo.errors import VisionZooError
from visionzoo.export.model_card import card_from_recipe, read_card
from visionzoo.recipes import get_recipe
from visionzoo.tasks import detection, detection_metrics, postprocess
from visionzoo.tasks.anet_metrics import load_ground_truth

HUNT = "VISIONZOO_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("VISIONZOO_FUZZ_EXAMPLES", "25"))
CLI_EXAMPLES = max(3, EXAMPLES // 5)
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=not HUNT,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------------------------------------ mutations

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["n/a", "", "1e999", "-1", "0", "NaN", "\u202e\u0000x", "video,with,commas", "é" * 600]),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _places(value: Any, path: tuple = ()) -> list[tuple]:
    """Every place inside a JSON value (the root too)."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:4]):
            found += _places(item, (*path, index))
    return found


def _at(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


@st.composite
def mutated_value(draw: st.DrawFn, valid: Any) -> Any:
    """`valid` with 1-3 changes: a value replaced (any type), a key or item removed, a key added, a container
    wrapped in a list or nested deeper."""
    value = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        places = _places(value)
        path = draw(st.sampled_from(places))
        op = draw(st.sampled_from(["replace", "remove", "add", "wrap"]))
        if op == "replace" or not path and op == "remove":
            new = draw(VALUES)
        elif op == "remove":
            parent = _at(value, path[:-1])
            del parent[path[-1]]
            continue
        elif op == "add":
            target = _at(value, path)
            if isinstance(target, dict):
                target[draw(st.text(max_size=8))] = draw(VALUES)
            elif isinstance(target, list):
                target.append(draw(VALUES))
            continue
        else:
            new = [_at(value, path)] * draw(st.integers(1, 2)) if draw(st.booleans()) else {"x": _at(value, path)}
        if not path:
            value = new
        else:
            _at(value, path[:-1])[path[-1]] = new
    return value


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> bytes:
    """Text-level faults on top: huge integers, truncation, deep nesting, stray bytes, other encodings."""
    op = draw(st.sampled_from(["none", "huge", "truncate", "deep", "bytes", "encoding", "bom"]))
    if op == "huge":
        digits = draw(st.sampled_from([21, 400, 5000]))
        position = draw(st.integers(0, len(text)))
        text = text[:position] + "9" * digits + text[position:]
    elif op == "truncate":
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif op == "deep":
        depth = draw(st.sampled_from([65, 1000, 100_000]))
        text = "[" * depth + text + "]" * depth
    if op == "bytes":
        data = text.encode()
        position = draw(st.integers(0, len(data)))
        return data[:position] + draw(st.binary(min_size=1, max_size=8)) + data[position:]
    if op == "encoding":
        encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "cp1252", "latin-1", "utf-32"]))
        return (text + "é").encode(encoding, errors="replace")
    return (b"\xef\xbb\xbf" if op == "bom" else b"") + text.encode("utf-8", errors="surrogatepass")


@st.composite
def mutated_json(draw: st.DrawFn, valid: Any) -> bytes:
    text = json.dumps(draw(mutated_value(valid)), allow_nan=True, ensure_ascii=draw(st.booleans()))
    return draw(mutated_text(text))


@st.composite
def mutated_csv(draw: st.DrawFn, rows: list[list[str]], delimiter: str = ",") -> bytes:
    """CSV (or whitespace-separated) rows with cells replaced, removed or added, then text-level faults."""
    rows = [list(row) for row in rows]
    for _ in range(draw(st.integers(1, 3))):
        row = draw(st.integers(0, len(rows) - 1))
        op = draw(st.sampled_from(["cell", "drop_cell", "add_cell", "drop_row", "copy_row"]))
        cell = draw(st.integers(0, max(0, len(rows[row]) - 1)))
        if op == "cell" and rows[row]:
            rows[row][cell] = draw(
                st.text(max_size=12) | st.sampled_from(["nan", "inf", "-1e999", "9" * 400, "n/a", ""])
            )
        elif op == "drop_cell" and rows[row]:
            del rows[row][cell]
        elif op == "add_cell":
            rows[row].append(draw(st.text(max_size=6)))
        elif op == "drop_row" and len(rows) > 1:
            del rows[row]
        else:
            rows.append(list(rows[row]))
    if delimiter == ",":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        text = buffer.getvalue()
    else:
        text = "".join(delimiter.join(row) + "\n" for row in rows)
    return draw(mutated_text(text))


# ------------------------------------------------------------------------------------------------ formats


@dataclass
class Format:
    """A file format: where its file goes, its valid content, how it is mutated, and the reader to drive."""

    name: str
    file: str  # relative to the example's folder
    valid: Callable[[Path], Any]  # the valid content, from a writer of the project (given a work folder)
    mutate: Callable[[Any], st.SearchStrategy[bytes]]
    read: Callable[[Path], Any]  # the example's folder -> result


def _anet(work: Path) -> Path:
    root = work / "anet"
    if not root.is_dir():
        make_anet_demo(root, videos=4, seed=0, temporal_scale=8, feat_dim=4)
    return root


def _csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def _copy_anet(folder: Path, work: Path) -> Path:
    shutil.copytree(_anet(work), folder / "anet")
    return folder / "anet"


def _results(kind: str) -> dict[str, Any]:
    entries = {
        "proposals": [{"score": 0.9, "segment": [1.0, 5.5]}, {"score": 0.2, "segment": [0.0, 9.0]}],
        "detections": [{"label": "run", "score": 0.9, "segment": [1.0, 5.5]}],
        "classification": [{"label": "run", "score": 0.8}, {"label": "jump", "score": 0.1}],
    }[kind]
    return postprocess.proposals_json({"v_a": entries, "v_b": entries[:1]})


GROUND_TRUTH = {"version": "VERSION 1.3", "taxonomy": [],
                "database": {"v_a": {"subset": "validation", "duration": 12.0,
                                     "annotations": [{"segment": [1.0, 5.0], "label": "run"}]},
                             "v_b": {"subset": "training", "duration": 8.0, "annotations": []}}}  # fmt: skip
CARD = json.loads(card_from_recipe(get_recipe("bmn_anet")).to_json())
SPEC = feature_folder.FeatureSpec("resnet18", None, None, 0, "pooled", 224, 16, 100, 512, {"mean": [0.5] * 3}).to_dict()
SUMMARY = {"recipe": "bmn_anet", "epochs": 2, "final": {"epoch": 2, "AUC": 61.5, "train_loss": 1.2},
           "best": {"metric": "AUC", "value": 61.5, "epoch": 2}, "samples_per_sec": 120.0, "world_size": 1}  # fmt: skip
RECORD = {"video": "a", "source": "a.mp4", "numFrame": 250, "seconds": 10.0, "fps": 25.0, "featureFrame": 240,
          "snippets": 15, "width": 64, "height": 48, "rotation": 0, "snippets_file": False}  # fmt: skip
ANNOTATION_ROWS = [["video", "start", "end", "label", "subset"], ["v_a", "1.5", "4", "run", "training"],
                   ["v_b", "0", "2.25", "jump", ""]]  # fmt: skip
CONFIG = {"name": "bmn_anet", "model": "bmn", "main_metric": "AUC", "amp": "auto", "amp_resolved": "off",
          "torch_version": "2.4.0", "machine": "cpu", "world_size": 1}  # fmt: skip


def _run_dir(folder: Path) -> Path:
    run = folder / "run"
    run.mkdir(exist_ok=True)
    for name, text in (("config.yaml", yaml.safe_dump(CONFIG)), ("summary.json", json.dumps(SUMMARY)),
                       ("metrics.jsonl", json.dumps(SUMMARY["final"]) + "\n")):  # fmt: skip
        if not (run / name).exists():
            (run / name).write_text(text)
    return run


def _actions(path: Path) -> list[own_annotations.Action]:
    """The rows of a user's annotation file, its bad rows raised as `data anet-annotations` does."""
    actions, errors = own_annotations.read_actions(path)
    own_annotations.raise_row_errors(path, errors)
    return actions


def _feature_folder(folder: Path) -> feature_folder.FeatureFolder:
    return feature_folder.FeatureFolder(folder, feature_folder.FeatureSpec.from_dict(SPEC))


def _read_info(folder: Path) -> Any:
    return load_annotations(folder / "anet")


def _prepare_anet(name: str) -> Callable[[Path], Any]:
    def valid(work: Path) -> Any:
        path = _anet(work) / name
        return json.loads(path.read_text()) if name.endswith(".json") else _csv_rows(path)

    return valid


def _thumos_valid(work: Path) -> list[list[str]]:
    return [["video_validation_1", "1.5", "4.0"], ["video_validation_2", "0", "12.25"]]


def _class_files(folder: Path) -> Any:
    return thumos14.load_class_files(folder, "validation")


def _thumos_info(folder: Path) -> Any:
    return thumos14.read_video_info(folder / "video_info.csv")


FORMATS = [
    Format("annotation CSV", "actions.csv", lambda work: ANNOTATION_ROWS, mutated_csv,
           lambda folder: _actions(folder / "actions.csv")),
    Format("annotation JSON", "actions.json", lambda work: GROUND_TRUTH, mutated_json,
           lambda folder: _actions(folder / "actions.json")),
    Format("ActivityNet database JSON", "gt.json", lambda work: GROUND_TRUTH, mutated_json,
           lambda folder: load_ground_truth(folder / "gt.json")),
    Format("BSN anet_anno_action.json", "anet/anet_anno_action.json", _prepare_anet("anet_anno_action.json"),
           mutated_json, _read_info),
    Format("video_info CSV", "anet/video_info_new.csv", _prepare_anet("video_info_new.csv"), mutated_csv, _read_info),
    Format("proposals JSON", "p.json", lambda work: _results("proposals"), mutated_json,
           lambda folder: postprocess.load_proposals(folder / "p.json")),
    Format("detections JSON", "d.json", lambda work: _results("detections"), mutated_json,
           lambda folder: detection_metrics.load_detections(folder / "d.json")),
    Format("classification JSON", "c.json", lambda work: _results("classification"), mutated_json,
           lambda folder: detection.load_classes(folder / "c.json")),
    Format("THUMOS14 class file", "Run_val.txt", _thumos_valid, lambda rows: mutated_csv(rows, " "), _class_files),
    Format("THUMOS14 video_info CSV", "video_info.csv",
           lambda work: [["video", "subset", "seconds", "fps"], ["v1", "validation", "30.0", "25"]], mutated_csv,
           _thumos_info),
    Format("features.json", "features.json", lambda work: SPEC, mutated_json,
           lambda folder: feature_folder.read_feature_description(folder / "features.json")),
    Format("video record", "videos/a.json", lambda work: RECORD, mutated_json,
           lambda folder: _feature_folder(folder).read_record("a")),
    Format("model card", "m.safetensors.json", lambda work: CARD, mutated_json,
           lambda folder: read_card(folder / "m.safetensors.json")),
    Format("metrics.jsonl", "run/metrics.jsonl", lambda work: SUMMARY["final"],
           lambda valid: mutated_json(valid).map(lambda data: data.replace(b"\n", b" ") + b"\n" + data),
           lambda folder: progress.read_metrics(folder / "run" / "metrics.jsonl")),
    Format("summary.json", "run/summary.json", lambda work: SUMMARY, mutated_json,
           lambda folder: progress.read_summary(folder / "run" / "summary.json")),
    Format("run config.yaml", "run/config.yaml", lambda work: CONFIG,
           lambda valid: mutated_value(valid).map(lambda value: yaml.safe_dump(value).encode()).flatmap(
               lambda data: st.sampled_from([data, data[: len(data) // 2], b"\xff" + data, b"[" * 5000])),
           lambda folder: read_run(_run_dir(folder))),
]  # fmt: skip


def _one_line(err: VisionZooError) -> None:
    message = str(err)
    assert message and "\n" not in message and "\r" not in message, repr(message)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _example(work: Path, fmt: Format, data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(dir=work))
    if fmt.file.startswith("anet/"):
        _copy_anet(folder, work)
    path = folder / fmt.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return folder


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_every_reader_returns_or_says_one_line(work: Path, fmt: Format) -> None:
    valid = fmt.valid(work)
    folder = _example(work, fmt, _encoded(valid, fmt))
    fmt.read(folder)  # the valid file reads

    @FUZZ
    @given(data=fmt.mutate(valid))
    def check(data: bytes) -> None:
        folder = _example(work, fmt, data)
        try:
            fmt.read(folder)
        except VisionZooError as err:
            _one_line(err)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    check()


def _encoded(valid: Any, fmt: Format) -> bytes:
    """The valid content as its writer lays it out."""
    if fmt.file.endswith(".yaml"):
        return yaml.safe_dump(valid).encode()
    if isinstance(valid, dict):
        return (json.dumps(valid) + ("\n" if fmt.file.endswith(".jsonl") else "")).encode()
    if fmt.file.endswith(".txt"):
        return "".join(" ".join(row) + "\n" for row in valid).encode()
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(valid)
    return buffer.getvalue().encode()


# ------------------------------------------------------------------------------------------------ the CLI


def _cli(capsys: pytest.CaptureFixture[str], *argv: object) -> None:
    capsys.readouterr()
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("visionzoo: error:")]
    assert (status, errors) == (0, []) or (status == 2 and errors == err[-1:] and len(errors) == 1), (status, err)


CLI = settings(FUZZ, max_examples=CLI_EXAMPLES)


@CLI
@given(data=mutated_json(_results("detections")))
def test_cli_eval_detection(work: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    folder = Path(tempfile.mkdtemp(dir=work))
    (folder / "gt.json").write_text(json.dumps(GROUND_TRUTH))
    (folder / "d.json").write_bytes(data)
    _cli(capsys, "eval-detection", "--ground-truth", folder / "gt.json", "--detections", folder / "d.json")


@CLI
@given(data=mutated_json(GROUND_TRUTH))
def test_cli_eval_proposals(work: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    folder = Path(tempfile.mkdtemp(dir=work))
    (folder / "gt.json").write_bytes(data)
    (folder / "p.json").write_text(json.dumps(_results("proposals")))
    _cli(capsys, "eval-proposals", "--ground-truth", folder / "gt.json", "--proposals", folder / "p.json")


@CLI
@given(data=mutated_csv(ANNOTATION_ROWS))
def test_cli_data_anet_annotations(work: Path, capsys: pytest.CaptureFixture[str], data: bytes) -> None:
    folder = Path(tempfile.mkdtemp(dir=work))
    features = _copy_anet(folder, work)
    (folder / "actions.csv").write_bytes(data)
    _cli(capsys, "data", "anet-annotations", folder / "actions.csv", "--features", features)


@CLI
@given(summary=mutated_json(SUMMARY), metrics=mutated_json(SUMMARY["final"]))
def test_cli_report(work: Path, capsys: pytest.CaptureFixture[str], summary: bytes, metrics: bytes) -> None:
    folder = Path(tempfile.mkdtemp(dir=work))
    run = _run_dir(folder)
    (run / "summary.json").write_bytes(summary)
    (run / "metrics.jsonl").write_bytes(metrics)
    _cli(capsys, "report", run)


def test_formats_are_all_fuzzed() -> None:
    """The count the closing note of issue 21 gives: one entry per format the project reads."""
    assert len(FORMATS) == 16 and len({f.name for f in FORMATS}) == 16

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionzoo.data.builtin.imagefolder_demo import make_imagefolder
from visionzoo.data.imagefolder import ImageFolderDataset, build_imagefolder_datasets
from visionzoo.data.transforms import (
    EvalTransform,
    TrainTransform,
    color_jitter,
    eval_crop_box,
    open_image,
    random_resized_crop_params,
    resize_crop,
)
from visionzoo.errors import VisionZooError
from visionzoo.recipes.base import ClassificationRecipe
from visionzoo.tasks.classification import eval_transform, train_transform

CLASSES, PER_CLASS, VAL_PER_CLASS = 3, 3, 2


def recipe(**changes) -> ClassificationRecipe:
    return ClassificationRecipe(num_classes=CLASSES, img_size=32, color_jitter=0.4, **changes)


def build(folder: Path, **changes) -> tuple[ImageFolderDataset, ImageFolderDataset]:
    r = recipe(**changes)
    return build_imagefolder_datasets(folder, train_transform(r), eval_transform(r), seed=r.seed, strict=r.strict_data)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gen") / "folder"
    return make_imagefolder(root, classes=CLASSES, per_class=PER_CLASS, size=40, val_per_class=VAL_PER_CLASS)


@pytest.fixture
def folder(generated, tmp_path) -> Path:
    """A private copy the test may change."""
    return Path(shutil.copytree(generated, tmp_path / "data"))


def test_rrc_params_within_bounds_and_deterministic():
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    for width, height in ((500, 375), (64, 200), (37, 23)):
        rng = np.random.default_rng(1)
        boxes = [random_resized_crop_params(width, height, scale, ratio, rng) for _ in range(200)]
        for left, top, w, h in boxes:
            assert left >= 0 and left + w <= width and top >= 0 and top + h <= height and w > 0 and h > 0
            if (w, h) != (width, height) and min(w, h) >= 10:  # not the fallback; rounding aside, within bounds
                assert scale[0] * 0.8 <= w * h / (width * height) <= scale[1] * 1.2
                assert ratio[0] * 0.8 <= w / h <= ratio[1] * 1.2
        rng = np.random.default_rng(1)
        assert [random_resized_crop_params(width, height, scale, ratio, rng) for _ in range(200)] == boxes
        other = [random_resized_crop_params(width, height, scale, ratio, np.random.default_rng(2)) for _ in range(5)]
        assert other != boxes[:5]


def test_rrc_fallback_is_centre_crop_clamped_to_ratio():
    rng = np.random.default_rng(0)
    # area fraction 2..3 never fits: 500x100 (ratio 5) -> height 100, width round(100 * 4/3) = 133, centred
    assert random_resized_crop_params(500, 100, (2.0, 3.0), (3 / 4, 4 / 3), rng) == (183, 0, 133, 100)
    assert random_resized_crop_params(100, 500, (2.0, 3.0), (3 / 4, 4 / 3), rng) == (0, 183, 100, 133)
    assert random_resized_crop_params(120, 100, (2.0, 3.0), (3 / 4, 4 / 3), rng) == (0, 0, 120, 100)


def test_eval_geometry_matches_resize_then_centre_crop():
    # 500x375 at 224 / 0.875: shorter side 256, longer int(256 * 500 / 375) = 341, crop at round(117 / 2) = 58, 16
    left, top, w, h = eval_crop_box(500, 375, 224, 0.875)
    assert (left, top, w, h) == pytest.approx((58 * 500 / 341, 16 * 375 / 256, 224 * 500 / 341, 224 * 375 / 256))
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (375, 500, 3), dtype=np.uint8))
    for img, resized, crop in ((image, (341, 256), (58, 16)), (image.transpose(Image.TRANSPOSE), (256, 341), (16, 58))):
        expected = np.asarray(img.resize(resized, Image.BILINEAR).crop((*crop, crop[0] + 224, crop[1] + 224)))
        out = EvalTransform(224, 0.875, "bilinear")(img)
        assert out.dtype == torch.uint8 and out.shape == (3, 224, 224)
        assert np.abs(out.permute(1, 2, 0).numpy().astype(int) - expected).max() <= 1


def test_draft_used_for_large_jpeg_and_close_to_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    smooth = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize((2000, 1500), Image.BICUBIC)
    path = tmp_path / "big.jpg"
    smooth.save(path, quality=90)
    box = eval_crop_box(2000, 1500, 224, 0.875)
    drafted = open_image(path)
    fast = np.asarray(resize_crop(drafted, box, (224, 224), draft=True), dtype=float)
    assert drafted.size == (500, 375)  # decoded at 1/4 scale: the crop still needs >= 224 px
    full = open_image(path)
    slow = np.asarray(resize_crop(full, box, (224, 224), draft=False), dtype=float)
    assert full.size == (2000, 1500)
    assert np.abs(fast - slow).mean() < 1.5 and np.abs(fast - slow).max() < 12
    small = tmp_path / "small.jpg"
    smooth.resize((300, 250)).save(small)
    image = open_image(small)
    resize_crop(image, eval_crop_box(300, 250, 224, 0.875), (224, 224))
    assert image.size == (300, 250)  # nothing to gain: no draft


def test_color_jitter_scales_brightness_of_grey_within_bounds():
    grey = Image.new("RGB", (8, 8), (100, 100, 100))
    values = {np.asarray(color_jitter(grey, 0.4, np.random.default_rng(s)))[0, 0, 0] for s in range(30)}
    assert all(60 <= v <= 140 for v in values) and len(values) > 10  # contrast/saturation leave flat grey alone


def test_generated_layout_and_determinism(generated, tmp_path):
    names = sorted(p.name for p in (generated / "train").iterdir())
    assert names == ["c0_disc", "c1_ring", "c2_square"]
    assert sorted(p.name for p in (generated / "val").iterdir()) == names
    assert all(len(list((generated / "train" / n).glob("*.JPEG"))) == PER_CLASS for n in names)
    assert all(len(list((generated / "val" / n).glob("*.JPEG"))) == VAL_PER_CLASS for n in names)
    with Image.open(next((generated / "train" / names[0]).iterdir())) as image:
        assert image.format == "JPEG" and min(image.size) >= 28 and max(image.size) <= 60
    again = make_imagefolder(tmp_path / "again", CLASSES, PER_CLASS, 40, VAL_PER_CLASS)
    other = make_imagefolder(tmp_path / "other", CLASSES, PER_CLASS, 40, VAL_PER_CLASS, seed=1)
    files = sorted(p.relative_to(generated) for p in generated.rglob("*.JPEG"))
    assert files == sorted(p.relative_to(again) for p in again.rglob("*.JPEG"))
    assert all((generated / f).read_bytes() == (again / f).read_bytes() for f in files)
    assert any((generated / f).read_bytes() != (other / f).read_bytes() for f in files)
    with pytest.raises(VisionZooError, match="already exists"):
        make_imagefolder(again, CLASSES, PER_CLASS, 40)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left behind


def test_items_deterministic_per_key_and_vary_by_epoch(generated):
    train, val = build(generated)
    assert (len(train), len(val)) == (CLASSES * PER_CLASS, CLASSES * VAL_PER_CLASS)
    assert train.class_names == val.class_names == ["c0_disc", "c1_ring", "c2_square"]
    image, label = train[(4, 0)]
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32) and label == 1
    assert torch.equal(train[(4, 0)][0], image)
    assert not torch.equal(train[(4, 1)][0], image)
    assert torch.equal(val[(3, 0)][0], val[(3, 7)][0]) and val[(3, 0)][1] == 1


def test_classes_plain_sorted_hidden_ignored_extensions_any_case(tmp_path):
    for name, file in (
        ("class10", "a.JPEG"),
        ("class9", "b.Png"),
        ("class2", "sub/c.jpg"),
        (".ipynb_checkpoints", "d.jpg"),
    ):
        (tmp_path / "train" / name / file).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 20)).save(tmp_path / "train" / name / file, format="PNG" if "Png" in file else "JPEG")
    (tmp_path / "train" / "class10" / "notes.txt").write_text("not an image")
    dataset = ImageFolderDataset(tmp_path, "train", train_transform(recipe()))
    assert dataset.class_names == ["class10", "class2", "class9"]  # torchvision order, not timm's natural order
    assert [dataset.path(i).name for i in range(len(dataset))] == ["a.JPEG", "c.jpg", "b.Png"]
    assert dataset.labels.tolist() == [0, 1, 2]


def flatten_val(folder: Path) -> dict[str, str]:
    """Move val/<class>/<file> to val/<file>; returns {file: class}."""
    truth = {}
    for class_dir in sorted((folder / "val").iterdir()):
        for file in class_dir.iterdir():
            truth[file.name] = class_dir.name
            file.rename(folder / "val" / file.name)
        class_dir.rmdir()
    return truth


def test_flat_val_with_label_file(folder):
    truth = flatten_val(folder)
    with pytest.raises(VisionZooError, match="no class folders and no label file"):
        build(folder)
    (folder / "val_labels.txt").write_text("".join(f"{name} {cls}\n" for name, cls in truth.items()))
    train, val = build(folder)
    assert {val.path(i).name: val.class_names[val.labels[i]] for i in range(len(val))} == truth
    assert val[(0, 0)][0].shape == (3, 32, 32)
    # Kaggle LOC_val_solution.csv: header, stems without extension, label followed by box coordinates
    (folder / "val_labels.txt").unlink()
    rows = "".join(f"{name.rsplit('.', 1)[0]},{cls} 1 2 30 40 {cls} 3 4 5 6\n" for name, cls in truth.items())
    (folder / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + rows)
    _, val = build(folder)
    assert {val.path(i).name: val.class_names[val.labels[i]] for i in range(len(val))} == truth
    # Caffe val.txt: 0-based indices in sorted class order; a missing entry is named
    (folder / "LOC_val_solution.csv").unlink()
    lines = [f"{name} {train.class_names.index(cls)}\n" for name, cls in truth.items()]
    (folder / "val" / "val.txt").write_text("".join(lines[1:]))
    with pytest.raises(VisionZooError, match=f"no label for 1 of the {len(truth)} images"):
        build(folder)
    (folder / "val" / "val.txt").write_text("".join(lines))
    _, val = build(folder)
    assert {val.path(i).name: val.class_names[val.labels[i]] for i in range(len(val))} == truth


def test_class_mismatch_and_missing_dirs_name_the_problem(folder):
    (folder / "val" / "c1_ring").rename(folder / "val" / "c1_circle")
    with pytest.raises(VisionZooError, match=r"only in val: c1_circle; only in train: c1_ring"):
        build(folder)
    shutil.rmtree(folder / "val")
    with pytest.raises(VisionZooError, match=rf"{folder / 'val'}: no such directory"):
        build(folder)
    for image in (folder / "train" / "c2_square").iterdir():
        image.unlink()
    with pytest.raises(VisionZooError, match=rf"{folder / 'train' / 'c2_square'}: class folder without images"):
        build(folder)
    with pytest.raises(VisionZooError, match="no such directory"):
        build(folder / "nope")


def test_corrupt_image_is_skipped_with_one_warning_or_fails_when_strict(folder, caplog):
    victim = sorted((folder / "train" / "c0_disc").iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    train, _ = build(folder)
    index = [train.path(i) for i in range(len(train))].index(victim)
    with caplog.at_level(logging.WARNING, logger="visionzoo.data.imagefolder"):
        assert train[(index, 0)] is None and train[(index, 1)] is None
    messages = [r.getMessage() for r in caplog.records if r.name == "visionzoo.data.imagefolder"]
    assert len(messages) == 1 and str(victim) in messages[0]
    assert train.skipped_files == {str(victim)}
    assert train[(index + 1, 0)] is not None
    strict, _ = build(folder, strict_data=True)
    with pytest.raises(VisionZooError, match=victim.name):
        strict[(index, 0)]


def test_pad_and_none_train_crops():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(1, 256, (50, 60, 3), dtype=np.uint8))
    padded = TrainTransform(img_size=32, crop="pad", padding=4, hflip=0.0)
    outs = [padded(image, np.random.default_rng(s)) for s in range(20)]
    assert all(o.shape == (3, 32, 32) for o in outs)
    assert any((o == 0).all(dim=0).any() for o in outs)  # some crops reach into the zero padding
    plain = TrainTransform(img_size=32, crop="none", crop_pct=0.875, hflip=0.0)
    assert torch.equal(plain(image, np.random.default_rng(0)), EvalTransform(32, 0.875)(image))
    flipped = TrainTransform(img_size=32, crop="none", crop_pct=0.875, hflip=1.0)
    assert torch.equal(flipped(image, np.random.default_rng(0)), EvalTransform(32, 0.875)(image).flip(2))
    from visionzoo.recipes.base import ClassificationRecipe
    from visionzoo.recipes.overrides import check_value

    with pytest.raises(VisionZooError, match="--train-crop: expected one of rrc, pad, none, got 'random'"):
        check_value(ClassificationRecipe, "train_crop", "random", "--train-crop")  # the recipe's type refuses it
    with pytest.raises(VisionZooError, match="--interpolation: expected one of nearest, bilinear, bicubic"):
        check_value(ClassificationRecipe, "interpolation", "lanczos3", "--interpolation")
    with pytest.raises(VisionZooError, match="--crop-pct"):
        EvalTransform(crop_pct=1.2)

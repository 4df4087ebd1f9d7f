"""GhostNet 1.0x on ImageNet (seed 002: the Ascend ModelZoo-PyTorch GhostNet port, reference CV-Backbones 3e77004).

Hyperparameters are the port's `test/train_full_8p.sh` (a timm-0.4 train script): SGD momentum 0.9, batch 1024 per
device with lr 3.2 on 8 devices, i.e. lr 0.4 per 1024 images (the 1-device script: batch 1024, lr 0.4); cosine
over 400 epochs, 4 warmup epochs from 1e-6, weight decay 4e-5, label smoothing 0.1, dropout 0.2 before the
classifier, gradient-norm clipping 2.0, and the script's defaults min-lr 1e-5, colour jitter 0.4, flip 0.5. The
port trains with apex O2 fp16 (static loss scale 128); `seed_amp="fp16"` makes `--amp auto` take fp16 with a
gradient scaler on CUDA (and what fits the machine on CPU). Left out: its 10 cooldown epochs (the newer README
reports 400 epochs) and its random train interpolation.
"""

from visionzoo.recipes.base import ClassificationRecipe

RECIPES = [
    ClassificationRecipe(
        name="ghostnet_imagenet",
        description=(
            "GhostNet 1.0x on ImageNet (Ascend PyTorch port recipe: SGD, lr 0.4 per 1024, cosine 400 ep, "
            "LS 0.1, drop 0.2, clip 2.0; the port trained in fp16 O2, which --amp auto follows on GPU)"
        ),
        seed_doc="002 GhostNet for PyTorch (Ascend ModelZoo-PyTorch)",
        reference={
            "top1": 73.129,
            "devices": 8,
            "epochs": 400,
            "images_per_sec": 9559.2,
            "images_per_sec_1_device": 1378.8,
        },
        model="ghostnet_100",
        data_format="imagefolder",
        data="imagefolder-demo",
        num_classes=1000,
        img_size=224,
        crop_pct=0.875,
        interpolation="bilinear",
        train_crop="rrc",
        hflip=0.5,
        color_jitter=0.4,
        epochs=400,
        batch_size=1024,
        optimizer="sgd",
        lr=0.4,
        lr_base_batch=1024,
        momentum=0.9,
        weight_decay=4e-5,
        sched="cosine",
        warmup_epochs=4,
        warmup_lr=1e-6,
        min_lr=1e-5,
        label_smoothing=0.1,
        drop_rate=0.2,
        clip_grad=2.0,
        main_metric="top1",
        seed_amp="fp16",
    )
]

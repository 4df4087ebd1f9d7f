"""ResNet-50 + BAM on ImageNet (seed 004: the MindSpore resnet50_bam model, Ascend 910).

Hyperparameters are the port's `src/config.py`: Momentum SGD 0.9, batch 128 per device, lr 0.02 on one device
scaled linearly with the global batch, weight decay 1e-4 (not on biases and BN), cosine decay to 0 without warmup,
160 epochs, label smoothing 0.1, colour jitter 0.4 (the port also jitters hue by 0.1). Differences kept out of the
defaults: the port's cosine has T_max 150, so its lr reaches 0 at epoch 150; its 8-device lr is 0.18 rather than
the linear 0.16; its smoothing puts 0.1 / 999 (not 0.1 / 1000) on each wrong class; it trains in fp16 (O3).
"""

from visionzoo.recipes.base import ClassificationRecipe

RECIPES = [
    ClassificationRecipe(
        name="resnet50_bam_imagenet",
        description=(
            "ResNet-50 + BAM on ImageNet (MindSpore recipe: SGD, lr 0.02 per 128 images, cosine 160 ep, LS 0.1; "
            "the seed's 8-device lr is 0.18, not the linear 0.16: on 8 devices pass --lr 0.0225 to match it)"
        ),
        seed_doc="004 resnet50_bam (MindSpore, Ascend 910)",
        reference={
            "top1": 77.23,
            "top5": 93.56,
            "devices": 1,
            "epochs": 160,
            "top1_8_devices": 77.35,
            "top5_8_devices": 93.56,
            "ascend310_ms_per_image": 4.83,
        },
        model="resnet50_bam",
        data_format="imagefolder",
        data="imagefolder-demo",
        num_classes=1000,
        img_size=224,
        crop_pct=0.875,
        interpolation="bilinear",
        train_crop="rrc",
        hflip=0.5,
        color_jitter=0.4,
        epochs=160,
        batch_size=128,
        optimizer="sgd",
        lr=0.02,
        lr_base_batch=128,
        momentum=0.9,
        weight_decay=1e-4,
        sched="cosine",
        label_smoothing=0.1,
        main_metric="top1",
        seed_amp="fp16",
        channels_last=True,  # measured faster in training and inference, fp32 and bf16 (docs/speed.md)
    )
]

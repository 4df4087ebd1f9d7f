"""CSPDarknet53 on CIFAR-10 (seed 003: the Ascend TensorFlow port, CSPNet_ID0840).

Hyperparameters are the seed's: 50 epochs, batch 64, lr 1e-3 constant, momentum 0.9, weight decay 5e-4
(the port's CE + 5e-4 * sum(w^2)/2 over conv and FC weights, i.e. decay on weights, not biases).
Unlike the port we keep the standard BN model and a standard CIFAR pipeline (padded crop, flip,
normalisation); see docs/models.md for why the port's 66.45 % comes from its quirks.
"""

from visionzoo.recipes.base import ClassificationRecipe

RECIPES = [
    ClassificationRecipe(
        name="cspdarknet53_cifar10",
        description="CSPDarknet53 classifier on CIFAR-10 (32x32)",
        seed_doc="003 CSPNet for TensorFlow (Ascend 910)",
        reference={"top1": 66.45, "images_per_sec": 1245.03, "devices": 1, "epochs": 50},
        model="cspdarknet53",
        data_format="cifar10",
        data="digits",
        num_classes=10,
        img_size=32,
        crop_pct=1.0,
        mean=[0.4914, 0.4822, 0.4465],
        std=[0.2470, 0.2435, 0.2616],
        train_crop="pad",
        crop_padding=4,
        hflip=0.5,
        epochs=50,
        batch_size=64,
        optimizer="sgd",
        lr=1e-3,
        momentum=0.9,
        weight_decay=5e-4,
        sched="constant",
        main_metric="top1",
    )
]

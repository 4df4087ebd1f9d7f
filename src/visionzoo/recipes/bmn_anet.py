"""BMN on ActivityNet-1.3 features (seeds 000/001: the Ascend ModelZoo port of JJBOY/BMN a92c1d7).

`bmn_anet` is the reference's recipe: Adam (coupled L2 weight decay 1e-4 on every parameter), lr 1e-3,
batch 16, 9 epochs, lr x0.1 from epoch 7 (StepLR(step_size=7) stepped at each epoch start under the
author's PyTorch 0.4.1: epochs 0-6 at 1e-3, 7-8 at 1e-4; milestone [7] here). `bmn_anet_ascend` is the seeds'
run: 10 epochs, lr 1.5e-3 (not scaled with the 8-device global batch), 16 videos per device, apex O1
mixed precision (`seed_amp="fp16"`: `--amp auto` takes fp16 with a loss scaler on CUDA, and what fits the
machine on CPU), the same step at epoch 7.
"""

from visionzoo.recipes.base import ProposalRecipe

_PUBLISHED = {  # JJBOY README (a92c1d7), ActivityNet-1.3 validation, CUHK TSN features
    "AR@1": 33.6,
    "AR@5": 49.9,
    "AR@10": 57.1,
    "AR@100": 75.5,
    "AUC": 67.7,
}

_COMMON = dict(
    model="bmn",
    data_format="activitynet",
    data="demo",
    optimizer="adam",
    weight_decay=1e-4,
    wd_skip_norm_bias=False,
    sched="multistep",
    decay_milestones=[7],
    decay_rate=0.1,
    batch_size=16,
    main_metric="AUC",
)

RECIPES = [
    ProposalRecipe(
        name="bmn_anet",
        description="BMN temporal action proposals on ActivityNet-1.3 features (JJBOY reference recipe)",
        seed_doc="000/001 BMN (Ascend ModelZoo port of JJBOY/BMN-Boundary-Matching-Network)",
        reference={**_PUBLISHED, "devices": 2, "epochs": 9, "source": "JJBOY README a92c1d7"},
        epochs=9,
        lr=1e-3,
        **_COMMON,
    ),
    ProposalRecipe(
        name="bmn_anet_ascend",
        description="BMN on ActivityNet-1.3 features, the seeds' Ascend run (10 epochs, lr 1.5e-3, AMP O1)",
        seed_doc="000/001 BMN (Ascend ModelZoo port of JJBOY/BMN-Boundary-Matching-Network)",
        reference={
            "AR@100": 75.11,
            "videos_per_sec": 65,
            "devices": 1,
            "epochs": 10,
            "AR@100_8_devices": 74.82,
            "videos_per_sec_8_devices": 553,
            "source": "seed 000 README (Ascend 910, AMP O1)",
        },
        epochs=10,
        lr=1.5e-3,
        seed_amp="fp16",
        **_COMMON,
    ),
]

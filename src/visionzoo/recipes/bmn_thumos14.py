"""BMN on THUMOS14 snippet features with sliding windows, as OpenTAD's `configs/bmn/thumos_tsn.py` (no seed
document covers THUMOS14; JJBOY/BMN ships no THUMOS code, issues #40, #43).

Windows of 128 snippets (one per 5 frames), overlap 0.25 in training (OpenTAD's dataset default; its BMN
config trains at 0.5) and 0.5 at test, instances more than 0.9 inside a window; Adam lr 1e-4, weight decay
1e-4, batch 16, 8 epochs with lr x0.1 from epoch 5, gradients clipped at norm 1; windows merged per video
with Soft-NMS (sigma 0.3, 200 kept), the top-2 video classes (product) and mAP at tIoU 0.3:0.7. OpenTAD's BMN
limits the map to durations of 64 snippets; ours keeps the full [start, end] map of the JJBOY model.
"""

from visionzoo.recipes.base import WindowedProposalRecipe

_PUBLISHED = {  # OpenTAD configs/bmn/README.md, THUMOS14 test, TSN features, UntrimmedNet classes
    "mAP@0.30": 60.51,
    "mAP@0.40": 56.03,
    "mAP@0.50": 47.56,
    "mAP@0.60": 38.23,
    "mAP@0.70": 28.64,
    "average_mAP": 46.19,
}

RECIPES = [
    WindowedProposalRecipe(
        name="bmn_thumos14",
        description="BMN temporal action detection on THUMOS14 snippet features, sliding windows (OpenTAD setting)",
        seed_doc="none (BMN of seeds 000/001 on THUMOS14 as OpenTAD configs/bmn/thumos_tsn.py)",
        reference={**_PUBLISHED, "features": "TSN 2048-d, 1 snippet / 5 frames", "source": "OpenTAD BMN README"},
        model="bmn",
        data="thumos-demo",
        temporal_scale=128,
        feat_dim=2048,
        snippet_frames=0,
        optimizer="adam",
        lr=1e-4,
        weight_decay=1e-4,
        wd_skip_norm_bias=False,
        sched="multistep",
        decay_milestones=[5],
        decay_rate=0.1,
        epochs=8,
        batch_size=16,
        clip_grad=1.0,
        classes="auto",
        class_top_k=2,
        fusion="product",
        max_detections=200,
        detection_tiou="0.3:0.7:5",
        main_metric="average_mAP",
    ),
]

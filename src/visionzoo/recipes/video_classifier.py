"""The built-in video-level classifiers that turn BMN's proposals into detections (docs/bmn.md, Detection).

No seed document trains one: every BMN code base reads an external file instead (the CUHK 2017 ActivityNet
classification, UntrimmedNet scores on THUMOS14). These recipes learn the same kind of scores from the
detection data's own labels: `video_mlp` (mean + max pooling over time, a two-layer MLP), AdamW with a
cosine schedule, label smoothing 0.1. `--classes auto` of the BMN recipes trains one of them once per dataset.
"""

from visionzoo.recipes.base import VideoClassifierRecipe

_COMMON = dict(
    model="video_mlp",
    seed_doc="none (built-in; replaces the external CUHK / UntrimmedNet classifiers)",
    optimizer="adamw",
    lr=1e-3,
    weight_decay=0.05,
    sched="cosine",
    warmup_epochs=1.0,
    epochs=30,
    main_metric="top1",
)

RECIPES = [
    VideoClassifierRecipe(
        name="anet_video_classifier",
        description="video-level classes of ActivityNet-layout features (BSN csv_mean_100), for detection",
        reference={"source": "none: peers read the CUHK 2017 classification file (arXiv 1710.08011) instead"},
        data_format="activitynet",
        data="demo",
        batch_size=16,
        **_COMMON,
    ),
    VideoClassifierRecipe(
        name="thumos14_video_classifier",
        description="video-level classes of THUMOS14-layout snippet features, for detection",
        reference={"source": "none: no peer trains its own (UntrimmedNet scores are read from a file)"},
        data_format="thumos14",
        data="thumos-demo",
        temporal_scale=128,
        feat_dim=2048,
        video_anno="annotations",
        feature_dir="snippets",
        train_subset="validation",
        eval_subset="test",
        batch_size=8,  # THUMOS14 trains on 200 videos
        **_COMMON,
    ),
]

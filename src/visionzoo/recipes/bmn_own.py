"""BMN on the features of your own videos (`visionzoo features`): small datasets, tens to hundreds of videos.

`bmn_own` is `bmn_anet` (Adam, coupled L2 1e-4, batch 16, lr x0.1 late) trained 25 epochs instead of 9 (x0.1
after 20): on 50 and 200 generated training videos the held-out loss was still falling at the reference's last
epoch, and 25 epochs gained 2.6 and 6.7 held-out AUC points, while feature dropout, temporal jitter, more weight
decay, AdamW and fewer epochs gained nothing beyond the seeds' noise or lost (benchmarks/bmn_small_data.py,
docs/benchmarks.md section `bmn_small_data`). Its default data is `video-demo` (2048-d random-weight resnet50
features of generated videos); your own: `--data FEATURE_DIR --feat-dim D`.
"""

from visionzoo.recipes.bmn_anet import RECIPES as _ANET

_REFERENCE = next(recipe for recipe in _ANET if recipe.name == "bmn_anet")

RECIPES = [
    _REFERENCE.replace(
        name="bmn_own",
        description="BMN on features of your own videos (visionzoo features): bmn_anet trained 25 epochs",
        seed_doc="000/001 BMN, with the schedule measured on small held-out sets (benchmarks/bmn_small_data.py)",
        reference={"source": "docs/benchmarks.md, section bmn_small_data (T=32, generated videos)"},
        data="video-demo",
        feat_dim=2048,
        epochs=25,
        decay_milestones=[20],
    ),
]

"""Tasks: what is learned. `make_task(recipe)` picks one by the recipe's `task` field."""

from __future__ import annotations

from visionzoo.errors import VisionZooError
from visionzoo.recipes.base import Recipe
from visionzoo.tasks.base import Task


def make_task(recipe: Recipe) -> Task:
    if recipe.task == "classification":
        from visionzoo.tasks.classification import ClassificationTask

        return ClassificationTask(recipe)
    if recipe.task == "proposals":
        from visionzoo.tasks.proposals import ProposalTask

        return ProposalTask(recipe)
    if recipe.task == "windowed_proposals":
        from visionzoo.tasks.windowed_proposals import WindowedProposalTask

        return WindowedProposalTask(recipe)
    if recipe.task == "video_classification":
        from visionzoo.tasks.video_classification import VideoClassificationTask

        return VideoClassificationTask(recipe)
    raise VisionZooError(f"recipe {recipe.name!r}: unknown task {recipe.task!r}")

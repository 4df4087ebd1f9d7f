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
    raise VisionZooError(f"recipe {recipe.name!r}: unknown task {recipe.task!r}")

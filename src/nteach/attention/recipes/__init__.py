"""Training recipes for attention learners, by name: `nteach train NAME`.

Each recipe is a config dataclass (its fields become the command's options),
a run function ``run(config, resume_folder, show_progress, stop) -> (summary, folder)``,
a ``check(config)`` of what a user can get wrong (settings, data, model) that
runs nothing and writes nothing, and the validation metric its history tracks.
"""

from __future__ import annotations

from typing import Callable, NamedTuple


class Recipe(NamedTuple):
    config: type
    run: Callable
    help: str
    check: Callable
    metric: str  # in every history record: "val_accuracy" (higher is better) or "val_loss"


RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str, config: type, run: Callable, help: str, check: Callable, metric: str) -> None:
    RECIPES[name] = Recipe(config, run, help, check, metric)


def load_recipes() -> dict[str, Recipe]:
    """Import the recipe modules (they register themselves) and return the table."""
    import importlib

    for module in ("vit", "encoder", "lm"):
        try:
            importlib.import_module(f"nteach.attention.recipes.{module}")
        except ModuleNotFoundError as error:
            if error.name != f"nteach.attention.recipes.{module}":
                raise
    return RECIPES

"""`kdasr recipe run`: the paper recipe's stages (kdasr/recipe), configured by environment variables."""

from __future__ import annotations

from typing import Annotated

import typer

recipe_app = typer.Typer(help="The paper recipe, corpus to table, stage by stage (every stage skips finished work).",
                         no_args_is_help=True)


@recipe_app.command("run")
def run(
    stages: Annotated[list[str] | None, typer.Argument(help="Stages to run, in order (default: all).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Run the default sequence from this stage on.")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only this stage (repeatable).")] = None,
    list_stages: Annotated[bool, typer.Option("--list", help="List the stages and exit.")] = False,
) -> None:
    """Run the recipe's stages. Its variables (DATA, EXP, EPOCHS, ...) come from the environment, as
    eval/recipe.sh has always read them: see kdasr/recipe/settings.py."""
    from kdasr.recipe.paper import main

    raise typer.Exit(main([*(stages or []), *(only or [])], start, list_stages))


def register(app: typer.Typer) -> None:
    app.add_typer(recipe_app, name="recipe")

"""`kdasr recipe run`: the paper recipe's stages (kdasr/recipe), configured by environment variables;
`kdasr recipe claim`: the claim recipe (issue 28), driven by a protocol file."""

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


@recipe_app.command("claim")
def claim(
    stages: Annotated[list[str] | None, typer.Argument(help="Stages to run, in order (default: all).")] = None,
    protocol: Annotated[str, typer.Option("--protocol", help="Protocol file (TOML) with a \\[setup] table, e.g. "
                                          "kdasr/configs/protocols/claim-v1.toml.")] = "",
    exp: Annotated[str, typer.Option("--exp", help="Run dir (the protocol is frozen into it).")] = "",
    start: Annotated[str | None, typer.Option("--from", help="Run the sequence from this stage on.")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", help="Jobs side by side, one thread each (default $JOBS, "
                                             "else 2).")] = None,
    list_stages: Annotated[bool, typer.Option("--list", help="List the stages and exit.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="When another run holds EXP, wait for it to end instead "
                                       "of refusing.")] = False,
    keep: Annotated[str | None, typer.Option("--keep", help="Once the table stage has written the report, copy it "
                                             "(tables, verdicts, bench, curves, the frozen protocol, the dev "
                                             "choices, the stage times) into this folder, e.g. the repository's "
                                             "eval/reports/claim (make claim does).")] = None,
) -> None:
    """The claim recipe: systems x seeds with every choice (T and K, lambda, smoothing, decoding) made on
    dev, a protocol frozen before any test number, claim tables with intervals over seeds and
    utterances. Every stage skips finished work: re-run to continue. Stages: kdasr/recipe/claim.py.

    Example: kdasr recipe claim --protocol kdasr/configs/protocols/claim-v1.toml --exp exp/claim
    """
    from kdasr.recipe.claim import main

    if not list_stages and not (protocol and exp):
        typer.echo("error: --protocol and --exp are required", err=True)
        raise typer.Exit(2)
    raise typer.Exit(main(protocol, exp or ".", stages or [], start, list_stages, jobs, wait=wait, keep=keep))


def register(app: typer.Typer) -> None:
    app.add_typer(recipe_app, name="recipe")

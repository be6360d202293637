"""`kdasr models`: the models found by name (shipped with the package, in the user's model dir, in a
checkout's export/), and `kdasr models add DIR` to install one's own export by name. File
operations only (kdasr/model_store.py): nothing is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import user_errors

models_app = typer.Typer(
    help="Models by name: list what is installed, add your own (`-m NAME`, Transcriber(NAME), KDASR_MODEL=NAME).",
    no_args_is_help=False,
    invoke_without_command=True,
)


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """List the installed models: name, where it comes from, size and path (the same as `kdasr models list`)."""
    if ctx.invoked_subcommand is None:
        list_models()


@models_app.command("list")
def list_models() -> None:
    """List the installed models: name, origin (user, shipped, checkout), size and path."""
    import os

    from ..defaults import MODEL_DEFAULT
    from ..model_store import installed_models, user_models_dir

    found = installed_models()
    default = os.environ.get("KDASR_MODEL") or MODEL_DEFAULT
    for m in found:
        mark = "*" if m.name == default else " "
        typer.echo(f"{mark} {m.name:<20} {m.origin:<9} {m.size_bytes / 1e6:7.1f} MB  {m.path}{_by_reference(m.path)}")
    if not found:
        typer.echo("no models installed")
    typer.echo(f"(* default; your own models: {user_models_dir()} — `kdasr models add DIR`, or set KDASR_MODELS)")


def _by_reference(model_dir: Path) -> str:
    """What else the model needs installed: the package its weights are held by reference to
    (model.json external_weights); read as plain JSON, nothing is loaded."""
    import json

    try:
        e = json.loads((model_dir / "model.json").read_text()).get("external_weights")
        return f"  (+ weights by reference: {e['package']}=={e['version']}, {e['licence'] or '?'})" if e else ""
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return ""  # `kdasr doctor` says what is wrong with a model dir; a listing does not


@models_app.command("add")
def add(
    model_dir: Annotated[Path, typer.Argument(help="An exported model directory (kdasr export --out DIR).")],
    name: Annotated[str | None, typer.Option(help="Name to use with -m (default: the folder's name).")] = None,
    replace: Annotated[bool, typer.Option(help="Overwrite an installed model of that name.")] = False,
) -> None:
    """Copy an exported model into your model dir, so `-m NAME` finds it from any folder.

    Example: kdasr models add exp/mine/model --name mine && kdasr transcribe talk.flac -m mine
    """
    from ..model_store import add_model

    with user_errors():
        dest = add_model(model_dir, name, replace)
    typer.echo(f"installed {dest.name}: {dest}")


@models_app.command("path")
def path(name: Annotated[str, typer.Argument(help="A model name (as `kdasr models` lists) or a directory.")]) -> None:
    """Print the directory a model name resolves to (for scripts: `--init-from "$(kdasr models path demo-en)"`).

    Example: kdasr models path demo-en
    """
    from ..model_store import resolve_model

    with user_errors():
        typer.echo(str(resolve_model(name)))

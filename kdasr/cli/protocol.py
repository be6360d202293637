"""`kdasr protocol ...`: fix an experiment's protocol before any test number exists (freeze), hold a
run to it (check), print its Markdown block (show). Thin over kdasr.spec.protocol and
kdasr.recipe.protocol; torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import user_errors

protocol_app = typer.Typer(
    help="An experiment's protocol (budget, seeds, systems, grids, dev and test sets), fixed before any test "
    "number: freeze it into a run dir, check a run against it, show it.",
    no_args_is_help=True,
)

ProtocolArg = Annotated[Path, typer.Argument(help="Protocol file (TOML), e.g. kdasr/configs/protocols/claim-v1.toml.")]
ExpOpt = Annotated[Path, typer.Option("--exp", help="Run dir: holds protocol.toml and protocol.lock.json.")]


@protocol_app.command("freeze")
def freeze(protocol: ProtocolArg, exp: ExpOpt) -> None:
    """Copy PROTOCOL into EXP (protocol.toml) and lock its fingerprint (protocol.lock.json). Again with
    the same content: nothing to do. With changed content: accepted only when PROTOCOL records the
    change (a \\[\\[change]] whose `from` is the locked fingerprint), and the lock keeps the history.

    Example: kdasr protocol freeze kdasr/configs/protocols/claim-v1.toml --exp exp/claim
    """
    from ..recipe.protocol import freeze as run

    with user_errors():
        p, what = run(protocol, exp)
    typer.echo({"frozen": f"froze {protocol} into {exp} (fingerprint {p.fingerprint})",
                "unchanged": f"{exp} already holds this protocol (fingerprint {p.fingerprint}): nothing to do",
                "changed": f"recorded the change: {exp} now holds {protocol} (fingerprint {p.fingerprint})"}[what])


@protocol_app.command("check")
def check(protocol: ProtocolArg, exp: ExpOpt) -> None:
    """Exit 0 when PROTOCOL is the one frozen in EXP, or records its change from it (the lock then
    follows); exit 1 with one line when EXP holds no protocol or another one.

    Example: kdasr protocol check kdasr/configs/protocols/claim-v1.toml --exp exp/claim
    """
    from ..recipe.protocol import settle

    with user_errors():
        p, what = settle(protocol, exp, create=False)
    typer.echo(f"{protocol} is the protocol frozen in {exp} (fingerprint {p.fingerprint})"
               + ("; its recorded change moved the lock" if what == "changed" else ""))


@protocol_app.command("show")
def show(protocol: ProtocolArg) -> None:
    """Print PROTOCOL as the Markdown block a results table carries: budget, seeds, systems, grids, dev and
    test sets, and every change (those after a test number was seen marked).

    Example: kdasr protocol show kdasr/configs/protocols/claim-v1.toml
    """
    from ..spec.protocol import read_protocol, render_protocol_block

    with user_errors():
        text = render_protocol_block(read_protocol(protocol))
    typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(protocol_app, name="protocol")

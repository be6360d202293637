"""What the command modules share: one-line user errors, the command line as run, the model/runtime
options of the torch-free commands, an options file under the flags given, the graph-check printout."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from ..errors import KdasrError
from ..spec.precision import RUN_HELP

ModelOpt = Annotated[
    Path | None, typer.Option("--model", "-m", help="Model directory or installed model name (kdasr models; "
                              "default: $KDASR_MODEL, else demo-en).")
]
ThreadsOpt = Annotated[int | None, typer.Option(help="onnxruntime intra-op threads (default: all cores).")]
DeviceOpt = Annotated[str, typer.Option(help="'cpu' or 'cuda' (needs the gpu extra).")]
PrecisionOpt = Annotated[str | None, typer.Option(help=RUN_HELP)]  # None: the model's recommendation
LmOpt = Annotated[Path | None, typer.Option(help="Exported LM/BERT dir (kdasr export-lm); default: the model dir.")]
QuantizeOpt = Annotated[
    list[str] | None, typer.Option("--quantize", help="Also write variants: int8 (CPU), fp16 (GPU). Repeatable.")
]



@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a KdasrError into one `error: ...` line on stderr and exit status 1."""
    try:
        yield
    except KdasrError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


def command_line() -> str:
    """This invocation as a shell line (for reports and result records: how to make them again)."""
    return shlex.join(["kdasr", *sys.argv[1:]])


def options_file_under_flags(ctx: typer.Context, path: Path, flags: dict, lm: Path | None) -> tuple[dict, Path | None]:
    """The decode flags of the running command over an options file (kdasr tune --out): only flags
    given on the command line win (a flag left at its default does not undo the file); the file's
    LM dir unless --lm is given. Raises KdasrError (one line) for a bad file."""
    from ..eval.tune import read_options

    doc = read_options(path)

    def given(name: str) -> bool:  # None: not a parameter of its own (flags already reduced to the given ones)
        source = ctx.get_parameter_source(name)
        return source is None or source.name not in ("DEFAULT", "DEFAULT_MAP")

    chosen = {k: v for k, v in flags.items() if v is not None and given(k)}
    return {**doc.decoding, **chosen}, lm if lm is not None else doc.lm


def print_checks(checks, tolerance: float) -> bool:
    for c in checks:
        verdict = "reported" if c.informational else ("ok" if c.ok(tolerance) else "FAIL")
        typer.echo(
            f"check {c.graph}: max |torch - onnx| = {c.max_error:.2e} over {c.cases} {c.unit} "
            f"({verdict}, tolerance {tolerance * c.tolerance_factor:g})" + (f": {c.detail}" if c.detail else "")
        )
    return all(c.ok(tolerance) for c in checks)


def bad_decoding(e: ValueError):
    """DecodeOptions' refusal of a flag (NaN, out of range): one line and the usage exit status."""
    typer.echo(f"error: invalid decoding option: {e}", err=True)
    raise typer.Exit(2)

"""`kdasr import-whisper`: a kdasr model dir for a complete whisper model (kdasr/export/whisper_import.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .data import user_errors
from .runtime import QuantizeOpt, _print_checks


def import_whisper_cmd(
    source: Annotated[str, typer.Argument(help="tiny.en or base (the bundled packages), or a CTranslate2 whisper "
                                          "folder (model.bin, config.json, vocabulary.json/.txt).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    quantize: QuantizeOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Compare the graphs with transformers' whisper on the "
                                        "same weights; fail above --tolerance.")] = False,
    tolerance: Annotated[float, typer.Option(help="Max abs difference allowed by --check.")] = 1e-4,
    pad_30: Annotated[bool, typer.Option("--pad-30", help="The encoder pads the log-mel with zeros to 30 s, as "
                                         "faster-whisper does (for parity; slower on short audio).")] = False,
) -> None:
    """Import a whisper model: encoder.onnx (whisper's log-mel inside, any length, no 30 s padding),
    decoder.onnx (one step, self-attention KV cache, cross-attention keys/values from the encoder),
    whisper_vocab.json, model.json (prompt, suppressed tokens, decoding: beam 5, length penalty 1).

    Example: kdasr import-whisper tiny.en --out export/whisper-tiny.en --quantize int8 --check
    """
    from ..export.whisper_import import import_whisper

    with user_errors():
        result = import_whisper(source, out_dir, tuple(quantize or ()), check, pad_30)
    typer.echo(f"wrote {out_dir}")
    if not _print_checks(result["checks"], tolerance):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("import-whisper")(import_whisper_cmd)

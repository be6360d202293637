"""`kdasr import-whisper`: a kdasr model dir for a complete whisper model (kdasr/export/whisper_import.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .data import user_errors
from .runtime import QuantizeOpt, _print_checks

TAIL_SECONDS = 2.0  # the zero log-mel tail with --no-pad-30


def import_whisper_cmd(
    source: Annotated[str, typer.Argument(help="tiny.en or base (the bundled packages), or a CTranslate2 whisper "
                                          "folder (model.bin, config.json, vocabulary.json/.txt).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    quantize: QuantizeOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Compare the graphs with transformers' whisper on the "
                                        "same weights; fail above --tolerance.")] = False,
    tolerance: Annotated[float, typer.Option(help="Max abs difference allowed by --check.")] = 1e-4,
    pad_30: Annotated[bool, typer.Option("--pad-30/--no-pad-30", help="The encoder pads the log-mel with zeros to "
                                         "30 s, as faster-whisper does. Without it (faster on short audio) whisper "
                                         "often repeats its text: on 100 test_real utterances tiny.en's WER was "
                                         "6.5% padded, 200% with a 2 s tail.")] = True,
    tail: Annotated[float, typer.Option("--tail", help="Without --pad-30: seconds of zero log-mel after each "
                                        "input (whisper ends its text more reliably when it sees some; 0 = none)."
                                        )] = TAIL_SECONDS,
    weights: Annotated[Path | None, typer.Option("--weights", help="A `kdasr train-whisper` checkpoint "
                                                 "(OUT/whisper.pt) of SOURCE: export the fine-tuned model.")] = None,
) -> None:
    """Import a whisper model: encoder.onnx (whisper's log-mel inside, padded with zeros to 30 s as
    faster-whisper does; --no-pad-30: any length, --tail seconds of zero log-mel after each input),
    decoder.onnx (one step, self-attention KV cache, cross-attention keys/values from the encoder),
    whisper_vocab.json, model.json (prompt, suppressed tokens, decoding: beam 5, length penalty 1).

    Example: kdasr import-whisper tiny.en --out export/whisper-tiny.en --quantize int8 --check
    (--no-pad-30 --tail 2: the encoder sees the input and 2 s of zero log-mel only)
    """
    from ..export.whisper_import import import_whisper  # torch: only when the command runs

    with user_errors():
        result = import_whisper(source, out_dir, tuple(quantize or ()), check, pad_30, tail, weights)
    for note in result.get("notes", []):
        typer.echo(f"warning: {note}")
    typer.echo(f"wrote {out_dir}")
    if not _print_checks(result["checks"], tolerance):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    from .whisper_train import train_whisper_cmd

    app.command("import-whisper")(import_whisper_cmd)
    app.command("train-whisper")(train_whisper_cmd)

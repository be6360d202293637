"""`kdasr import-whisper`: a kdasr model dir for a complete whisper model (kdasr/export/whisper_import.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import QuantizeOpt, command_line, print_checks, user_errors

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
    if not print_checks(result["checks"], tolerance):
        raise typer.Exit(1)


def bench_whisper_cmd(
    manifest: Annotated[Path, typer.Option("--manifest", help="JSONL manifest: the short utterances (first --limit).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Markdown report (JSON beside it). The repository's is "
                                      "eval/reports/whisper-runtime.md.")],
    model: Annotated[list[str] | None, typer.Option("--model", help="tiny.en and/or base (repeatable; default "
                                                    "both).")] = None,
    limit: Annotated[int, typer.Option(help="Short utterances measured.")] = 48,
    long_seconds: Annotated[float, typer.Option(help="Length of the long file (0: none).")] = 600.0,
    long_from: Annotated[Path | None, typer.Option(help="Manifest whose utterances make the long file (default: "
                                                   "--manifest).")] = None,
    threads: Annotated[list[int] | None, typer.Option("--threads", help="Thread counts (repeatable; default 1 "
                                                      "and all usable cores).")] = None,
    batch: Annotated[list[int] | None, typer.Option("--batch", help="Batch sizes (repeatable; default 1 and 16)."
                                                    )] = None,
    long_threads: Annotated[list[int] | None, typer.Option("--long-threads", help="Thread counts on the long file "
                                                           "(repeatable; default: --threads).")] = None,
    long_batch: Annotated[list[int] | None, typer.Option("--long-batch", help="Batch sizes on the long file "
                                                         "(repeatable; default: --batch).")] = None,
    beam: Annotated[int, typer.Option(help="Beam of both sides.")] = 5,
    pad_manifest: Annotated[list[Path] | None, typer.Option("--pad-manifest", help="Manifests of the "
                                                            "padding comparison (repeatable), e.g. test, test_real."
                                                            )] = None,
    pad_limit: Annotated[int, typer.Option(help="Utterances per padding manifest.")] = 100,
    work: Annotated[Path, typer.Option(help="Model dirs (imported here when missing) and the long file.")] = Path(
        "exp/whisper-bench"),
    note: Annotated[str, typer.Option(help="A line at the top of the report (e.g. 'smoke run').")] = "",
) -> None:
    """kdasr fp32 and int8 against faster-whisper int8 on the same whisper weights and audio: 1 thread
    and all, batch 1 and 16, short utterances and a long file; RTFx, latency p50/p95, peak RSS (each
    row in its own process), WER; parity of the 1-best; WER with and without 30 s padding.

    Example: kdasr bench-whisper --manifest data/real/fotaq/test_real.jsonl --pad-manifest
    data/real/fotaq/test_real.jsonl --out eval/reports/whisper-runtime.md
    """
    from ..reports.whisper_h2h import H2HConfig, run_h2h
    from ..reports.whisper_h2h_writer import write_report

    cfg = H2HConfig(manifest, tuple(model or ("tiny.en", "base")), limit, long_seconds, long_from,
                    threads=tuple(threads or ()), batches=tuple(batch or (1, 16)),
                    long_threads=tuple(long_threads or ()), long_batches=tuple(long_batch or ()), beam=beam,
                    pad_manifests=tuple(pad_manifest or ()), pad_limit=pad_limit, work=work,
                    command=command_line(), note=note)
    with user_errors():
        rep = run_h2h(cfg, progress=lambda m: typer.echo(m, err=True))
        json_path = write_report(rep, out)
    typer.echo(f"wrote {out} and {json_path}")


def register(app: typer.Typer) -> None:
    from .whisper_train import train_whisper_cmd

    app.command("import-whisper")(import_whisper_cmd)
    app.command("bench-whisper")(bench_whisper_cmd)
    app.command("train-whisper")(train_whisper_cmd)

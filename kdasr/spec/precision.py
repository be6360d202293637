"""The precision a model dir recommends: which graph variant (fp32, int8, fp16) runs on which device
unless told. model.json "precision": {"cpu": "int8"} (device -> precision; a device not named runs
fp32, and a model.json without the key, from before it existed, runs fp32 everywhere), written by
`kdasr export --recommend-precision int8`, read by every consumer whose precision is not given
(`Transcriber(precision=None)`, `--precision` left out of transcribe/eval/tune/serve).

Not a DecodeOptions field (decode_options.py) although it is recorded beside the recommended
decoding: it picks the files the sessions load, once per Transcriber, not a setting of one call,
and an HTTP client must not choose it (graphs and memory are the operator's).

Per device because the variants are: int8 is onnxruntime's dynamic quantisation restricted to the
ops that get faster on CPU kernels (kdasr/export/quantize.py; measured on CPU only), fp16 is for
the CUDA provider (CPU kernels mostly lack fp16). So a bare `int8` recommends it for the CPU and
`fp16` for CUDA; `cuda=int8` says otherwise explicitly. A `--device cuda` run of a dir that
recommends only {"cpu": "int8"} loads fp32.

Stdlib only (the spec is shared by export and the runtime)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from .graph_spec import PRECISIONS, GraphSpec, fail

DEVICES = ("cpu", "cuda")  # the runtime's devices (kdasr/runtime/onnx_model.py PROVIDERS)
DEFAULT = "fp32"  # what runs where nothing is recommended: the variant every model dir has
FOR_DEVICE = {"int8": "cpu", "fp16": "cuda"}  # the device a bare precision is recommended for
# --precision's help (transcribe, eval, tune, serve): what leaving it out means
RUN_HELP = ("Graphs to run: fp32, int8 (export --quantize int8; CPU) or fp16 (GPU). Default: the precision the "
            "model recommends for the device (model.json \"precision\", set by kdasr export "
            "--recommend-precision), else fp32.")


def parse_precision(d: object, graphs: Mapping[str, GraphSpec], where: str) -> dict[str, str]:
    """model.json "precision" ({} when absent): device -> precision, each one a variant every graph
    lists (a recommendation the dir cannot run fails at load, not at the first decode)."""
    if not isinstance(d, Mapping):
        fail(where, f"'precision' must be an object (device -> precision), got {json.dumps(d)[:60]}")
    for device, precision in d.items():
        if device not in DEVICES:
            fail(where, f"precision: {device!r} is not a device ({', '.join(DEVICES)})")
        if precision not in PRECISIONS:
            fail(where, f"precision.{device}: {json.dumps(precision)[:40]} is not one of {', '.join(PRECISIONS)}")
        missing = [g.file for g in graphs.values() if precision not in g.files]
        if missing:
            fail(where, f"precision.{device} recommends {precision}, but no {precision} variant of "
                 f"{', '.join(missing)} is listed (kdasr export --quantize {precision})")
    return {device: d[device] for device in DEVICES if device in d and d[device] != DEFAULT}


def recommendation(values: Iterable[str]) -> dict[str, str]:
    """`--recommend-precision` values as model.json's mapping: 'int8' (for the CPU), 'fp16' (for CUDA),
    'DEVICE=PRECISION', or 'fp32' (recommend nothing: every device runs fp32). ValueError, one line."""
    out: dict[str, str] = {}
    for value in values:
        device, sep, precision = value.strip().rpartition("=")
        if precision not in PRECISIONS:
            raise ValueError(f"{value!r}: the precision must be one of {', '.join(PRECISIONS)}")
        if sep and device not in DEVICES:
            raise ValueError(f"{value!r}: the device must be one of {', '.join(DEVICES)}")
        if not sep and precision == DEFAULT:
            out.update(dict.fromkeys(DEVICES, DEFAULT))
            continue
        out[device if sep else FOR_DEVICE[precision]] = precision
    return out


def missing_variants(wanted: Mapping[str, str], available: Iterable[str]) -> list[str]:
    """The recommended precisions (other than fp32) that are not among the variants `available`."""
    have = {DEFAULT, *available}
    return sorted({p for p in wanted.values() if p not in have})

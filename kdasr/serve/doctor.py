"""`kdasr doctor`: what this machine's onnxruntime can really do, and whether a model dir is sound.

Each check gives ok / warn / FAIL and one line saying why. numpy + onnxruntime only (torch-free);
nothing here needs the serve extra."""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import KdasrError
from ..runtime.onnx_model import PRECISIONS, SUPPORTED_FORMAT, read_json

# Distributions that all install the same `onnxruntime` package folder: two of them overwrite each
# other's files, and whichever was installed last decides the providers (often: CUDA silently gone).
RUNTIME_DISTS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                 "onnxruntime-silicon", "onnxruntime-qnn", "ort-nightly", "ort-nightly-gpu")


@dataclass(frozen=True)
class Check:
    status: str  # "ok", "warn", "FAIL", or "info"
    name: str
    detail: str


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def installed_runtimes(path: list[str] | None = None) -> dict[str, str]:
    """{distribution: version} of every onnxruntime build installed (path: where to look; default sys.path)."""
    found = {}
    for dist in importlib.metadata.distributions(path=path) if path is not None else importlib.metadata.distributions():
        name = _norm(dist.metadata["Name"] or "")
        if name in RUNTIME_DISTS:
            found.setdefault(name, dist.version)
    return found


def runtime_checks(path: list[str] | None = None) -> list[Check]:
    providers = ort.get_available_providers()
    checks = [
        Check("info", "onnxruntime", f"version {ort.__version__} from {Path(ort.__file__).parent}"),
        Check("info", "providers", ", ".join(providers)),
    ]
    dists = installed_runtimes(path)
    if len(dists) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in sorted(dists.items()))
        checks.append(Check(
            "FAIL", "onnxruntime builds",
            f"{listed} are installed together; they share one `onnxruntime` folder, so the last one installed "
            f"wins and the CUDA provider can vanish without an error (silent CPU fallback). Fix: pip uninstall -y "
            f"{' '.join(sorted(dists))}, then install exactly one (onnxruntime for CPU, onnxruntime-gpu for CUDA)",
        ))
    elif dists:
        checks.append(Check("ok", "onnxruntime builds", f"one installed: {next(iter(dists))}"))
    if "onnxruntime-gpu" in dists and "CUDAExecutionProvider" not in providers:
        checks.append(Check("warn", "CUDA provider",
                            "onnxruntime-gpu is installed but CUDAExecutionProvider is not available: the loaded "
                            "onnxruntime is a CPU build (see the line above) or its CUDA libraries are missing"))
    return checks


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """x86 feature flags from /proc/cpuinfo (empty where there is none: macOS, Windows, ARM)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_checks(flags: set[str] | None = None) -> list[Check]:
    flags = cpu_flags() if flags is None else flags
    machine = platform.machine()
    if not flags:
        return [Check("info", "cpu", f"{machine}: no /proc/cpuinfo flags; measure int8 with `kdasr bench`")]
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"]
    have = [f for f in wanted if f in flags]
    detail = f"{machine}, {', '.join(have) or 'none of ' + ', '.join(wanted)}"
    if {"avx512_vnni", "avx_vnni", "amx_int8"} & flags:
        verdict = Check("ok", "int8", "VNNI present: onnxruntime's int8 MatMul kernels use it, so int8 graphs "
                                      "(--precision int8) usually pay off; confirm with `kdasr bench`")
    elif "avx2" in flags:
        verdict = Check("warn", "int8", "AVX2 without VNNI: int8 runs on slower u8s8 kernels and may gain little or "
                                        "lose; compare fp32 and int8 with `kdasr bench` before choosing")
    else:
        verdict = Check("warn", "int8", "no AVX2: int8 kernels are slow here; stay with fp32")
    return [Check("info", "cpu", detail), verdict]


def model_checks(model_dir: Path) -> list[Check]:
    """Files present, format version, and every graph's input/output names against model.json."""
    try:
        info = read_json(model_dir / "model.json", "model")
    except KdasrError as e:
        return [Check("FAIL", "model.json", str(e))]
    checks = []
    version = info.get("format_version")
    checks.append(Check("ok" if version == SUPPORTED_FORMAT else "FAIL", "format_version",
                        f"{version!r} (this runtime reads {SUPPORTED_FORMAT})"))
    tok = model_dir / "tokenizer.model"
    present = tok.is_file()
    checks.append(Check("ok" if present else "FAIL", "tokenizer.model", "present" if present else "missing"))
    for graph, entry in (info.get("graphs") or {}).items():
        for precision in PRECISIONS:
            name = entry.get("file") if precision == "fp32" else entry.get(precision)
            if name:
                checks.append(_graph_check(model_dir / name, graph, entry))
    if not info.get("graphs"):
        checks.append(Check("FAIL", "graphs", "model.json lists no graphs"))
    return checks


def _graph_check(path: Path, graph: str, entry: dict) -> Check:
    label = f"{graph} {path.name}"
    if not path.is_file():
        return Check("FAIL", label, "missing")
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types for a bad file
        return Check("FAIL", label, f"onnxruntime cannot load it: {str(e).splitlines()[0]}")
    inputs, outputs = [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]
    problems = []
    if entry.get("inputs") and list(entry["inputs"]) != inputs:
        problems.append(f"inputs {inputs} != model.json {entry['inputs']}")
    if entry.get("outputs") and list(entry["outputs"]) != outputs:
        problems.append(f"outputs {outputs} != model.json {entry['outputs']}")
    meta = sess.get_modelmeta().custom_metadata_map
    size = path.stat().st_size / 1e6
    if problems:
        return Check("FAIL", label, "; ".join(problems))
    return Check("ok", label, f"{size:.1f} MB, {len(inputs)} inputs / {len(outputs)} outputs match model.json, "
                              f"{len(meta)} metadata keys")


def cuda_checks(model_dir: Path | None) -> list[Check]:
    """A real decode on the GPU: the encoder and decoder steps run with the CUDA provider first."""
    from ..runtime import DecodeOptions, Transcriber

    try:
        t = Transcriber(model_dir, device="cuda")
        used = t.model.encoder.get_providers()[0]
        wave = (0.01 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
        t.transcribe([wave], DecodeOptions(method="attention", beam=1, max_len_ratio=0.05))
    except KdasrError as e:
        return [Check("FAIL", "cuda decode", str(e))]
    except Exception as e:  # noqa: BLE001 - CUDA/cuDNN load failures surface as assorted RuntimeErrors
        return [Check("FAIL", "cuda decode", f"{type(e).__name__}: {str(e).splitlines()[0]}")]
    if used != "CUDAExecutionProvider":
        return [Check("FAIL", "cuda decode", f"the session runs on {used}, not CUDA")]
    return [Check("ok", "cuda decode", "encoder + decoder steps ran on CUDAExecutionProvider")]

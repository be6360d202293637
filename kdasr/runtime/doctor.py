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
from ..models.package_weights import session_with_package_weights
from ..spec.graph_spec import FORMAT_VERSION, READABLE_FORMATS, READS, GraphSpec, read_spec_json
from ..spec.modelspec import ModelSpec
from .onnx_model import check_tensors

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
    """Files present, format version, the model spec, and every graph's input/output names against it.
    A spec that does not parse is one FAIL line; each graph entry that does is still checked file by file."""
    json_path = model_dir / "model.json"
    try:
        raw = read_spec_json(json_path, "model")
    except KdasrError as e:
        return [Check("FAIL", "model.json", str(e))]
    checks = []
    version = raw.get("format_version")
    if version == FORMAT_VERSION:
        checks.append(Check("ok", "format_version", f"{version} (this runtime reads {READS.split()[-1]})"))
    elif version in READABLE_FORMATS:
        checks.append(Check("ok", "format_version", f"{version}: an older layout, read as format {FORMAT_VERSION} "
                                                    f"(re-export to update it)"))
    else:
        checks.append(Check("FAIL", "format_version", f"{version!r} ({READS})"))
    spec = None
    try:
        spec = ModelSpec.from_dict(raw, str(json_path))
        graphs = spec.graphs
        checks.append(Check("ok", "model spec", f"vocab {spec.vocab_size}, {spec.sample_rate} Hz, decoder state "
                                                f"{', '.join(t.name for t in spec.decoder.state)}"))
        chosen = ", ".join(f"{p} on {d}" for d, p in spec.precision.items()) or "none (fp32 everywhere)"
        checks.append(Check("info", "precision", f"recommended: {chosen}; what runs without --precision"))
    except KdasrError as e:
        checks.append(Check("FAIL", "model spec", str(e)))
        graphs = _parseable_graphs(raw, json_path)
    whisper = spec is not None and spec.architecture.get("tokenizer") == "whisper-bpe"  # kdasr import-whisper
    tok = model_dir / ("whisper_vocab.json" if whisper else "tokenizer.model")
    present = tok.is_file()
    checks.append(Check("ok" if present else "FAIL", tok.name, "present" if present else "missing"))
    for name, graph in graphs.items():
        tensors = [*spec.decoder.state, *spec.decoder.memory] if spec is not None and name == "decoder" else []
        for file in graph.distinct_files:
            checks.append(_graph_check(model_dir / file, name, graph, tensors))
    if not graphs:
        checks.append(Check("FAIL", "graphs", "model.json lists no graphs"))
    return checks


def _parseable_graphs(raw: dict, json_path: Path) -> dict[str, GraphSpec]:
    graphs = {}
    for name, entry in (raw.get("graphs") if isinstance(raw.get("graphs"), dict) else {}).items():
        try:
            graphs[name] = GraphSpec.from_dict(entry, f"{json_path}: graphs.{name}")
        except KdasrError:
            continue
    return graphs


def _graph_check(path: Path, graph: str, spec: GraphSpec, tensors: list) -> Check:
    label = f"{graph} {path.name}"
    if not path.is_file():
        return Check("FAIL", label, "missing")
    try:  # a package the graph holds tensors of by reference is missing or changed, or ORT refuses the file
        sess = session_with_package_weights(path, refused="onnxruntime cannot load it: {reason}")
    except KdasrError as e:
        return Check("FAIL", label, str(e))
    inputs, outputs = [i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()]
    problems = []
    if list(spec.inputs) != inputs:
        problems.append(f"inputs {inputs} != model.json {list(spec.inputs)}")
    if list(spec.outputs) != outputs:
        problems.append(f"outputs {outputs} != model.json {list(spec.outputs)}")
    if not problems and tensors:
        try:
            check_tensors(path, sess, tensors)
        except KdasrError as e:
            problems.append(str(e).removeprefix(f"{path}: "))
    meta = sess.get_modelmeta().custom_metadata_map
    size = path.stat().st_size / 1e6
    if problems:
        return Check("FAIL", label, "; ".join(problems))
    return Check("ok", label, f"{size:.1f} MB, {len(inputs)} inputs / {len(outputs)} outputs match model.json, "
                              f"{len(meta)} metadata keys")


def cuda_checks(model_dir: Path | None) -> list[Check]:
    """A real decode on the GPU: the encoder and decoder steps run with the CUDA provider first."""
    from . import DecodeOptions, Transcriber

    try:
        t = Transcriber(model_dir, device="cuda", vad=False)
        used = t.model.encoder.get_providers()[0]
        wave = (0.01 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
        t.transcribe([wave], DecodeOptions(method="attention", beam=1, max_len_ratio=0.05))
    except KdasrError as e:
        return [Check("FAIL", "cuda decode", str(e))]
    except Exception as e:  # noqa: BLE001 - CUDA/cuDNN load failures surface as assorted RuntimeErrors
        return [Check("FAIL", "cuda decode", f"{type(e).__name__}: {str(e).splitlines()[0]}")]
    if used != "CUDAExecutionProvider":
        return [Check("FAIL", "cuda decode", f"the session runs on {used}, not CUDA")]
    return [Check("ok", "cuda decode", f"encoder + decoder steps ({t.model.precision}) ran on CUDAExecutionProvider")]

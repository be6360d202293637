"""The graph-level half of the model-directory contract (DESIGN.md §3): format versions, symbolic
dims, and the frozen, typed descriptions of one ONNX graph, its tensors, the encoder and one decoding
step. `ModelSpec` (modelspec.py) puts them together for a student; `teacher_spec.py` for teachers.
Like modelspec.py: stdlib only (plus ModelError), so export and runtime may both import it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

from ..errors import ModelError

FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)
READS = f"this kdasr reads format {READABLE_FORMATS[0]}-{READABLE_FORMATS[-1]}"
PRECISIONS = ("fp32", "int8", "fp16")  # a graph entry's fp32 `file` and its variants by precision
# Symbolic dims with a meaning to the runtime; any other string is a free dim it does not interpret.
BATCH, FRAMES, STEPS = "batch", "frames", "steps"  # hypothesis rows; encoder frames; tokens decoded so far
# A decoder memory input with this dim instead of BATCH holds one row per utterance, shared by its
# hypotheses (format 3): the step's hypothesis rows then come in equal consecutive blocks, one per
# utterance, and the graph broadcasts the memory over each block instead of reading a copy per row.
UTTERANCES = "utterances"
# How a state tensor starts: all zeros (a KV cache starts with 0 `steps`), or uniform over the
# utterance's valid frames (location-aware attention weights: 1 / length on t < length, else 0).
INITS = ("zeros", "uniform_frames")
DTYPES = ("float32", "float16", "int64", "int32", "bool")
REEXPORT = "re-export it with `kdasr export CKPT --out DIR` (or `kdasr export-lm`)"

Dim = int | str


def fail(where: str, msg: str):
    raise ModelError(f"{where}: {msg}")


def need(d: Mapping, key: str, kind: type | tuple, where: str, what: str = ""):
    if key not in d:
        fail(where, f"missing required key '{key}'")
    value = d[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        fail(where, f"'{key}' must be {what or getattr(kind, '__name__', kind)}, got {json.dumps(value)[:60]}")
    return value


def parse_names(value: object, where: str, key: str) -> tuple[str, ...]:
    if not (isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)):
        fail(where, f"{key} must be a list of tensor names, got {value!r}")
    return tuple(value)


def parse_shape(value: object, where: str) -> tuple[Dim, ...]:
    ok = isinstance(value, list | tuple) and all(
        (isinstance(d, int) and not isinstance(d, bool) and d >= 0) or (isinstance(d, str) and d) for d in value
    )
    if not ok:
        fail(where, f"shape must be a list of sizes and dim names, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class SpecialIds:
    pad: int
    bos: int
    eos: int
    blank: int  # the CTC blank (the pad id in kdasr's tokenizer)
    unk: int | None = None
    mask: int | None = None

    @classmethod
    def from_dict(cls, d: object, vocab_size: int, where: str, required=("pad", "blank", "bos", "eos")) -> SpecialIds:
        if not isinstance(d, Mapping):
            fail(where, f"'special_ids' must be an object, got {json.dumps(d)[:60]}")
        d = {**d, "blank": d.get("blank", d.get("pad"))}
        for key in ("pad", "blank", "bos", "eos", "unk", "mask"):
            v = d.get(key)
            if v is None and key not in required:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < vocab_size:
                fail(where, f"special_ids.{key} must be a token id below vocab_size, got {v!r}")
        return cls(**{k: d.get(k) for k in ("pad", "bos", "eos", "blank", "unk", "mask")})

    @classmethod
    def of_tokenizer(cls, tok) -> SpecialIds:
        """The ids of a kdasr sentencepiece tokenizer (kdasr.text.Tokenizer): the CTC blank is its pad."""
        return cls(pad=tok.pad_id, bos=tok.bos_id, eos=tok.eos_id, blank=tok.pad_id, unk=tok.unk_id,
                   mask=tok.mask_id)

    def to_dict(self) -> dict:
        return {k: v for k, v in (("pad", self.pad), ("blank", self.blank), ("unk", self.unk), ("bos", self.bos),
                                  ("eos", self.eos), ("mask", self.mask)) if v is not None}


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph: its file per precision and its input/output names, in the graph's order."""

    files: Mapping[str, str]  # precision -> file name; "fp32" always present
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))

    @property
    def file(self) -> str:
        return self.files["fp32"]

    @property
    def distinct_files(self) -> tuple[str, ...]:
        """Every file the entry names, once each, fp32's first: a variant may name the fp32 file itself
        (a student's int8 decoder, kdasr/export/quantize.py), and then it is one file, not two."""
        return tuple(dict.fromkeys(self.files.values()))

    def is_own_variant(self, precision: str) -> bool:
        """Whether `precision` runs a file of its own (a converted graph), not the fp32 file under its name."""
        return precision != "fp32" and self.files.get(precision, self.file) != self.file

    def file_for(self, precision: str, where: str) -> str:
        if precision not in PRECISIONS:
            fail(where, f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if precision not in self.files:
            fail(where, f"no {precision} variant of {self.file} (kdasr export --quantize {precision})")
        return self.files[precision]

    @classmethod
    def from_dict(cls, d: object, where: str) -> GraphSpec:
        """{"file": fp32 file, "int8"/"fp16": variant files, "inputs": [...], "outputs": [...]}."""
        if not isinstance(d, Mapping):
            fail(where, "must be an object")
        if not isinstance(d.get("file"), str):
            fail(where, f".file must be a file name, got {d.get('file')!r}")
        files = {"fp32": d["file"], **{p: d[p] for p in PRECISIONS[1:] if isinstance(d.get(p), str)}}
        inputs, outputs = parse_names(d.get("inputs"), where, "inputs"), parse_names(d.get("outputs"), where, "outputs")
        return cls(files, inputs, outputs)

    def to_dict(self) -> dict:
        variants = {p: f for p, f in self.files.items() if p != "fp32"}
        return {"file": self.file, "inputs": list(self.inputs), "outputs": list(self.outputs), **variants}


@dataclass(frozen=True)
class TensorSpec:
    """A graph input by name: shape with symbolic dims (exactly one BATCH: the hypothesis rows)."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"

    def axis(self, dim: str) -> int | None:
        return self.shape.index(dim) if dim in self.shape else None

    @property
    def batch_axis(self) -> int:
        return self.shape.index(BATCH)

    ROW_DIMS = (BATCH,)  # the dims that can be the rows axis (exactly one of them per tensor)

    def _check(self, where: str) -> None:
        if sum(self.shape.count(d) for d in self.ROW_DIMS) != 1:
            dims = " or ".join(f"'{d}'" for d in self.ROW_DIMS)
            fail(where, f"{self.name}: shape {list(self.shape)} must have exactly one {dims} dim")
        if self.dtype not in DTYPES:
            fail(where, f"{self.name}: dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")

    def to_dict(self) -> dict:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}


@dataclass(frozen=True)
class StateTensor(TensorSpec):
    """Decoder state carried from step to step: fed as `name`, returned as `output`, rows
    reordered along the batch axis when hypotheses are selected. A STEPS dim starts at 0 and the
    output has it one longer (a KV cache); a FRAMES dim follows the utterance's encoder frames."""

    output: str = ""
    init: str = "zeros"

    def _check(self, where: str) -> None:
        super()._check(where)
        if not self.output:
            fail(where, f"{self.name}: a state tensor needs the name of its output")
        if self.init not in INITS:
            fail(where, f"{self.name}: init must be one of {', '.join(INITS)}, not {self.init!r}")
        if self.init == "uniform_frames" and FRAMES not in self.shape:
            fail(where, f"{self.name}: init uniform_frames needs a '{FRAMES}' dim")


@dataclass(frozen=True)
class MemoryInput(TensorSpec):
    """A decoder input taken per utterance from an encoder output (`source`): the encoder states,
    attention keys, lengths, or a Transformer decoder's cross-attention keys/values (computed once
    per utterance in the encoder graph). Fed one row per hypothesis (a BATCH dim: gathered per
    row) or one row per utterance (an UTTERANCES dim: broadcast over its hypotheses in the graph)."""

    source: str = ""
    ROW_DIMS = (BATCH, UTTERANCES)

    @property
    def per_utterance(self) -> bool:
        return UTTERANCES in self.shape

    @property
    def batch_axis(self) -> int:
        return self.shape.index(UTTERANCES if self.per_utterance else BATCH)


def parse_tensors(cls, items: object, where: str) -> tuple:
    if not isinstance(items, list):
        fail(where, "must be a list of tensor objects")
    out = []
    for i, d in enumerate(items):
        if not isinstance(d, Mapping) or not isinstance(d.get("name"), str):
            fail(where, f"item {i} must be an object with a 'name'")
        known = {f.name for f in fields(cls)}
        if extra := sorted(set(d) - known):
            fail(where, f"{d['name']}: unknown keys {extra}")
        t = cls(**{**d, "shape": parse_shape(d.get("shape"), f"{where} {d['name']}")})
        t._check(where)
        out.append(t)
    return tuple(out)


@dataclass(frozen=True)
class EncoderSpec:
    graph: GraphSpec
    waveform: str = "waveform"  # float32 [B, S] at sample_rate
    waveform_lens: str = "waveform_lens"  # int64 [B]
    lens: str = "memory_lens"  # int64 [B]: valid encoder frames
    ctc_logprobs: str = "ctc_logprobs"  # float [B, T, V]: the auxiliary CTC head ("": none, e.g. whisper)

    def _check(self, where: str) -> None:
        for role, side in (("waveform", "inputs"), ("waveform_lens", "inputs"), ("lens", "outputs"),
                           ("ctc_logprobs", "outputs")):
            if role == "ctc_logprobs" and not self.ctc_logprobs:
                continue
            if getattr(self, role) not in getattr(self.graph, side):
                fail(where, f"encoder_io.{role} {getattr(self, role)!r} is not among the encoder's {side} "
                             f"{list(getattr(self.graph, side))}")

    def roles(self) -> dict:
        return {k: getattr(self, k) for k in ("waveform", "waveform_lens", "lens", "ctc_logprobs")}


@dataclass(frozen=True)
class DecoderSpec:
    """One decoding step for N hypotheses: (tokens [N], *state, *memory) -> (logprobs [N, V], *state outputs)."""

    graph: GraphSpec
    state: tuple[StateTensor, ...]
    memory: tuple[MemoryInput, ...]
    tokens: str = "tokens"
    logprobs: str = "logprobs"
    # token ids the scorer feeds, in order, before the search's first token (special_ids.bos), to
    # build the starting state: whisper's <|startoftranscript|> (<|en|> <|transcribe|>). Empty: none.
    prompt: tuple[int, ...] = ()

    def _check(self, where: str, encoder_outputs: tuple[str, ...]) -> None:
        if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in self.prompt):
            fail(where, f"decoder_io.prompt must be a list of token ids, got {list(self.prompt)!r}")
        feeds = [self.tokens, *(s.name for s in self.state), *(m.name for m in self.memory)]
        if sorted(feeds) != sorted(self.graph.inputs):
            fail(where, f"decoder inputs {list(self.graph.inputs)} are not tokens + state + memory {feeds}")
        for name in (self.logprobs, *(s.output for s in self.state)):
            if name not in self.graph.outputs:
                fail(where, f"decoder output {name!r} is not among the graph's outputs {list(self.graph.outputs)}")
        for m in self.memory:
            if m.source not in encoder_outputs:
                fail(where, f"decoder memory {m.name!r} comes from encoder output {m.source!r}, which the encoder "
                             f"does not have ({list(encoder_outputs)})")

    def io_dict(self) -> dict:
        out = {"tokens": self.tokens, "logprobs": self.logprobs, "state": [s.to_dict() for s in self.state],
               "memory": [m.to_dict() for m in self.memory]}
        return out | ({"prompt": list(self.prompt)} if self.prompt else {})


def read_spec_json(path, what: str = "model") -> dict:
    """A model/teacher description file: it must exist and hold one JSON object."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        fail(str(path.parent), f"not a kdasr {what} directory (no {path.name})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        fail(str(path), f"invalid JSON ({e})")
    except RecursionError:  # json's C parser recurses once per nesting level
        fail(str(path), "invalid JSON (nested too deeply)")
    except OSError as e:
        fail(str(path), f"cannot read it: {e.strerror or e}")
    if not isinstance(data, dict):
        fail(str(path), f"expected a JSON object, got {type(data).__name__}")
    return data

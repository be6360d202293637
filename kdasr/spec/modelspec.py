"""The model-directory contract (DESIGN.md §3) as frozen, typed objects: `ModelSpec` for a student
(model.json), `LMSpec` / `BertSpec` for exported teachers (lm.json / bert.json, teacher_spec.py);
the graphs, tensors and format versions they are made of are in graph_spec.py.

Why a top-level module: the export wrappers produce a spec and the runtime parses it, and the
stage order (data -> teachers -> training -> export -> runtime -> eval/serve) forbids export from
importing the runtime. Like text.py and audio.py this is a shared utility both may import: stdlib
only (plus DecodeOptions and ModelError), no torch, no numpy, no onnxruntime.

Format 3 (written now) is format 2 where a decoder memory input may hold one row per utterance
(an UTTERANCES dim) that the step graph broadcasts over the utterance's hypotheses, instead of a
copy per hypothesis. Format 2 names every graph's tensors and what each is for; format 1 is parsed
into the same objects (`from_dict`), since everything it left implicit was fixed in that version.
A decoder's per-step state is a list of `StateTensor`s with symbolic dims, so one generic scorer can
run an LSTM decoder (h, c, attention weights over `frames`) or a Transformer decoder (a KV cache per
layer growing along `steps`; cross-attention keys/values made once per utterance by the encoder
graph and fed as `MemoryInput`s, like the LSTM's memory)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType

from .decode_options import DecodeOptions, given_fields
from .external_weights import ExternalWeights
from .graph_spec import (
    BATCH,
    FORMAT_VERSION,
    FRAMES,
    READABLE_FORMATS,
    READS,
    REEXPORT,
    DecoderSpec,
    EncoderSpec,
    GraphSpec,
    MemoryInput,
    SpecialIds,
    StateTensor,
    fail,
    need,
    parse_shape,
    parse_tensors,
    read_spec_json,
)
from .precision import DEFAULT, parse_precision


@dataclass(frozen=True)
class ModelSpec:
    """Everything the runtime needs to know about a student model dir, parsed once at load."""

    sample_rate: int
    vocab_size: int
    special_ids: SpecialIds
    frame_shift_s: float
    encoder: EncoderSpec
    decoder: DecoderSpec
    decoding: DecodeOptions = DecodeOptions()  # the recommended decoding (DecodeOptions' defaults + model.json)
    architecture: Mapping = field(default_factory=dict)  # ModelConfig fields + encoder/decoder kind names
    training: Mapping = field(default_factory=dict)  # training summary: data, steps, KD settings, ...
    language: str = "en"
    format_version: int = FORMAT_VERSION  # the version it was read from (written: always FORMAT_VERSION)
    precision: Mapping = field(default_factory=dict)  # the recommended precision by device (precision.py); {}: fp32
    external_weights: ExternalWeights | None = None  # initializers held by reference to a package's file

    def __post_init__(self) -> None:
        for key in ("architecture", "training", "precision"):
            object.__setattr__(self, key, MappingProxyType(dict(getattr(self, key))))

    @property
    def graphs(self) -> dict[str, GraphSpec]:
        return {"encoder": self.encoder.graph, "decoder": self.decoder.graph}

    def precision_for(self, device: str) -> str:
        """The precision this model runs on `device` unless told (model.json "precision"; else fp32)."""
        return self.precision.get(device, DEFAULT)

    def with_graphs(self, graphs: Mapping[str, GraphSpec]) -> ModelSpec:
        """The same spec with other graph entries (export adds the quantised variants' files)."""
        return replace(self, encoder=replace(self.encoder, graph=graphs["encoder"]),
                       decoder=replace(self.decoder, graph=graphs["decoder"]))

    def to_dict(self) -> dict:
        """model.json in today's format (FORMAT_VERSION); `decoding` holds only what differs from
        DecodeOptions' defaults."""
        return {
            "format_version": FORMAT_VERSION,
            "sample_rate": self.sample_rate,
            "vocab_size": self.vocab_size,
            "special_ids": self.special_ids.to_dict(),
            "frame_shift_s": self.frame_shift_s,
            "language": self.language,
            "architecture": dict(self.architecture),
            "graphs": {name: g.to_dict() for name, g in self.graphs.items()},
            "encoder_io": self.encoder.roles(),
            "decoder_io": self.decoder.io_dict(),
            "training": dict(self.training),
            "decoding": given_fields(self.decoding),
            "precision": dict(self.precision),
            **({"external_weights": self.external_weights.to_dict()} if self.external_weights else {}),
        }

    def metadata(self) -> dict[str, str]:
        """ONNX metadata_props: each top-level key, JSON-encoded, so a lone graph describes itself."""
        return {k: json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], where: str) -> ModelSpec:
        try:
            return cls.from_dict({k: json.loads(v) for k, v in props.items()}, where)
        except json.JSONDecodeError as e:
            fail(where, f"metadata_props is not the JSON model spec ({e})")

    @classmethod
    def from_dict(cls, d: object, where: str) -> ModelSpec:
        """Parse and check model.json (format 1 or 2); every problem is one line naming `where`."""
        if not isinstance(d, Mapping):
            fail(where, f"expected a JSON object, got {type(d).__name__}")
        version = d.get("format_version")
        if version not in READABLE_FORMATS:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            hint = "upgrade kdasr" if newer else REEXPORT
            fail(where, f"format_version {version!r}: {READS} ({hint})")
        sample_rate = need(d, "sample_rate", int, where, "a positive integer")
        vocab = need(d, "vocab_size", int, where, "a positive integer")
        for key, value in (("sample_rate", sample_rate), ("vocab_size", vocab)):
            if value <= 0:
                fail(where, f"'{key}' must be a positive integer, got {value}")
        ids = SpecialIds.from_dict(need(d, "special_ids", Mapping, where, "an object"), vocab, where)
        graphs = need(d, "graphs", Mapping, where, "an object")
        g = {name: GraphSpec.from_dict(graphs.get(name), f"{where}: graphs.{name}") for name in ("encoder", "decoder")}
        if version == 1:
            encoder, decoder = EncoderSpec(g["encoder"]), _v1_decoder(d, g["decoder"], where)
        else:
            encoder = EncoderSpec(g["encoder"], **need(d, "encoder_io", Mapping, where, "an object"))
            io = need(d, "decoder_io", Mapping, where, "an object")
            decoder = DecoderSpec(
                g["decoder"],
                parse_tensors(StateTensor, io.get("state"), f"{where}: decoder_io.state"),
                parse_tensors(MemoryInput, io.get("memory"), f"{where}: decoder_io.memory"),
                **{k: io[k] for k in ("tokens", "logprobs") if k in io},
                prompt=tuple(_prompt(io.get("prompt", []), vocab, where)),
            )
        encoder._check(where)
        decoder._check(where, encoder.graph.outputs)
        shift = d.get("frame_shift_s", 0.04) if version == 1 else need(d, "frame_shift_s", float | int, where)
        return cls(
            sample_rate, vocab, ids, float(shift), encoder, decoder,
            decoding=parse_decoding(d.get("decoding", {}), where),
            precision=parse_precision(d.get("precision", {}), g, where),
            architecture=need(d, "architecture", Mapping, where) if "architecture" in d or version > 1 else {},
            training=d.get("training") or {},
            language=str(d.get("language", "en")),
            format_version=version,
            external_weights=ExternalWeights.from_dict(d["external_weights"], where) if "external_weights" in d
            else None,
        )


def parse_decoding(d: object, where: str, base: DecodeOptions = DecodeOptions()) -> DecodeOptions:
    """model.json "decoding": DecodeOptions field names over DecodeOptions' defaults."""
    if not isinstance(d, Mapping):
        fail(where, f"'decoding' must be an object, got {json.dumps(d)[:60]}")
    kinds = {f.name: f.type for f in fields(DecodeOptions)}  # "int", "float", "str" (postponed annotations)
    if unknown := sorted(set(d) - set(kinds)):
        fail(where, f"decoding: {', '.join(unknown)} not a decoding option (known: {', '.join(sorted(kinds))})")
    for key, value in d.items():  # JSON types, checked once here: `beam: 2.5` would fail every file later
        want = {"int": (int,), "float": (int, float), "str": (str,)}.get(kinds[key], (object,))
        if isinstance(value, bool) or not isinstance(value, want):
            what = {"int": "an integer", "float": "a number", "str": "a string"}.get(kinds[key], kinds[key])
            fail(where, f"decoding: {key} must be {what}, got {json.dumps(value)[:40]}")
    try:
        return replace(base, **d)
    except (ValueError, TypeError) as e:
        fail(where, f"decoding: {e}")


def _prompt(value: object, vocab: int, where: str) -> list[int]:
    ok = isinstance(value, list) and all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab
                                         for t in value)
    if not ok:
        fail(where, f"decoder_io.prompt must be a list of token ids below vocab_size, got {value!r}")
    return value


def _v1_decoder(d: Mapping, graph: GraphSpec, where: str) -> DecoderSpec:
    """Format 1 (LSTM decoder only): decoder_state {"h": [H], "c": [H], "context": [D], "attention": ["frames"]},
    outputs named <state>_out, memory inputs named like the encoder outputs they come from."""
    state = need(d, "decoder_state", Mapping, where, "an object")
    for key in ("h", "c", "context"):
        dims = state.get(key)
        if not (isinstance(dims, list) and len(dims) == 1 and isinstance(dims[0], int) and dims[0] > 0):
            fail(where, f"decoder_state.{key} must be [size], got {dims!r}")
    tensors = tuple(
        StateTensor(k, (BATCH, *parse_shape(dims, where)), output=f"{k}_out",
                    init="uniform_frames" if FRAMES in dims else "zeros")
        for k, dims in state.items()
    )
    shapes = {"memory": (BATCH, FRAMES, "d_model"), "memory_keys": (BATCH, FRAMES, "attention_dim"),
              "memory_lens": (BATCH,)}
    named = {"tokens", *state}
    memory = tuple(MemoryInput(n, shapes.get(n, (BATCH,)), "int64" if n.endswith("_lens") else "float32", source=n)
                   for n in graph.inputs if n not in named)
    for t in (*tensors, *memory):
        t._check(where)
    return DecoderSpec(graph, tensors, memory)



def load_model_spec(model_dir) -> ModelSpec:
    """model.json of a model dir, parsed and checked (no graphs opened: see the runtime for that)."""
    from pathlib import Path

    path = Path(model_dir) / "model.json"
    return ModelSpec.from_dict(read_spec_json(path, "model"), str(path))

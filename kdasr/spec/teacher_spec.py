"""The exported teachers' contract (lm.json, bert.json) as frozen, typed objects; see modelspec.py
for why this is a dependency-free top-level module. Format 2 names the graph's tensors by role and
lists the LM step's state (its KV cache) like a student decoder's; format 1 is parsed too."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .graph_spec import (
    BATCH,
    FORMAT_VERSION,
    READABLE_FORMATS,
    READS,
    REEXPORT,
    STEPS,
    GraphSpec,
    SpecialIds,
    StateTensor,
    fail,
    need,
    parse_shape,
    parse_tensors,
    read_spec_json,
)

TEACHER_IDS = ("pad", "bos", "eos")


def _common(d: object, kind: str, where: str) -> tuple[int, int, SpecialIds, GraphSpec]:
    if not isinstance(d, Mapping):
        fail(where, f"expected a JSON object, got {type(d).__name__}")
    version = d.get("format_version", 1)
    if version not in READABLE_FORMATS:
        fail(where, f"format_version {version!r}: {READS} ({REEXPORT})")
    vocab = need(d, "vocab_size", int, where, "a positive integer")
    ids = need(d, "special_ids", Mapping, where, "an object")
    if any(not isinstance(ids.get(k), int) for k in TEACHER_IDS):
        fail(where, "special_ids must give integer pad, bos and eos ids")
    ids = SpecialIds.from_dict(ids, vocab, where, required=TEACHER_IDS)
    graphs = need(d, "graphs", Mapping, where, "an object")
    return version, vocab, ids, GraphSpec.from_dict(graphs.get(kind), f"{where}: graphs.{kind}")


def _roles(obj, io: Mapping, where: str) -> None:
    for role, side in obj.ROLES.items():
        name = io.get(role, getattr(obj, role))
        if name not in getattr(obj.graph, side):
            fail(where, f"{role} {name!r} is not among the graph's {side} {list(getattr(obj.graph, side))}")


@dataclass(frozen=True)
class LMSpec:
    """The LM step graph: (tokens [N], *state) -> (logprobs [N, V], *state outputs); state is the
    KV cache [L, 2, N, H, steps, dh] (starts with 0 steps)."""

    vocab_size: int
    special_ids: SpecialIds
    graph: GraphSpec
    state: tuple[StateTensor, ...]
    tokens: str = "tokens"
    logprobs: str = "logprobs"
    max_len: int | None = None
    config: Mapping = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    ROLES = {"tokens": "inputs", "logprobs": "outputs"}

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))

    @classmethod
    def from_dict(cls, d: object, where: str) -> LMSpec:
        version, vocab, ids, graph = _common(d, "lm", where)
        if version == 1:
            cache = parse_shape(need(d, "cache", list, where, "a list"), f"{where}: cache")
            # format 1 wrote the growing axis as "past"
            dims = tuple(STEPS if x == "past" else x for x in cache)
            state = (StateTensor("cache", dims, output="cache_out"),)
            state[0]._check(where)
            io: Mapping = {}
        else:
            io = need(d, "step_io", Mapping, where, "an object")
            state = parse_tensors(StateTensor, io.get("state"), f"{where}: step_io.state")
        spec = cls(vocab, ids, graph, state, **{k: io[k] for k in cls.ROLES if k in io},
                   max_len=d.get("max_len"), config=d.get("config") or {}, format_version=version)
        _roles(spec, io, where)
        for s in state:
            if s.name not in graph.inputs or s.output not in graph.outputs:
                fail(where, f"state {s.name!r} -> {s.output!r} is not among the LM graph's inputs/outputs")
        return spec

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "kind": "lm", "vocab_size": self.vocab_size,
            "special_ids": self.special_ids.to_dict(), "graphs": {"lm": self.graph.to_dict()},
            "step_io": {"tokens": self.tokens, "logprobs": self.logprobs, "state": [s.to_dict() for s in self.state]},
            "max_len": self.max_len, "config": dict(self.config),
        }


@dataclass(frozen=True)
class BertSpec:
    """The BERT scoring graph: (input_ids [R, L] masked, attention_mask [R, L], positions [R],
    targets [R]) -> token_logprobs [R]: log p(target | the rest) at each row's masked position."""

    vocab_size: int
    special_ids: SpecialIds
    graph: GraphSpec
    window: int
    mask_id: int
    input_ids: str = "input_ids"
    attention_mask: str = "attention_mask"
    positions: str = "positions"
    targets: str = "targets"
    token_logprobs: str = "token_logprobs"
    format_version: int = FORMAT_VERSION
    ROLES = {"input_ids": "inputs", "attention_mask": "inputs", "positions": "inputs", "targets": "inputs",
             "token_logprobs": "outputs"}

    @classmethod
    def from_dict(cls, d: object, where: str) -> BertSpec:
        version, vocab, ids, graph = _common(d, "bert", where)
        window = need(d, "window", int, where, "an integer")
        mask_id = need(d, "mask_id", int, where, "an integer")
        io = {} if version == 1 else need(d, "score_io", Mapping, where, "an object")
        spec = cls(vocab, ids, graph, window, mask_id, **{k: io[k] for k in cls.ROLES if k in io},
                   format_version=version)
        _roles(spec, io, where)
        return spec

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "kind": "bert", "vocab_size": self.vocab_size,
            "special_ids": self.special_ids.to_dict(), "graphs": {"bert": self.graph.to_dict()},
            "score_io": {k: getattr(self, k) for k in self.ROLES}, "window": self.window, "mask_id": self.mask_id,
        }


TEACHER_SPECS = {"lm": LMSpec, "bert": BertSpec}


def load_teacher_spec(teacher_dir, kind: str) -> LMSpec | BertSpec:
    from pathlib import Path

    path = Path(teacher_dir) / f"{kind}.json"
    return TEACHER_SPECS[kind].from_dict(read_spec_json(path, kind), str(path))


def metadata(spec: LMSpec | BertSpec) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in spec.to_dict().items()}


__all__ = ["BATCH", "BertSpec", "LMSpec", "load_teacher_spec", "metadata"]

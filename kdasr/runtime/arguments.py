"""What `Transcriber` accepts, checked once with clear errors: the inputs (one or a list), the decoding
(DecodeOptions and/or its fields as keywords) and the voice-activity detection (a bool or VadOptions).

A misuse raises TypeError naming the argument and the type given, never a silent per-character
batch: a str is one path, not a sequence of inputs (the trap of `transcribe("a.wav")`)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import numpy as np

from ..spec.decode_options import DecodeOptions, option_fields
from .prepare import AudioSlice
from .vad import VadOptions

SINGLE_TYPES = (str, os.PathLike, np.ndarray, AudioSlice)
INPUT_HELP = "a path (str or os.PathLike), a numpy array of samples, an AudioSlice, or a list of these"
FIELDS = tuple(f.name for f in option_fields())  # the keywords transcribe() takes


def as_inputs(inputs) -> tuple[list, bool]:
    """(the inputs as a list, whether one input was given rather than a list)."""
    if isinstance(inputs, SINGLE_TYPES):
        return [inputs], True
    if isinstance(inputs, (bytes, bytearray, Mapping)) or not isinstance(inputs, (list, tuple)):
        raise TypeError(f"transcribe() takes {INPUT_HELP}; got {type(inputs).__name__}")
    items = list(inputs)
    for k, item in enumerate(items):
        if not isinstance(item, SINGLE_TYPES):
            raise TypeError(f"transcribe() input {k} is a {type(item).__name__}; each input must be "
                            "a path (str or os.PathLike), a numpy array of samples or an AudioSlice")
    return items, False


def decode_options(base: DecodeOptions, opts, overrides: dict) -> DecodeOptions:
    """`opts` (DecodeOptions or None: `base`) with `overrides` (DecodeOptions field names) over it."""
    if opts is not None and not isinstance(opts, DecodeOptions):
        hint = " (pass the fields as keywords: transcribe(x, **options))" if isinstance(opts, Mapping) else ""
        raise TypeError(f"opts must be a kdasr.DecodeOptions or None, not {type(opts).__name__}{hint}")
    chosen = base if opts is None else opts
    kinds = {f.name: f.kind for f in option_fields(type(chosen))}  # a subclass's fields too
    unknown = sorted(set(overrides) - set(kinds))
    if unknown:
        raise TypeError(f"unknown decoding option(s) {', '.join(unknown)}; DecodeOptions fields are: "
                        f"{', '.join(kinds)}")
    for name, value in overrides.items():
        _check_type(name, value, kinds[name])
    return dataclasses.replace(chosen, **overrides) if overrides else chosen


def _check_type(name: str, value, kind: type) -> None:
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise TypeError(f"decoding option {name} must be {'a' if kind is not int else 'an'} {kind.__name__}, "
                        f"not {type(value).__name__} ({value!r})")


def vad_options(vad) -> VadOptions | None:
    """True: VadOptions() (the default); False or None: off; VadOptions: as given (off if not enabled)."""
    if vad is True:
        return VadOptions()
    if vad is False or vad is None:
        return None
    if isinstance(vad, VadOptions):
        return vad if vad.enabled else None
    raise TypeError(f"vad must be True, False or a kdasr.VadOptions, not {type(vad).__name__}")

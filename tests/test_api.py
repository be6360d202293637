"""The Python API cannot be misused silently (issue 30 item 2): one input gives one result, a list a
list; decoding fields as keywords; wrong types are TypeErrors that say what is wanted; the public
types come from `kdasr` with docstrings; the package is typed (py.typed). Shipped model, real clips."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import kdasr

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "eval" / "samples" / "web_matthew_6-026.flac"
PUBLIC = ("AudioSlice", "DecodeOptions", "Failure", "NBest", "Result", "Segment", "Transcriber", "VadOptions", "Word")


@pytest.fixture(scope="module")
def t():
    return kdasr.Transcriber(threads=1)


def test_single_input_gives_a_single_result(t):
    wave = sf.read(CLIP, dtype="float32")[0]
    by_path = t.transcribe(str(CLIP))
    assert isinstance(by_path, kdasr.Result) and len(by_path.text.split()) > 5
    assert t.transcribe(CLIP).text == by_path.text  # a Path
    assert t.transcribe(wave).text == by_path.text  # an array
    assert t.transcribe(kdasr.AudioSlice(CLIP)).text == by_path.text
    missing = t.transcribe("short.wav")  # one Failure, not one per character
    assert isinstance(missing, kdasr.Failure) and missing.source == "short.wav"


def test_lists_give_lists_in_order(t):
    wave = sf.read(CLIP, dtype="float32")[0]
    out = t.transcribe([str(CLIP), wave, "missing.wav"])
    assert isinstance(out, list) and len(out) == 3
    assert out[0].text == out[1].text and isinstance(out[2], kdasr.Failure)
    assert [r.text for r in t.transcribe((wave, wave))] == [out[0].text] * 2


def test_decoding_fields_as_keywords(t):
    beam = t.transcribe(CLIP, beam=4, nbest=3)
    assert len(beam.nbest) == 3
    same = t.transcribe(CLIP, t.recommended_options(beam=4, nbest=3))
    assert [n.text for n in beam.nbest] == [n.text for n in same.nbest]
    # keywords go over the options given
    assert len(t.transcribe(CLIP, kdasr.DecodeOptions(beam=4), nbest=2).nbest) == 2


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((b"RIFF....",), {}, "takes a path .* got bytes"),
        ((3,), {}, "got int"),
        (({"a.wav": 1},), {}, "got dict"),
        (([CLIP, 3.5],), {}, "input 1 is a float"),
        ((CLIP, {"beam": 5}), {}, "opts must be a kdasr.DecodeOptions or None, not dict .*keywords"),
        ((CLIP,), {"beams": 5}, "unknown decoding option.*beams.*DecodeOptions fields are: method, beam"),
        ((CLIP,), {"beam": "5"}, r"decoding option beam must be an int, not str \('5'\)"),
        ((CLIP,), {"ctc_weight": None}, "decoding option ctc_weight must be a float, not NoneType"),
        ((CLIP,), {"method": 1}, "decoding option method must be a str, not int"),
    ],
)
def test_misuse_is_a_clear_type_error(t, args, kwargs, message):
    with pytest.raises(TypeError, match=message):
        t.transcribe(*args, **kwargs)


def test_public_types_are_exported_and_documented():
    for name in PUBLIC:
        obj = getattr(kdasr, name)
        assert obj.__module__.startswith("kdasr.") and obj.__doc__ and len(obj.__doc__) > 40, name
        assert name in kdasr.__all__ and name in dir(kdasr)
    doc = kdasr.DecodeOptions.__doc__
    for f in dataclasses.fields(kdasr.DecodeOptions):  # every field is documented
        assert f.name in doc, f.name
    assert (Path(kdasr.__file__).parent / "py.typed").is_file()
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["kdasr"]
    assert "py.typed" in data


def test_silence_gives_empty_text_by_default(t):
    assert t.transcribe(np.zeros(3 * 16000, np.float32)).text == ""

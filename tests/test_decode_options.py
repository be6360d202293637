"""DecodeOptions validates every numeric field itself (finite, in range, whole where it must be), so the
CLI, the Python API, the server and model.json all refuse the same values with the same message."""

from __future__ import annotations

import json
import math

import pytest

from kdasr.errors import ModelError
from kdasr.spec.decode_options import DecodeOptions
from kdasr.spec.modelspec import parse_decoding

BAD = [
    ("max_segment_seconds", math.nan, "max_segment_seconds must be a finite number"),
    ("max_segment_seconds", math.inf, "max_segment_seconds must be a finite number"),
    ("max_segment_seconds", 0.5, "max_segment_seconds must be within (1, 3600]"),
    ("length_bonus", math.inf, "length_bonus must be a finite number"),
    ("length_bonus", math.nan, "length_bonus must be a finite number"),
    ("beam", 2.5, "beam must be a whole number, not 2.5"),
    ("beam", True, "beam must be a number"),
    ("beam", "3", "beam must be a number"),
    ("beam", 0, "beam must be within [1, 1000], not 0"),
    ("nbest", -1, "nbest must be within"),
    ("ctc_weight", 1.0, "ctc_weight must be within [0, 1), not 1.0"),
    ("ctc_weight", -0.1, "ctc_weight must be within [0, 1)"),
    ("lm_weight", math.nan, "lm_weight must be a finite number"),
    ("length_penalty", -1.0, "length_penalty must be within"),
    ("batch_size", 0, "batch_size must be within"),
    ("max_batch_seconds", 0.0, "max_batch_seconds must be within (0,"),
    ("min_segment_seconds", -math.inf, "min_segment_seconds must be a finite number"),
    ("ctc_prebeam", 0.5, "ctc_prebeam must be within"),
    ("rescore_weight", math.inf, "rescore_weight must be a finite number"),
]


@pytest.mark.parametrize("field,value,message", BAD)
def test_bad_values_are_refused_with_the_field_named(field, value, message):
    with pytest.raises(ValueError) as e:
        DecodeOptions(**{field: value})
    assert message in str(e.value)


def test_integral_floats_become_ints_and_good_values_pass():
    opts = DecodeOptions(beam=4.0, nbest=2.0, length_bonus=-0.5, ctc_weight=0.3, max_segment_seconds=30)
    assert opts.beam == 4 and isinstance(opts.beam, int) and isinstance(opts.nbest, int)
    assert isinstance(opts.max_segment_seconds, float) and opts.length_bonus == -0.5
    np = pytest.importorskip("numpy")
    grid = DecodeOptions(beam=np.int64(5), ctc_weight=np.float32(0.25))  # values from a numpy grid (kdasr tune)
    assert grid.beam == 5 and type(grid.beam) is int and type(grid.ctc_weight) is float


@pytest.mark.parametrize("text", ['{"max_segment_seconds": NaN}', '{"beam": 2.5}', '{"length_bonus": Infinity}'])
def test_model_json_decoding_gets_the_same_check(text):
    with pytest.raises(ModelError) as e:
        parse_decoding(json.loads(text), "m/model.json")
    assert str(e.value).startswith("m/model.json") and "decoding:" in str(e.value) and "\n" not in str(e.value)

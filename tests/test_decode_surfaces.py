"""Every decoding option is declared once, as a DecodeOptions field (kdasr/spec/decode_options.py), and
the surfaces are built from it: the CLI flags of transcribe/eval/export, `kdasr tune`'s NAME=VALUE, the
server's form and query fields, the Transcriber keywords. These tests pin the published names (so a
metadata edit cannot silently drop one) and check that a new field reaches every surface with no other
edit. In-process and fast: no model, no corpus."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from kdasr.cli import app as cli_app
from kdasr.cli.decode_flags import with_decode_flags
from kdasr.eval.tune import parse_assignments
from kdasr.runtime.arguments import decode_options
from kdasr.serve.app import create_app
from kdasr.serve.config import ServeConfig
from kdasr.serve.decode_params import with_decode_params
from kdasr.spec.decode_options import (
    EVAL,
    EXPORT,
    FORM,
    QUERY,
    SEARCH,
    SERVED,
    TRANSCRIBE,
    DecodeOptions,
    Within,
    _option,
    option_fields,
)

# What the surfaces published before the options were declared once (flags as parameter names).
SEARCH_FLAGS = {"method", "beam", "nbest", "ctc_weight", "lm_weight", "length_bonus", "length_penalty", "rescore",
                "rescore_weight"}
PUBLISHED = {
    EXPORT: SEARCH_FLAGS,
    TRANSCRIBE: SEARCH_FLAGS | {"max_segment", "batch_size", "pad", "pad_to"},
    EVAL: SEARCH_FLAGS - {"nbest"} | {"batch_size", "pad", "pad_to"},
    FORM: {"beam", "nbest", "ctc_weight", "method"},  # beside OpenAI's own fields
    QUERY: {"beam", "nbest", "ctc_weight", "method", "length_penalty", "length_bonus", "max_segment_seconds"},
}
CLI_COMMANDS = {EXPORT: "export", TRANSCRIBE: "transcribe", EVAL: "eval"}


def _cli_params(command: str) -> dict[str, object]:
    return {p.name: p for p in typer.main.get_command(cli_app).commands[command].params}


def _served_app():
    """The real app over a stand-in transcriber (only what building the app reads); nothing is decoded."""
    t = SimpleNamespace(sample_rate=16000, model=SimpleNamespace(spec=SimpleNamespace(language="en")),
                        recommended_options=DecodeOptions, assemble=None, min_piece=0)
    return create_app(t, ServeConfig("m", release_memory=False))


def _served_fields(schema: dict) -> dict[str, set[str]]:
    paths = schema["paths"]
    query = {p["name"] for p in paths["/v1/transcribe"]["post"]["parameters"]}
    ref = paths["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    form = set(schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"])
    return {FORM: form, QUERY: query}


@pytest.mark.parametrize("surface", [EXPORT, TRANSCRIBE, EVAL])
def test_cli_flags_are_the_fields_offered_there(surface):
    params = _cli_params(CLI_COMMANDS[surface])
    fields = option_fields(on=surface)
    assert {f.flag for f in fields} == PUBLISHED[surface]
    for f in fields:
        p = params[f.flag]
        assert p.default is None  # "not given": the model's recommendation stays
        assert p.help.startswith(f.help)
        assert p.type_descriptor.annotation is f.kind
        assert p.opts == [f"--{f.flag.replace('_', '-')}"]


def test_every_field_is_a_tune_name_and_a_transcriber_keyword():
    d = DecodeOptions()
    every = [f.name for f in option_fields()]
    assert every == [f.name for f in dataclasses.fields(DecodeOptions)]
    tuned = parse_assignments([f"{f.name}={getattr(d, f.name)}" for f in option_fields()], several=False)
    assert {k: v[0] for k, v in tuned.items()} == dataclasses.asdict(d)
    assert decode_options(d, None, dataclasses.asdict(d)) == d
    with pytest.raises(TypeError) as e:
        decode_options(d, None, {"beam_size": 5})
    assert "beam_size" in str(e.value) and all(name in str(e.value) for name in every)


def test_server_fields_are_the_fields_offered_there():
    fields = _served_fields(_served_app().openapi())
    assert {f.name for f in option_fields(on=QUERY)} == PUBLISHED[QUERY] == fields[QUERY] - {"format", "name"}
    assert {f.name for f in option_fields(on=FORM)} == PUBLISHED[FORM]
    openai = {"file", "model", "response_format", "language", "temperature", "prompt", "stream",
              "timestamp_granularities[]"}
    assert fields[FORM] == openai | PUBLISHED[FORM]


def test_every_field_is_documented_and_numeric_ones_have_a_range():
    for f in option_fields():
        assert f.help.strip() and f.kind in (int, float, str)
        assert (f.within is not None) == (f.kind is not str), f.name
        if f.within is not None:
            assert f.within.holds(f.default), f.name


@dataclasses.dataclass(frozen=True)
class Wider(DecodeOptions):
    """DecodeOptions with one more option, declared as the real ones are and nowhere else."""

    new_knob: float = _option(0.5, "A new decoding knob.", Within(0.0, 1.0), on=(*SEARCH, *SERVED), flag="knob")


def test_a_new_field_reaches_every_surface_without_other_edits():
    with pytest.raises(ValueError, match=r"new_knob must be within \[0, 1\], not 2.0"):
        Wider(new_knob=2.0)
    assert decode_options(Wider(), None, {"new_knob": 0.25}).new_knob == 0.25  # a Transcriber keyword
    with pytest.raises(TypeError, match="new_knob must be a float"):
        decode_options(Wider(), None, {"new_knob": "0.25"})

    got = {}
    cli = typer.Typer()

    @cli.command()
    @with_decode_flags(TRANSCRIBE, options=Wider)
    def run(decode: dict | None = None) -> None:
        got["cli"] = decode

    result = CliRunner().invoke(cli, ["--knob", "0.25", "--beam", "3"])
    assert result.exit_code == 0, result.output
    assert got["cli"] == {"new_knob": 0.25, "beam": 3}
    assert "A new decoding knob." in CliRunner().invoke(cli, ["--help"]).output

    for surface in (FORM, QUERY):
        @with_decode_params(surface, options=Wider)
        async def route(name: str = "x", decode: dict | None = None) -> dict:
            return decode

        assert asyncio.run(route(name="y", new_knob=0.25, beam=None)) == {"new_knob": 0.25}
        from fastapi import FastAPI

        api = FastAPI()
        api.post("/r")(route)
        schema = api.openapi()["paths"]["/r"]["post"]
        if surface == QUERY:
            names = {p["name"] for p in schema["parameters"]}
        else:
            ref = schema["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["$ref"]
            names = set(api.openapi()["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"])
        assert "new_knob" in names and {f.name for f in option_fields(Wider, surface)} <= names

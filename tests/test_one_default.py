"""One default behaviour (issue 30 item 1): `kdasr transcribe`, `Transcriber.transcribe` and `kdasr serve`
decode a long file the same way (VAD on, decided once in kdasr/defaults.py) and give the same text;
each can switch it off. Uses the shipped model and the committed sample clips, joined with pauses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_kdasr

pytest.importorskip("fastapi")

from tests.test_serve import SAMPLES, server  # noqa: E402


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """All sample clips twice, 1.5 s of silence between: a bit over a minute of 16 kHz audio."""
    pause = np.zeros(int(1.5 * 16000), np.float32)
    parts = []
    for path in SAMPLES * 2:
        parts += [sf.read(path, dtype="float32")[0], pause]
    path = tmp_path_factory.mktemp("long") / "long.flac"
    sf.write(path, np.concatenate(parts), 16000)
    assert sf.info(path).duration >= 60
    return path


@pytest.mark.slow
def test_cli_api_and_server_give_the_same_text_by_default(long_file):
    from kdasr import Transcriber, VadOptions
    from kdasr.defaults import VAD_DEFAULT

    assert VAD_DEFAULT is True
    cli = json.loads(run_kdasr("transcribe", str(long_file), "-f", "json", "--threads", "1", "-q").stdout)
    cli = cli[0] if isinstance(cli, list) else cli
    t = Transcriber(threads=1)
    assert t.vad_options == VadOptions()
    api = t.transcribe(str(long_file))
    with server() as (_, c):
        reply = c.transcribe_form(long_file.read_bytes(), filename="long.flac", response_format="json")
        assert reply.status == 200, reply.body
        served = reply.json()["text"]
    assert len(api.text.split()) > 100
    assert cli["text"] == api.text == served
    # the VAD is what makes them agree: decoding whole 20 s cuts gives another text
    assert api.segments[0].start > 0 or len(api.segments) >= len(SAMPLES) * 2
    whole = Transcriber(threads=1, vad=False).transcribe(str(long_file))
    assert whole.text != api.text


@pytest.mark.slow
def test_each_front_end_switches_the_vad_off(long_file):
    from kdasr import Transcriber

    whole = Transcriber(threads=1, vad=False).transcribe(str(long_file))
    cli = json.loads(run_kdasr("transcribe", str(long_file), "-f", "json", "--no-vad", "--threads", "1", "-q").stdout)
    cli = cli[0] if isinstance(cli, list) else cli
    with server("--no-vad") as (_, c):
        served = c.transcribe_form(long_file.read_bytes(), filename="long.flac", response_format="json").json()
    assert cli["text"] == whole.text == served["text"]


def test_vad_argument_takes_a_bool_or_options():
    from kdasr import Transcriber, VadOptions

    assert Transcriber(vad=True, threads=1).vad_options == VadOptions()
    assert Transcriber(vad=VadOptions(threshold=0.6), threads=1).vad_options.threshold == 0.6
    assert Transcriber(vad=VadOptions(enabled=False), threads=1).vad_options is None
    with pytest.raises(TypeError, match="vad must be True, False or a kdasr.VadOptions"):
        Transcriber(vad="yes")


@pytest.mark.slow
def test_help_documents_the_switch():
    for cmd in ("transcribe", "serve"):
        out = run_kdasr(cmd, "--help", env={"COLUMNS": "200"}).stdout
        assert "--no-vad" in out and "library's default" in out, cmd

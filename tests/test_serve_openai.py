"""The official `openai` Python client, unchanged, against a real `kdasr serve` process."""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")

from tests.test_serve import SAMPLES, server  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with server("--max-batch", "4") as (_, c):
        yield openai.OpenAI(base_url=f"http://127.0.0.1:{c.port}/v1", api_key="unused", max_retries=0)


def test_openai_client_formats(client):
    audio = SAMPLES[3]
    opts = {"model": "demo-en", "extra_body": {"beam": 1}}
    with audio.open("rb") as f:
        plain = client.audio.transcriptions.create(file=f, language="en", temperature=0.2, **opts)
    assert len(plain.text) > 10
    with audio.open("rb") as f:
        text = client.audio.transcriptions.create(file=f, response_format="text", **opts)
    assert text.strip() == plain.text
    with audio.open("rb") as f:
        verbose = client.audio.transcriptions.create(file=f, response_format="verbose_json", **opts)
    assert verbose.text == plain.text and verbose.language == "english"
    assert verbose.segments[0].start == 0.0 and verbose.segments[-1].end == pytest.approx(verbose.duration)
    with audio.open("rb") as f:
        srt = client.audio.transcriptions.create(file=f, response_format="srt", **opts)
    assert srt.startswith("1\n00:00:00,000 --> ") and plain.text in srt
    assert [m.id for m in client.models.list().data] == ["demo-en"]


def test_openai_client_sees_clear_errors(client):
    with SAMPLES[0].open("rb") as f:
        with pytest.raises(openai.BadRequestError, match="transcribes 'en'"):
            client.audio.transcriptions.create(file=f, model="demo-en", language="de")
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.audio.transcriptions.create(file=("x.flac", SAMPLES[0].read_bytes()), model="whisper-large")
    with pytest.raises(openai.APIStatusError) as e:
        client.audio.transcriptions.create(file=("notes.txt", b"plain text, not audio" * 9), model="demo-en")
    assert e.value.status_code == 415 and "unsupported audio format" in str(e.value)
    with SAMPLES[0].open("rb") as f:  # the process is still fine
        assert client.audio.transcriptions.create(file=f, model="whisper-1", extra_body={"beam": 1}).text


def test_openai_client_gets_word_timestamps(client):
    with SAMPLES[3].open("rb") as f:
        verbose = client.audio.transcriptions.create(
            file=f, model="demo-en", response_format="verbose_json", timestamp_granularities=["word"],
            extra_body={"beam": 1})
    words = verbose.words
    assert words and " ".join(w.word for w in words) == verbose.text
    assert all(0.0 <= w.start <= w.end <= verbose.duration + 0.05 for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:]))
    with SAMPLES[3].open("rb") as f:  # OpenAI's rule: granularities need verbose_json
        with pytest.raises(openai.BadRequestError, match="verbose_json"):
            client.audio.transcriptions.create(file=f, model="demo-en", timestamp_granularities=["word"])
    with SAMPLES[3].open("rb") as f:  # not asked: no words, and no alignment cost
        plain = client.audio.transcriptions.create(file=f, model="demo-en", response_format="verbose_json",
                                                   extra_body={"beam": 1})
    assert not getattr(plain, "words", None)

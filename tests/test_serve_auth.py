"""Issue 31 item 4: `kdasr serve` with an API key (OpenAI's Bearer scheme), docs off with a key, CORS off
unless asked, and no unauthenticated bind beyond loopback (what the Docker image does)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from tests.serve_helpers import served  # noqa: E402

pytestmark = pytest.mark.slow  # real server processes: over 2 s a test (measured)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "eval" / "samples").glob("*.flac"))[0]
KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    with served(tmp_path_factory.mktemp("keyed"), "--cors-origin", "https://app.example",
                env={"KDASR_API_KEY": KEY}) as s:
        yield s


def test_requests_need_the_key_as_bearer_and_get_openai_401s(keyed):
    _, c, log = keyed
    audio = SAMPLE.read_bytes()
    for headers, says in [({}, "no API key provided"), ({"Authorization": "Bearer sk-wrong"}, "incorrect API key"),
                          ({"Authorization": KEY}, "incorrect API key"),
                          ({"Authorization": f"Basic {KEY}"}, "incorrect API key")]:
        r = c.request("POST", "/v1/transcribe?beam=1", audio, headers)
        assert r.status == 401, (headers, r.body)
        err = r.json()["error"]
        assert err["code"] == "invalid_api_key" and err["type"] == "invalid_request_error" and says in err["message"]
        assert r.headers["www-authenticate"] == "Bearer"
    ok = c.request("POST", "/v1/transcribe?beam=1", audio, {"Authorization": f"Bearer {KEY}"})
    assert ok.status == 200 and ok.json()["text"]
    for path in ("/v1/models", "/metrics"):
        assert c.get(path).status == 401
    assert c.get("/healthz").status == 200 and c.get("/readyz").status == 200  # probes stay open
    # docs are off with a key (they load JavaScript from a CDN and describe the API to anyone)
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert c.request("GET", path, headers={"Authorization": f"Bearer {KEY}"}).status == 404
    assert KEY not in log.read_text()


def test_the_official_openai_client_authenticates(keyed):
    openai = pytest.importorskip("openai")
    _, c, _ = keyed
    base = f"http://127.0.0.1:{c.port}/v1"
    good = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0)
    assert good.audio.transcriptions.create(file=("a.flac", SAMPLE.read_bytes()), model="demo-en",
                                            extra_body={"beam": 1}).text
    bad = openai.OpenAI(base_url=base, api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="incorrect API key"):
        bad.audio.transcriptions.create(file=("a.flac", SAMPLE.read_bytes()), model="demo-en")


def test_cors_only_for_the_origins_given(keyed, tmp_path):
    _, c, _ = keyed
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    r = c.request("OPTIONS", "/v1/audio/transcriptions", headers=preflight)
    assert r.status == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
    other = c.request("OPTIONS", "/v1/audio/transcriptions", headers={**preflight, "Origin": "https://evil.example"})
    assert other.headers.get("access-control-allow-origin") is None
    with served(tmp_path) as (_, plain, _):  # no --cors-origin: no CORS headers at all; docs on without a key
        r = plain.request("GET", "/v1/models", headers={"Origin": "https://app.example"})
        assert r.status == 200 and "access-control-allow-origin" not in r.headers
        assert plain.get("/openapi.json").status == 200


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in (ROOT / "serve" / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def test_the_image_settings_refuse_to_serve_0000_without_a_key():
    image_env = _dockerfile_env()
    assert image_env["KDASR_HOST"] == "0.0.0.0" and "KDASR_API_KEY" not in image_env
    base = {k: v for k, v in os.environ.items() if not k.startswith("KDASR_")}
    env = {**base, **image_env, "KDASR_MODEL": str(ROOT / "export" / "demo-en"), "KDASR_PORT": "0"}
    cmd = [sys.executable, "-m", "kdasr", "serve"]  # the image's ENTRYPOINT
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve 0.0.0.0 without an API key" in lines[0]
    # told explicitly, it starts (and stops on SIGTERM)
    proc = subprocess.Popen(cmd, env={**env, "KDASR_ALLOW_UNAUTHENTICATED": "1", "KDASR_THREADS": "1",
                                      "KDASR_PORT": "0"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = ""
        for line in proc.stdout:
            out += line
            if "Uvicorn running on http://0.0.0.0" in line or "warm-up decode done" in line:
                break
        assert proc.poll() is None, out
    finally:
        proc.terminate()
        proc.wait(30)

"""kdasr tune: a grid of decoding options decoded on dev with real ORT sessions, cached per point
(a rerun decodes nothing), the best point written as an options file that `kdasr eval --options`
applies exactly; test manifests refused; shallow fusion and LM/BERT rescoring points."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_kdasr


@pytest.fixture(scope="module")
def dev(tiny_corpus, tmp_path_factory):
    """The tiny corpus' dev set, in a folder whose name says nothing about test."""
    d = tmp_path_factory.mktemp("sets")
    lines = []
    for line in (tiny_corpus / "dev.jsonl").read_text().splitlines():
        row = json.loads(line)
        row["audio"] = str((tiny_corpus / row["audio"]).resolve())  # relative to the manifest's folder
        lines.append(json.dumps(row) + "\n")
    (d / "dev.jsonl").write_text("".join(lines))
    return d / "dev.jsonl"


@pytest.fixture(scope="module")
def model_with_teachers(tiny_model_with_teachers):
    """The tiny model with a random tiny LM and BERT exported into a copy of it (conftest: test_beam's too)."""
    return tiny_model_with_teachers[0]


def _tune(model, manifest, out, *args, check=True):
    return run_kdasr("tune", "--model", str(model), "--manifest", str(manifest), "--out", str(out),
                     "--limit", "3", "--threads", "1", *args, check=check)


def test_tune_grid_cache_and_eval_options(tiny_model, dev, tiny_corpus, tmp_path):
    out = tmp_path / "best.json"
    first = _tune(tiny_model, dev, out, "--grid", "beam=1,2", "--grid", "ctc_weight=0,0.3", "--table",
                  str(tmp_path / "tune.md"))
    points = sorted((tmp_path / "best.points").glob("*.json"))
    assert len(points) == 4 and "cached" not in first.stderr
    records = [json.loads(p.read_text()) for p in points]
    assert all(len(r["per_utterance"]["ids"]) == 3 for r in records)
    doc = json.loads(out.read_text())
    assert doc["tuned_on"]["wer"] == min(r["wer"] for r in records) and doc["points"] == 4
    assert doc["given"].keys() == {"beam", "ctc_weight"} and doc["tuned_on"]["set"] == "dev"
    assert "| beam | ctc_weight |" in (tmp_path / "tune.md").read_text() and "best" in first.stdout
    assert "the others reused its output" in (tmp_path / "tune.md").read_text()  # RTFx is no speed comparison
    # the points after the first reuse its encoder outputs: the same result as a plain `kdasr eval`
    last = next(r for r in records if r["tune_point"] == {"beam": 2, "ctc_weight": 0.3})
    plain = tmp_path / "plain.json"
    run_kdasr("eval", "--model", str(tiny_model), "--manifest", str(dev), "--limit", "3", "--beam", "2",
              "--ctc-weight", "0.3", "--json", str(plain), "--threads", "1")
    assert json.loads(plain.read_text())["per_utterance"] == last["per_utterance"]

    mtimes = [p.stat().st_mtime_ns for p in points]
    second = _tune(tiny_model, dev, out, "--grid", "beam=1,2", "--grid", "ctc_weight=0,0.3")
    assert second.stderr.count(": cached") == 4 and "decoding" not in second.stderr
    assert [p.stat().st_mtime_ns for p in points] == mtimes and json.loads(out.read_text()) == doc
    # one more value: only the new points are decoded
    third = _tune(tiny_model, dev, out, "--grid", "beam=1,2,3", "--grid", "ctc_weight=0,0.3")
    assert third.stderr.count(": cached") == 4 and third.stderr.count("decoding") == 2

    # the test set decoded with exactly the dev-chosen decoding; a flag given still wins
    rec_path = tmp_path / "test.json"
    run_kdasr("eval", "--model", str(tiny_model), "--manifest", str(tiny_corpus / "test.jsonl"), "--limit", "2",
              "--options", str(out), "--json", str(rec_path), "--threads", "1")
    rec = json.loads(rec_path.read_text())
    chosen = json.loads(out.read_text())["decoding"]
    assert rec["decoding"] == chosen and rec["options_file"] == str(out)
    run_kdasr("eval", "--model", str(tiny_model), "--manifest", str(tiny_corpus / "test.jsonl"), "--limit", "2",
              "--options", str(out), "--json", str(rec_path), "--beam", "4", "--threads", "1")
    rec = json.loads(rec_path.read_text())
    assert rec["decoding"] == {**chosen, "beam": 4}


def test_tune_refuses_test_manifests_and_bad_grids(tiny_model, tiny_corpus, dev, tmp_path):
    out = tmp_path / "best.json"
    proc = _tune(tiny_model, tiny_corpus / "test.jsonl", out, "--grid", "beam=1", check=False)
    assert proc.returncode == 1 and "refusing to tune" in proc.stderr and not out.exists()
    heldout = tmp_path / "sets" / "test_heldout.jsonl"
    heldout.parent.mkdir()
    shutil.copy(dev, heldout)
    assert "refusing" in _tune(tiny_model, heldout, out, "--grid", "beam=1", check=False).stderr
    allowed = _tune(tiny_model, heldout, out, "--grid", "beam=1", "--allow-test-manifest")
    assert out.exists() and "best" in allowed.stdout
    for bad, says in ((["--grid", "beems=1,2"], "not a decoding option"), (["--grid", "beam=x"], "not a int"),
                      (["--grid", "ctc_weight=1.5"], "ctc_weight"), (["--grid", "lm_weight=0,0.3"], "lm needed")):
        proc = _tune(tiny_model, dev, tmp_path / "x.json", *bad, check=False)
        assert proc.returncode != 0 and says in proc.stderr and "Traceback" not in proc.stderr, (bad, proc.stderr)
    bad_opts = tmp_path / "bad.json"
    bad_opts.write_text('{"decoding": {"beam": 0}}')
    proc = run_kdasr("eval", "--model", str(tiny_model), "--manifest", str(dev), "--options", str(bad_opts),
                     check=False)
    assert proc.returncode == 1 and str(bad_opts) in proc.stderr and "Traceback" not in proc.stderr


def test_tune_fusion_and_rescoring(model_with_teachers, dev, tmp_path):
    out = tmp_path / "fusion.json"
    _tune(model_with_teachers, dev, out, "--set", "beam=2", "--grid", "lm_weight=0,0.5", "--grid",
          "length_bonus=0,1")
    doc = json.loads(out.read_text())
    assert doc["points"] == 4 and doc["decoding"]["beam"] == 2 and doc["lm"] is None
    out = tmp_path / "rescore.json"
    proc = _tune(model_with_teachers, dev, out, "--set", "beam=2", "--grid", "rescore=lm,bert", "--grid",
                 "rescore_weight=0.3,1")
    records = [json.loads(p.read_text()) for p in (tmp_path / "rescore.points").glob("*.json")]
    assert {(r["decoding"]["rescore"], r["decoding"]["rescore_weight"]) for r in records} == {
        ("lm", 0.3), ("lm", 1.0), ("bert", 0.3), ("bert", 1.0)}
    assert "rescore" in proc.stdout


def test_remembered_rescores_score_each_hypothesis_once_and_change_nothing(model_with_teachers, dev):
    """What `kdasr tune` turns on: across rescore weights the BERT teacher scores each distinct
    hypothesis once, and the n-best lists equal those of a Transcriber that scores afresh."""
    import numpy as np
    import soundfile as sf

    from kdasr.runtime import Transcriber

    rows = [json.loads(line) for line in dev.read_text().splitlines()][:3]
    waves = [sf.read(r["audio"], dtype="float32")[0] for r in rows]
    fresh, tuned = (Transcriber(model_with_teachers, threads=1, vad=False) for _ in range(2))
    tuned.remember_rescores()
    bert = tuned.teacher("bert")
    scored: list[tuple[int, ...]] = []
    real = bert.sequence_scores
    bert.sequence_scores = lambda seqs: (scored.extend(seqs), real(seqs))[1]
    for weight in (0.3, 1.0, 3.0):
        opts = fresh.recommended_options(beam=3, nbest=3, rescore="bert", rescore_weight=weight)
        want, got = fresh.decode_hypotheses(waves, opts), tuned.decode_hypotheses(waves, opts)
        assert [[h.tokens for h in nb] for nb in got] == [[h.tokens for h in nb] for nb in want]
        np.testing.assert_allclose([h.score for nb in got for h in nb], [h.score for nb in want for h in nb],
                                   rtol=1e-5, atol=1e-4)
        if weight == 0.3:
            first = len(scored)
            assert first >= len(waves)  # the first weight scored every hypothesis
    assert len(scored) == len(set(scored)) == first  # the later weights scored nothing new

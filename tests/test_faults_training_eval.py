"""Issue 12 part A fault suite: crafted checkpoints never run code; `kdasr eval` scores what the
manifest says (segments, normalised references, empty references) and fails in one line; broken
model directories and training mistakes are one clear line. Real files, the shipped
export/demo-en-small model, real onnxruntime sessions, the tiny config and real subprocesses."""

from __future__ import annotations

import builtins
import json
import re
import shutil
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_kdasr

from kdasr.errors import KdasrError
from kdasr.eval.wer import error_rates
from kdasr.models.torch_files import save_torch_file

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "export" / "demo-en-small"
SAMPLES = ROOT / "eval" / "samples" / "manifest.jsonl"
FAST = ["--model", str(MODEL), "--beam", "1", "--ctc-weight", "0", "--threads", "1"]


def _one_line_error(proc, *needles: str) -> str:
    """The run failed with exactly one stderr line, an `error:` naming every needle, no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


class _TouchOnLoad:
    """Unpickling this calls open(marker, 'w'): a stand-in for any code a crafted .pt could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def _craft(path: Path, marker: Path) -> Path:
    payload = {"model_config": _TouchOnLoad(marker), "model": {}, "tokenizer_model": b"", "lm_config": {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def _train_args(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--train", str(corpus / "train.jsonl"), "--dev", str(corpus / "dev.jsonl"),
        "--tokenizer", str(corpus / "tokenizer.model"), "--out", str(out), "--config", "tiny",
        "--max-steps", "1", "--threads", "1", *extra,
    ]


# 1. untrusted checkpoints never run code


def test_crafted_checkpoint_never_runs_code(tiny_corpus, tmp_path):
    # the payload is live: an unsafe load does run it
    probe = tmp_path / "probe-marker"
    torch.load(_craft(tmp_path / "probe.pt", probe), weights_only=False)
    assert probe.exists()

    marker = tmp_path / "marker"
    evil = _craft(tmp_path / "evil.pt", marker)
    planted = tmp_path / "planted"
    _craft(planted / "last.pt", marker)
    lm_dir = tmp_path / "lm"
    _craft(lm_dir / "lm.pt", marker)
    runs = {
        "export": ["export", str(evil), "--out", str(tmp_path / "exported")],
        "init-from": _train_args(tiny_corpus, tmp_path / "fresh", "--init-from", str(evil)),
        "planted last.pt": _train_args(tiny_corpus, planted),
        "export-lm": ["export-lm", "--lm", str(lm_dir), "--out", str(tmp_path / "lm-out")],
    }
    for what, args in runs.items():
        proc = run_kdasr(*args, check=False)
        line = _one_line_error(proc, "refuses to unpickle")
        assert "evil.pt" in line or "last.pt" in line or "lm.pt" in line, (what, line)
        assert not marker.exists(), f"{what}: the crafted payload ran"
    assert not (tmp_path / "exported" / "model.json").exists()
    assert not (tmp_path / "fresh" / "last.pt").exists()


def test_own_checkpoints_load_with_weights_only(tiny_model):
    # the session's tiny run: model, optimiser, every RNG state, configs and tokenizer bytes
    ck = torch.load(tiny_model.parent / "last.pt", map_location="cpu", weights_only=True)
    assert ck["optimizer"]["state"] and ck["rngs"][0]["specaug"].dtype == torch.uint8
    assert isinstance(ck["train_config"]["specaug"], dict) and isinstance(ck["tokenizer_model"], bytes)


def test_saving_a_payload_that_would_not_load_safely_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"numpy"):
        save_torch_file(tmp_path / "x.pt", {"rng": np.random.default_rng(0).bit_generator.state, "g": np.float64(1)})
    assert not (tmp_path / "x.pt").exists()


# 7. evaluation is correct


def _samples(n: int) -> list[dict]:
    return [json.loads(line) for line in SAMPLES.read_text().splitlines()][:n]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _wer(stdout: str) -> float:
    return float(re.search(r"WER ([\d.]+)%", stdout).group(1))


@pytest.mark.slow
def test_eval_scores_the_segments_of_a_segmented_manifest(tmp_path):
    rows, parts, segs, t = _samples(4), [], [], 0.0
    gap = np.zeros(8000, np.float32)
    for r in rows:
        x, sr = sf.read(SAMPLES.parent / r["audio"], dtype="float32")
        parts += [x, gap]
        segs.append({"id": r["id"], "audio": "long.flac", "text": r["text"], "duration": len(x) / sr, "start": t})
        t += (len(x) + len(gap)) / sr
    sf.write(tmp_path / "long.flac", np.concatenate(parts), 16000)
    clips = [{**r, "audio": str(SAMPLES.parent / r["audio"])} for r in rows]
    seg_proc = run_kdasr("eval", "--manifest", str(_write_jsonl(tmp_path / "seg.jsonl", segs)), *FAST,
                         "--hyps", str(tmp_path / "hyps.jsonl"))
    clip_proc = run_kdasr("eval", "--manifest", str(_write_jsonl(tmp_path / "clips.jsonl", clips)), *FAST)
    seg_wer, clip_wer = _wer(seg_proc.stdout), _wer(clip_proc.stdout)
    # whole-recording scoring gave every segment the other segments' words too (hundreds of %)
    assert seg_wer < 80 and abs(seg_wer - clip_wer) < 5, (seg_wer, clip_wer)
    for row in map(json.loads, (tmp_path / "hyps.jsonl").read_text().splitlines()):
        assert len(row["hyp"].split()) <= 1.5 * len(row["ref"].split()) + 2, row


@pytest.mark.slow
def test_eval_normalises_reports_digits_and_counts_empty_reference_insertions(tmp_path):
    rows = _samples(4)
    rows[0]["text"] = rows[0]["text"].upper().replace(" ", ",  ")  # normalised back to the policy
    rows[1]["text"] = "chapter 12 " + rows[1]["text"]  # digits: reported, not scored
    rows[2]["text"] = ""  # empty: its hypothesis words are insertions
    rows[3]["text"] = "\u266a \u266a"  # normalises to nothing: scored as empty, reported
    for r in rows:
        r["audio"] = str(SAMPLES.parent / r["audio"])
    manifest = _write_jsonl(tmp_path / "m.jsonl", rows)
    proc = run_kdasr("eval", "--manifest", str(manifest), *FAST, "--hyps", str(tmp_path / "h.jsonl"))
    assert "Traceback" not in proc.stderr
    warnings = proc.stderr.splitlines()
    assert any(rows[1]["id"] in w and "digits" in w for w in warnings), proc.stderr
    assert any(rows[3]["id"] in w and "normalises to nothing" in w for w in warnings), proc.stderr
    out = {r["id"]: r for r in map(json.loads, (tmp_path / "h.jsonl").read_text().splitlines())}
    assert "skipped" in out[rows[1]["id"]] and "hyp" not in out[rows[1]["id"]]
    ref0, hyp0 = out[rows[0]["id"]]["ref"], out[rows[0]["id"]]["hyp"]
    assert ref0 == " ".join(_samples(1)[0]["text"].split())  # upper case and commas gone
    inserted = sum(len(out[rows[i]["id"]]["hyp"].split()) for i in (2, 3))
    assert inserted > 0
    m = jiwer.process_words(ref0, hyp0)
    expected = 100 * (m.substitutions + m.deletions + m.insertions + inserted) / len(ref0.split())
    assert abs(_wer(proc.stdout) - expected) < 0.01, (proc.stdout, expected)
    assert "1 reference(s) not scored" in proc.stdout and "2 empty reference(s)" in proc.stdout


def test_error_rates_count_insertions_against_empty_references():
    r = error_rates(["the cat", ""], ["the cat", "sat on it"])
    assert r.words == 2 and r.wer == pytest.approx(150.0) and r.empty_reference_insertions == 3
    assert np.isnan(error_rates([""], ["x"]).wer) and error_rates([""], [""]).wer == 0.0


@pytest.mark.slow
def test_eval_of_empty_or_all_missing_manifest_is_one_line(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    _one_line_error(run_kdasr("eval", "--manifest", str(empty), *FAST, check=False), str(empty), "no utterances")
    rows = [{**r, "audio": str(tmp_path / f"gone-{i}.flac")} for i, r in enumerate(_samples(3))]
    missing = _write_jsonl(tmp_path / "missing.jsonl", rows)
    proc = run_kdasr("eval", "--manifest", str(missing), *FAST, check=False)
    _one_line_error(proc, str(missing), "nothing to score", "3 failed", "gone-0.flac", "no such file")


# 8. model directories are validated at load


def _broken_model(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    shutil.copytree(MODEL, d, ignore=shutil.ignore_patterns("*.int8.onnx"))
    return d


@pytest.mark.slow
def test_broken_model_dirs_are_one_clear_line(tmp_path):
    d = _broken_model(tmp_path)
    info = json.loads((d / "model.json").read_text())
    first = _samples(1)[0]
    manifest = _write_jsonl(tmp_path / "m.jsonl", [{**first, "audio": str(SAMPLES.parent / first["audio"])}])
    args = ["eval", "--manifest", str(manifest), "--model", str(d), "--threads", "1"]

    (d / "model.json").write_text("[1, 2, 3]\n")
    _one_line_error(run_kdasr(*args, check=False), str(d / "model.json"), "JSON object")

    (d / "model.json").write_text(json.dumps({k: v for k, v in info.items() if k != "special_ids"}))
    _one_line_error(run_kdasr(*args, check=False), str(d / "model.json"), "'special_ids'")

    (d / "model.json").write_text(json.dumps(info))
    (d / "encoder.onnx").rename(d / "tmp.onnx")
    (d / "decoder.onnx").rename(d / "encoder.onnx")
    (d / "tmp.onnx").rename(d / "decoder.onnx")
    _one_line_error(run_kdasr(*args, check=False), str(d / "encoder.onnx"), "waveform", "swapped")


# 9. training errors are clear


def test_resume_with_another_config_is_refused_naming_the_settings(tiny_model, tiny_corpus, tmp_path):
    out = tmp_path / "exp"
    out.mkdir()
    shutil.copy(tiny_model.parent / "last.pt", out / "last.pt")  # trained with --config tiny
    before = (out / "last.pt").read_bytes()
    args = _train_args(tiny_corpus, out)
    args[args.index("tiny")] = "demo"
    line = _one_line_error(run_kdasr(*args, check=False), str(out / "last.pt"), "--config demo")
    assert "d_model 32 vs 144" in line and "encoder_layers 1 vs 6" in line, line
    assert (out / "last.pt").read_bytes() == before
    assert not (out / "feats").exists()  # refused before any feature work


def test_toml_errors_name_file_line_and_column(tiny_corpus, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nd_model = 32\nencoder_layers = = 2\n")
    args = _train_args(tiny_corpus, tmp_path / "exp")
    args[args.index("tiny")] = str(bad)
    _one_line_error(run_kdasr(*args, check=False), f"{bad}:3:18: invalid TOML")
    from kdasr.training.presets import load_preset

    for body, needle in (
        ("[model]\nd_model = 'big'\n", "[model] d_model = 'big': expected int"),
        ("[train]\nlearning_rate = 1e-3\n", "[train] unknown key 'learning_rate'"),
        ("[modle]\nd_model = 32\n", "unknown section [modle]"),
    ):
        bad.write_text(body)
        with pytest.raises(KdasrError, match=re.escape(needle)):
            load_preset(str(bad), 60)

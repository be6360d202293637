"""kdasr bench --system with a reference system (faster-whisper whisper tiny.en, from the installed
`reference` extra) beside a real kdasr model dir (export/demo-en), on two of the committed sample
clips: both rows timed and scored in one run, the reference's WER equal to `kdasr eval-reference`'s
on the same clips, and the JSON read by `kdasr paper-table` and `kdasr model-card`. Bad specs and
a missing faster-whisper are one error line. A batch-16 mode that was not run is n/a everywhere."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import KDASR

from kdasr.errors import KdasrError
from kdasr.reports.bench import machine_info
from kdasr.reports.bench_engines import SystemSpec, batch16_unavailable, parse_system
from kdasr.reports.bench_systems import NOT_RUN, ModeStats, SystemRecord, SystemsBench, systems_markdown
from kdasr.reports.paper_table import TableConfig, build_table

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "eval" / "samples" / "manifest.jsonl"
MODEL = ROOT / "export" / "demo-en"
WHISPER = "whisper-tiny.en (faster-whisper int8, beam 5)"  # eval-reference's system name


def _kdasr(*args, env=None):
    return subprocess.run([*KDASR, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


def _ok(*args):
    proc = _kdasr(*args)
    assert proc.returncode == 0, proc.stderr
    return proc


def _one_line_error(proc) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.slow
def test_bench_beside_faster_whisper_and_its_readers(tmp_path):
    pytest.importorskip("faster_whisper")
    md = tmp_path / "bench.md"
    _ok("bench", "--manifest", str(SAMPLES), "--limit", "2", "--threads", "1", "--system", f"student={MODEL}",
        "--system", f"{WHISPER}=faster-whisper:tiny.en", "--out", str(md))
    doc = json.loads(md.with_suffix(".json").read_text())
    student, fw = doc["systems"]
    assert (student["name"], student["engine"], fw["name"], fw["engine"]) == ("student", "kdasr", WHISPER,
                                                                              "faster-whisper")
    assert fw["model"] == "faster-whisper:tiny.en" and fw["decoding"]["beam"] == 5 and student["notes"] == []
    for s in (student, fw):
        for mode in ("batch1", "batch16"):
            m = s[mode]
            assert math.isfinite(m["rtfx"]) and m["rtfx"] > 0 and 0 < m["latency_ms_p50"] <= m["latency_ms_p95"]
            assert abs(m["rtfx"] - doc["seconds_audio"] / m["wall_s"]) < 1e-6 and m["cpu_s"] > 0
        assert math.isfinite(s["wer"]) and 0 <= s["wer"] < 100 and math.isfinite(s["cer"])
    assert fw["batch16"]["latency_ms_mean"] == fw["batch16"]["latency_ms_p50"]  # two clips: one batch-16 call
    assert student["batch16_same_text"] == fw["batch16_same_text"] == 2  # each clip back at its own place
    assert any("pads every input to 30 s" in n for n in fw["notes"])
    text = md.read_text()
    assert f"| {WHISPER}[^1][^2][^3] | faster-whisper tiny.en int8, beam 5 |" in text
    assert "[^1]: " + WHISPER + ": faster-whisper pads every input to 30 s" in text

    # scored as kdasr eval-reference scores it, on the same clips
    results = tmp_path / "results"
    _ok("eval-reference", "--manifest", str(SAMPLES), "--limit", "2", "--threads", "1",
        "--json", str(results / "whisper.json"))
    ref = json.loads((results / "whisper.json").read_text())
    assert ref["system"] == WHISPER and abs(ref["wer"] - fw["wer"]) < 1e-9 and abs(ref["cer"] - fw["cer"]) < 1e-9

    # paper-table: the reference row's cost from the bench, with no decoding-mismatch warning
    model = tmp_path / "demo-en"
    shutil.copytree(MODEL, model)  # model-card writes MODEL_CARD.md into the model dir
    _ok("eval", "--model", str(model), "--manifest", str(SAMPLES), "--limit", "2", "--threads", "1",
        "--system", "student", "--json", str(results / "student.json"))
    table = tmp_path / "paper.md"
    _ok("paper-table", str(results), "--baseline", "student", "--bench", str(md.with_suffix(".json")),
        "--sets", "manifest", "--out", str(table))
    paper = table.read_text()
    cost = next(x for x in paper.splitlines() if x.startswith(f"| {WHISPER} (reference) | faster-whisper"))
    assert cost.startswith(f"| {WHISPER} (reference) | faster-whisper tiny.en int8, beam 5 | "
                           f"{fw['batch1']['rtfx']:.1f} |")
    assert "Warning" not in paper

    # model-card: the student's speed from the same bench JSON, the reference row read without trouble
    _ok("model-card", str(model), "--results", str(results / "student.json"), "--bench", str(md.with_suffix(".json")),
        "--system", "student")
    card = (model / "MODEL_CARD.md").read_text()
    assert f"| 1 | {student['batch1']['rtfx']:.1f} | {round(student['batch1']['latency_ms_p50'])} |" in card


def test_a_bad_reference_spec_is_one_line(tmp_path):
    line = _one_line_error(_kdasr("bench", "--manifest", str(SAMPLES), "--limit", "1", "--system",
                                  "fw=faster-whisper:nonexistent", "--out", str(tmp_path / "b.md")))
    assert line == ("error: --system fw: unknown faster-whisper model 'nonexistent' (choose tiny.en or base: "
                    "faster-whisper:nonexistent)")
    assert not (tmp_path / "b.md").exists()


@pytest.mark.parametrize(("spec", "says"), [
    ("fw=faster-whisper:tiny.en:beam=0", "'beam=0' in 'faster-whisper:tiny.en:beam=0': the only option is beam=N"),
    ("fw=faster-whisper:base:temperature=0", "the only option is beam=N"),
    ("fw=faster-whisper:", "unknown faster-whisper model ''"),
])
def test_bad_reference_options(spec, says):
    with pytest.raises(KdasrError, match="^--system fw: ") as e:
        parse_system(spec)
    assert says in str(e.value)


def test_missing_faster_whisper_is_one_line_naming_the_extra(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['faster_whisper'] = None  # not installed\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    line = _one_line_error(_kdasr("bench", "--manifest", str(SAMPLES), "--limit", "1", "--system",
                                  "fw=faster-whisper:tiny.en", "--out", str(tmp_path / "b.md"), env=env))
    assert "--system fw" in line and "pip install 'kdasr[reference]'" in line


def test_parse_system_tells_references_from_model_dirs(tmp_path):
    assert parse_system("fw=faster-whisper:base:beam=2") == SystemSpec("fw", None, reference="base", beam=2)
    assert parse_system("fw=faster-whisper:tiny.en").beam == 5
    assert parse_system("a=./faster-whisper:tiny.en") == SystemSpec("a", Path("./faster-whisper:tiny.en"))
    assert parse_system("a=export/x:opts.json") == SystemSpec("a", Path("export/x"),
                                                              Path("opts.json"))
    with pytest.raises(KdasrError, match="expected NAME=MODEL_DIR"):
        parse_system("faster-whisper:tiny.en")


def test_batch16_not_run_is_n_a_in_the_report_and_the_paper_table():
    waves = [np.zeros(16000 * 5, np.float32), np.zeros(16000 * 31, np.float32)]
    why = batch16_unavailable(waves, 16000)
    assert "31.0 s" in why and batch16_unavailable(waves[:1], 16000) is None
    mode = ModeStats(rtfx=2.0, wall_s=1.0, cpu_s=1.0, latency_ms_p50=500.0, latency_ms_p95=600.0,
                     latency_ms_mean=500.0)
    fw = SystemRecord("fw", "faster-whisper:tiny.en", None, None,
                      {"engine": "faster-whisper", "model": "tiny.en", "compute_type": "int8", "beam": 5},
                      mode, NOT_RUN, 20.0, 10.0, engine="faster-whisper", notes=("pads to 30 s", why))
    base = SystemRecord("base", "export/a", None, None, {"beam": 10}, mode, mode, 12.5, 6.25)
    b = SystemsBench(run="r", command="", note="", machine=machine_info(), manifest="m.jsonl", utterances=2,
                     seconds_audio=36.0, threads=1, repeats=1, systems=(base, fw), baseline="base", method="the method")
    md = systems_markdown(b)
    assert "| fw[^1][^2] | faster-whisper tiny.en int8, beam 5 | 2.0 | 500 / 600 | n/a | n/a | 1.00 | 20.00 |" in md
    assert f"[^2]: fw: {why}" in md
    record = {"system": "fw", "set": "test", "manifest": "m.jsonl", "utterances": 2, "words": 10, "word_errors": 2,
              "wer": 20.0, "cer": 10.0, "decoding": {"beam": 5}}
    records = [{**record, "system": "base", "decoding": {"beam": 10}}, record]
    table = build_table(records, b.to_json(), TableConfig(baseline="base", sets=("test",)))
    assert "| fw | faster-whisper tiny.en int8, beam 5 | 2.0 | 500 / 600 | n/a | n/a | 1.00 | n/a |" in table.markdown
    assert "Warning" not in table.markdown

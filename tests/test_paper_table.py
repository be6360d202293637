"""kdasr bench --system (several systems side by side, JSON beside the Markdown) and kdasr
paper-table (rows, intervals, cost columns, the PNG) on real records of the tiny model, plus
synthetic records where one system is strictly better; everything under kdasr/eval imports and
the bench/paper-table commands run where `import torch` fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import KDASR, run_kdasr
from test_torch_free import BLOCKER


def _blocked_env(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _run_blocked(env, *args):
    proc = subprocess.run([*KDASR, *args], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def sets(tiny_corpus, tmp_path_factory):
    """dev and test manifests with absolute audio paths, in a folder of their own."""
    d = tmp_path_factory.mktemp("sets")
    for name in ("dev", "test"):
        rows = [json.loads(x) for x in (tiny_corpus / f"{name}.jsonl").read_text().splitlines()]
        for r in rows:
            r["audio"] = str((tiny_corpus / r["audio"]).resolve())
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def _synthetic(system, set_name, errors, words=10):
    n = len(errors)
    return {"system": system, "set": set_name, "manifest": f"x/{set_name}.jsonl", "utterances": n,
            "words": n * words, "word_errors": sum(errors), "wer": 100 * sum(errors) / (n * words), "cer": 1.0,
            "decoding": {"beam": 1},
            "per_utterance": {"ids": [f"u{i}" for i in range(n)], "word_errors": errors, "words": [words] * n,
                              "char_errors": errors, "chars": [4 * words] * n}}


def test_bench_systems_and_paper_table_without_torch(tiny_model, sets, tmp_path):
    env = _blocked_env(tmp_path)
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "blocked" in check.stderr
    modules = "import pkgutil, importlib, kdasr.eval, kdasr.reports; " \
              "[importlib.import_module(p.__name__ + '.' + m.name) " \
              "for p in (kdasr.eval, kdasr.reports) for m in pkgutil.iter_modules(p.__path__)]; print('ok')"
    proc = subprocess.run([sys.executable, "-c", modules], env=env, capture_output=True, text=True)
    assert proc.stdout.strip() == "ok", proc.stderr
    assert "--system" in _run_blocked(env, "bench", "--help").stdout

    opts = tmp_path / "beam2.json"
    opts.write_text(json.dumps({"decoding": {"beam": 2}}))
    results = tmp_path / "results"
    for system, extra in (("base", []), ("beam2", ["--options", str(opts)])):
        for name in ("dev", "test"):
            run_kdasr("eval", "--model", str(tiny_model), "--manifest", str(sets / f"{name}.jsonl"), "--threads", "1",
                      "--system", system, "--json", str(results / f"{system}-{name}.json"), *extra)
    # a reference row, and an old record without per-utterance counts (still read)
    rec = json.loads((results / "base-test.json").read_text())
    whisper = {**rec, "system": "whisper-tiny.en (faster-whisper int8, beam 5)", "rtfx": 3.0}
    (results / "whisper-test.json").write_text(json.dumps(whisper))
    old = {k: v for k, v in rec.items() if k not in ("per_utterance", "record_version")}
    (results / "old-test.json").write_text(json.dumps({**old, "system": "old"}))
    (results / "beam2.points.json").write_text(json.dumps({"decoding": {}}))  # not a record: skipped

    md = tmp_path / "bench" / "systems.md"
    _run_blocked(env, "bench", "--manifest", str(sets / "test.jsonl"), "--limit", "3", "--threads", "1",
                 "--system", f"base={tiny_model}", "--system", f"beam2={tiny_model}:{opts}", "--out", str(md))
    doc = json.loads(md.with_suffix(".json").read_text())
    assert [s["name"] for s in doc["systems"]] == ["base", "beam2"] and doc["utterances"] == 3
    assert doc["systems"][1]["decoding"]["beam"] == 2 and doc["systems"][1]["options_file"] == str(opts)
    for s in doc["systems"]:
        for mode in ("batch1", "batch16"):
            m = s[mode]
            assert m["rtfx"] > 0 and 0 < m["latency_ms_p50"] <= m["latency_ms_p95"] and m["cpu_s"] > 0
        # 3 utterances are one batch-16 call: its wall time counts once in RTFx, not once per utterance
        b16 = s["batch16"]
        assert abs(b16["wall_s"] - b16["latency_ms_mean"] / 1000) < 1e-9
        assert abs(b16["rtfx"] - doc["seconds_audio"] / b16["wall_s"]) < 1e-6
        assert s["wer"] is not None
    assert doc["machine"]["cores_usable"] >= 1 and "cpu" in doc["machine"] and doc["seconds_audio"] > 0
    assert "| beam2 | beam 2 |" in md.read_text()

    table, png = tmp_path / "paper.md", tmp_path / "paper.png"
    protocol = tmp_path / "protocol.txt"
    protocol.write_text("KD students branched from the baseline's epoch-8 checkpoint.\n")
    _run_blocked(env, "paper-table", str(results), "--baseline", "base", "--bench", str(md.with_suffix(".json")),
                 "--sets", "dev,test", "--protocol", str(protocol), "--paper", "beam2=bert-context",
                 "--out", str(table), "--plot", str(png))
    text = table.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    rows = {line.split(" | ")[0][2:] for line in text.splitlines() if line.startswith("| ")}
    assert {"base", "beam2", "old", "whisper-tiny.en (faster-whisper int8, beam 5) (reference)"} <= rows
    assert "epoch-8 checkpoint" in text and "paired bootstrap" in text and "2000 resamples" in text
    assert "baseline 10.31" in text and "BERT-KD context 9.19" in text and "not comparable" in text
    assert "n/a (no per-utterance counts)" in text  # the old record
    base_line = next(x for x in text.splitlines() if x.startswith("| base | greedy"))
    assert base_line.endswith("| 1.00 | 1.00 |")
    assert "not in the bench run; RTFx 3.0" in text  # whisper: its own eval run's speed
    assert "Warning" not in text  # every system benched and scored with the same decoding


@pytest.mark.slow
def test_paper_table_intervals_on_synthetic_records(tmp_path):
    base = [2, 3, 1, 4, 2, 0, 3, 2, 5, 1] * 20
    better = [max(e - (i % 2), 0) for i, e in enumerate(base)]
    res = tmp_path / "r"
    res.mkdir()
    for system, errors in (("base", base), ("better", better), ("same", base)):
        (res / f"{system}.json").write_text(json.dumps(_synthetic(system, "test", errors)))
    out = tmp_path / "t.md"
    run_kdasr("paper-table", str(res), "--baseline", "base", "--sets", "test", "--out", str(out))
    lines = {x.split(" | ")[0][2:]: x for x in out.read_text().split("## Relative")[1].splitlines()
             if x.startswith("| ")}
    better_cell = lines["better"].split(" | ")[1]
    high = float(better_cell.split(", ")[1].split("]")[0].replace("−", "-"))
    assert better_cell.startswith("−") and high < 0  # strictly better: the interval excludes 0
    assert lines["same"].split(" | ")[1].startswith("+0.0 [+0.0, +0.0]")
    assert "no bench JSON given" in out.read_text()

    (res / "dup.json").write_text(json.dumps(_synthetic("base", "test", base)))
    proc = run_kdasr("paper-table", str(res), "--baseline", "base", "--out", str(out), check=False)
    assert proc.returncode == 1 and "dup.json" in proc.stderr and "second record" in proc.stderr
    (res / "dup.json").unlink()
    proc = run_kdasr("paper-table", str(res), "--baseline", "nobody", "--out", str(out), check=False)
    assert proc.returncode == 1 and "baseline 'nobody'" in proc.stderr and "Traceback" not in proc.stderr


def test_protocol_is_text_or_a_file(tmp_path):
    from kdasr.cli.paper import _text_or_file

    long_text = "KD students branched from the baseline's epoch-3 checkpoint; " * 10  # longer than NAME_MAX
    assert _text_or_file(long_text) == long_text
    f = tmp_path / "protocol.txt"
    f.write_text("  from a file\n", encoding="utf-8")
    assert _text_or_file(str(f)) == "from a file"

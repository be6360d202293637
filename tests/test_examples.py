"""The README's walk-through script runs as written (examples/distil-your-own.sh).

Its first step (kdasr data synth) is tested on its own (test_synth.py); here the script finds a tiny
corpus already in place, as a rerun would, with the teacher text cut to a few documents and the
training set to 4 utterances (BERT's soft labels, one masked forward per token, took a quarter of the
test's CPU time on all 12), and runs every other step for real: BERT, soft labels, two students,
export with parity check, tuning on dev, export again with the tuned decoding, test scores, install
by name. The script's kdasr commands ($KDASR) go through the warm launcher (tests/warm_kdasr.py): each its
own process, forked from one that has imported torch, onnx and transformers' BERT once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from warm_kdasr import BERT_MODULES, warm_kdasr

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_distil_your_own_walkthrough_runs_as_written(tiny_corpus, tmp_path):
    out = tmp_path / "mine"
    shutil.copytree(tiny_corpus, out / "corpus")
    for name, keep in (("teacher", 6), ("train", 4)):
        path = out / f"corpus/{name}.jsonl"
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:keep]))
    env = {**os.environ, "OUT": str(out), "TEACHER_MINUTES": "0.02", "MINUTES": "0.02",
           "KDASR_MODELS": str(tmp_path / "models"), "NAME": "mine"}
    with warm_kdasr(tmp_path, env, BERT_MODULES) as kdasr:
        proc = subprocess.run(["bash", str(ROOT / "examples/distil-your-own.sh")], env={**env, "KDASR": kdasr},
                              cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for system in ("ce", "kd"):
        spec = json.loads((out / system / "model/model.json").read_text())
        tuned = json.loads((out / system / "tuned.json").read_text())
        assert spec["decoding"]["beam"] == tuned["decoding"]["beam"]  # the tuned decoding was exported
        assert json.loads((out / system / "test.json").read_text())["utterances"] > 0
    assert spec["training"]["kd"] == "bert-context"
    assert (tmp_path / "models/mine/model.json").is_file() and "-m mine" in proc.stdout

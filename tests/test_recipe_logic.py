"""The decisions of the paper recipe (kdasr/recipe/logic.py, settings.py), each on small real files:
teacher budgets, lambdas, the baseline's search for fusion, the student to ship and its export flags,
the table's protocol line (the same text eval/recipe.sh wrote) and wall times, the variables' defaults."""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from kdasr.recipe import logic
from kdasr.recipe.runner import RecipeError
from kdasr.recipe.settings import from_env

CURVES_HEADER = ("run,epoch,step,train_seconds,dev_wer_attention,dev_wer_ctc,dev_loss,dev_att_loss,utterances,"
                 "checkpoint,kd,branched_from,branch_step")
# the tiny recipe's tune record for the baseline, as kdasr tune writes it (tests/test_recipe.py's settings)
DECODING = {"method": "attention", "beam": 2, "nbest": 1, "max_len_ratio": 0.6, "ctc_length_ratio": 1.5,
            "ctc_length_slack": 4, "ctc_weight": 0.3, "lm_weight": 0.0, "length_bonus": 0.0, "length_penalty": 0.0,
            "ctc_prebeam": 1.5, "rescore": "none", "rescore_weight": 0.3, "batch_size": 16, "max_batch_seconds": 80.0,
            "max_segment_seconds": 20.0, "min_segment_seconds": 5.0, "pad_seconds": 0.0, "pad_to_seconds": 0.0}
# tests/test_recipe.py's variables (WARM=1 SWEEP=1 ...)
TINY_ENV = {"DATA": "d", "EXP": "e", "WARM_START": "", "WARM": "1", "SWEEP": "1", "EPOCHS": "2",
            "LAMBDAS": "0.1 0.3", "DEV_LIMIT": "4", "TEACHER_AMP": "none", "STUDENT_AMP": "none", "PROTOCOL_NOTE": ""}


def _curves(path: Path, rows: list[tuple[str, int, float]]) -> Path:
    lines = [CURVES_HEADER] + [f"{run},{ep},{ep * 2},0.3,{wer},1.0,4.8,4.1,4,/x/{run}/epoch-{ep}.pt,none,,"
                               for run, ep, wer in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_budget_and_fixed_lambdas():
    assert logic.budget_flags("20", "200") == ["--steps", "20"]
    assert logic.budget_flags("", "200") == ["--minutes", "200"]
    assert logic.fixed_lambda("lm=0.1 bert=0.1 bert-context=0.3", "bert-context") == "0.3"
    assert logic.fixed_lambda("lm=0.1 bert=0.1 bert-context=0.3", "bert") == "0.1"
    with pytest.raises(RecipeError, match=r"KD_LAMBDA \(lm=0.3\) has no lambda for KD mode bert-context"):
        logic.fixed_lambda("lm=0.3", "bert-context")
    assert logic.split_run(logic.student_run("bert-context", "0.3")) == ("bert-context", "0.3")


def test_chosen_lambda_is_the_lowest_dev_wer_at_the_sweep_epoch(tmp_path):
    csv = _curves(tmp_path / "curves.csv", [
        ("baseline", 1, 50.0), ("baseline", 2, 40.0),
        ("kd-lm-0.1", 2, 30.0), ("kd-lm-0.3", 2, 20.0), ("kd-lm-0.3", 3, 90.0),  # epoch 3 is not the sweep's
        ("kd-bert-context-0.1", 2, 25.0), ("kd-bert-context-0.3", 2, 25.0),
    ])
    assert logic.chosen_lambda(csv, "lm", 2, ["0.1", "0.3"]) == "0.3"
    assert logic.chosen_lambda(csv, "lm", 2, ["0.3", "0.1"]) == "0.3"
    assert logic.chosen_lambda(csv, "bert-context", 2, ["0.3", "0.1"]) == "0.3"  # a tie: the one listed first
    assert logic.chosen_lambda(csv, "bert-context", 2, ["0.1", "0.3"]) == "0.1"
    with pytest.raises(RecipeError, match="no dev WER at epoch 2 for every kd-lm-\\* run of LAMBDAS"):
        logic.chosen_lambda(csv, "lm", 2, ["0.1", "0.3", "0.5"])


def test_quality_gate_reads_passed(tmp_path):
    (tmp_path / "q.json").write_text(json.dumps({"passed": False, "teachers": {}}))
    assert not logic.quality_passed(tmp_path / "q.json")
    (tmp_path / "q.json").write_text(json.dumps({"passed": True}))
    assert logic.quality_passed(tmp_path / "q.json")


def test_baseline_search_and_export_flags_from_a_tune_record(tmp_path):
    rec = tmp_path / "baseline.json"
    rec.write_text(json.dumps({"kdasr_options": 1, "decoding": DECODING, "given": {"beam": 2}}))
    assert logic.baseline_search(rec, 10) == ["--set", "beam=10", "--set", "ctc_weight=0.3"]
    assert logic.baseline_search(rec, 1) == ["--set", "beam=2", "--set", "ctc_weight=0.3"]
    assert logic.decoding_flags(rec) == [
        "--method", "attention", "--beam", "2", "--nbest", "1", "--ctc-weight", "0.3", "--lm-weight", "0.0",
        "--length-bonus", "0.0", "--length-penalty", "0.0", "--rescore", "none", "--rescore-weight", "0.3"]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(RecipeError, match="broken.json: no tuned decoding"):
        logic.decoding_flags(tmp_path / "broken.json")


def test_export_takes_every_decoding_flag():
    """The flags decoding_flags writes come from DecodeOptions' declarations: every one is an export flag."""
    text = subprocess.run([sys.executable, "-m", "kdasr", "export", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, check=True).stdout
    flags = set(re.findall(r"--[a-z][a-z-]+", text))
    written = {flag for _, flag in logic._export_decoding()}
    assert {"--beam", "--ctc-weight", "--method"} <= written <= flags


def test_best_student_on_dev(tmp_path):
    for s, wer in (("baseline", 12.5), ("kd-lm-0.1", 11.0), ("kd-bert-context-0.3", 11.0)):
        (tmp_path / s).mkdir()
        (tmp_path / s / "dev.json").write_text(json.dumps({"system": s, "wer": wer, "cer": 5.0}))
    assert logic.best_student(tmp_path, ["baseline", "kd-lm-0.1", "kd-bert-context-0.3"]) == "kd-lm-0.1"
    assert logic.best_student(tmp_path, ["baseline", "kd-bert-context-0.3", "kd-lm-0.1"]) == "kd-bert-context-0.3"
    with pytest.raises(RecipeError, match="no dev result for kd-bert-0.1: run the decode stage first"):
        logic.best_student(tmp_path, ["baseline", "kd-bert-0.1"])


def test_table_rows_and_paper_rows(tmp_path):
    students = ["baseline", "kd-lm-0.1", "kd-bert-0.1", "kd-bert-context-0.3"]
    assert logic.paper_args(students) == ["--paper", "kd-bert-0.1=bert-utterance",
                                          "--paper", "kd-bert-context-0.3=bert-context"]
    rows = logic.table_systems(tmp_path, students[:2], ["lm", "bert"])
    assert [r[0] for r in rows] == ["baseline", "kd-lm-0.1", "baseline+fusion", "baseline+rescore-lm",
                                    "baseline+rescore-bert"]
    assert rows[3] == ("baseline+rescore-lm", tmp_path / "models" / "baseline", tmp_path / "tune" / "rescore-lm.json")


def _wav(path: Path, freq: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / 16000)))
                               for i in range(1600)))


def test_set_fingerprint_covers_the_manifest_and_its_audio(tmp_path):
    (tmp_path / "audio").mkdir()
    _wav(tmp_path / "audio" / "a.wav", 440)
    _wav(tmp_path / "audio" / "b.wav", 660)
    m = tmp_path / "dev.jsonl"
    m.write_text("".join(json.dumps({"id": i, "audio": f"audio/{i}.wav", "text": "hello", "duration": 0.1}) + "\n"
                         for i in ("a", "b")))
    first = logic.set_fingerprint(m)
    assert re.fullmatch(r"[0-9a-f]{40}", first) and logic.set_fingerprint(m) == first
    _wav(tmp_path / "audio" / "b.wav", 880)  # same manifest, other audio
    assert logic.set_fingerprint(m) != first


def test_wall_times(tmp_path):
    times, info = tmp_path / "times", tmp_path / "build_info.json"
    stages = ["corpus", "prep", "quality", "students", "table"]
    assert logic.wall_times(times, info, stages, cores=2, cpu="CPU X") == ""
    times.mkdir()
    (times / "prep").write_text("7260\n")
    (times / "students").write_text("1830\n")
    (times / "unlisted").write_text("600\n")
    assert logic.wall_times(times, info, stages, cores=2, cpu="CPU X") == \
        " Wall time in minutes on 2 cores of CPU X: prep 121, students 30; total 152."
    info.write_text(json.dumps({"synthesis_seconds": 5400}))
    assert logic.wall_times(times, info, stages, cores=2, cpu="CPU X") == \
        " Wall time in minutes on 2 cores of CPU X: corpus 90, prep 121, students 30; total 242."


def test_protocol_text_is_the_one_recipe_sh_wrote():
    """The tiny recipe's protocol.txt as eval/recipe.sh wrote it (branched protocol, from scratch)."""
    assert logic.protocol_text(from_env(TINY_ENV), "") == (
        "Every student starts from random weights (seed 0) with one seed and data order. The baseline (CE) trained "
        "to epoch 2; the KD students branched from its epoch-1 checkpoint (weights, Adam state, schedule, data "
        "order: only the loss differs) and trained to epoch 2 too. Lambda chosen per mode among 0.1 0.3 on the "
        "first 4 dev utterances after 1 branch epochs. Every system's decoding tuned on the first 4 dev utterances "
        "only (eval/recipe.sh). Students' forward pass: fp32.")
    together = from_env({**TINY_ENV, "WARM_START": "export/demo-en-v1", "WARM": "0", "SWEEP": "0",
                         "STUDENT_AMP": "bf16", "PROTOCOL_NOTE": "Resumed once.", "KD_LAMBDA_WHY": ""})
    text = logic.protocol_text(together, " Wall time ...")
    assert text.startswith("Every student (the CE baseline and the KD students alike) starts from "
                           "export/demo-en-v1's weights with one seed and data order and trains to epoch 2: only")
    assert "not tuned in this run: lm=0.1 bert=0.1 bert-context=0.3. Every" in text  # KD_LAMBDA_WHY= : no reason
    assert text.endswith("Students' forward pass: bf16 autocast. Resumed once. Wall time ...")


def test_settings_defaults_like_recipe_sh(tmp_path):
    s = from_env({"TEACHER_AMP": "none", "EXP": str(tmp_path)})
    assert s.tok == Path("export/demo-en-v1/tokenizer.model") and s.teachers_from == "export/teachers"
    assert s.th() == ["--threads", "1"] and s.together and s.plot_out == Path("eval/reports/paper-table.png")
    assert s.student_amp == "none" and s.kd_modes == ["lm", "bert", "bert-context"] and s.launch == s.kdasr
    (tmp_path / "student_amp").write_text("bf16\n")  # sticky: kept in EXP by an earlier run
    empty = from_env({"TEACHER_AMP": "none", "EXP": str(tmp_path), "WARM_START": "", "THREADS": "", "DATA": "d",
                      "KDASR": "python3 -m kdasr", "BERT_STEPS": "20", "TABLE_OUT": "r/t.md"})
    assert empty.student_amp == "bf16" and empty.init() == [] and empty.th() == []  # `${X-d}`: empty is a value
    assert empty.tok == Path("d/tokenizer.model") and empty.teachers_from == ""  # not data/v2: nothing to adopt
    assert empty.kdasr == ["python3", "-m", "kdasr"] and empty.bert_budget == ["--steps", "20"]
    assert empty.plot_out == Path("r/t.png")
    with pytest.raises(RecipeError, match="EPOCHS='two': not a whole number"):
        from_env({"TEACHER_AMP": "none", "EPOCHS": "two"})


def test_fusion_and_rescoring_tune_flags_are_shared_with_the_paper_recipe(tmp_path):
    tuned = tmp_path / "ce@s1.json"
    tuned.write_text(json.dumps({"decoding": {"beam": 1, "ctc_weight": 0.3}}))
    search = logic.baseline_search(tuned, 4)
    assert search == ["--set", "beam=4", "--set", "ctc_weight=0.3"]
    lm = tmp_path / "teachers"
    assert logic.alternative_args("fusion", lm, search, 4, "0.1,0.3", "0", "1") == [
        "--lm", str(lm), *search, "--grid", "lm_weight=0.1,0.3", "--grid", "length_bonus=0"]
    assert logic.alternative_args("rescore-bert", lm, search, 4, "", "", "0.1,0.5") == [
        "--lm", str(lm), *search, "--set", "nbest=4", "--set", "rescore=bert", "--grid", "rescore_weight=0.1,0.5"]
    assert logic.scorer_file(lm, "rescore-bert") == lm / "bert.json"
    assert logic.scorer_file(lm, "fusion") == logic.scorer_file(lm, "rescore-lm") == lm / "lm.json"
    with pytest.raises(RecipeError, match="unknown alternative 'rescore'"):
        logic.alternative_args("rescore", lm, search, 4, "", "", "0.1")

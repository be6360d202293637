"""kdasr claim-verdicts: the paper's claims judged from a real claim-table JSON (kdasr.reports.claim_table
build_claim over records written by the real record writer from real jiwer scores, as test_claim_table
builds them) whose systems have designed error patterns: one comparison clearly holds, one is clearly
contradicted, one is not resolved, one holds on one set and is contradicted on another; a system without
records; the inference cost from a bench JSON written by the bench's own record classes; what was tried
from a choices file; bad files named in one line; the command torch-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_kdasr
from test_claim_table import _ce_errors, _write
from test_torch_free import BLOCKER

from kdasr.errors import KdasrError
from kdasr.reports.claim_table import ClaimConfig, build_claim, load_seeded
from kdasr.reports.claim_verdicts import (
    HOLDS,
    NOT,
    OPEN,
    UNMEASURED,
    Roles,
    build_verdicts,
    load_bench,
    load_choices,
    load_table,
)

N = 40
SETS = ("test", "test_heldout")


def _errors(system: str, set_name: str, seed: int) -> list[int]:
    """Word errors per utterance: ce 1-3 everywhere; BERT utterance one fewer (clearly better than ce);
    context as many as ce (clearly worse than utterance); the smoothing control as utterance, one more
    on a quarter of the utterances and one fewer on another quarter (no clear difference); fusion two
    fewer than ce (clearly better than KD); KD + fusion better than ce + fusion on test, worse on
    test_heldout (contradictory)."""
    ce = _ce_errors(N, seed)
    utt = [e - 1 for e in ce]
    if system == "bert-utterance":
        return utt
    if system == "smoothing-control":
        return [e + 1 if i % 4 == 0 else max(e - 1, 0) if i % 4 == 2 else e for i, e in enumerate(utt)]
    if system == "ce+fusion":
        return [max(e - 2, 0) + (i % 5 == 0) for i, e in enumerate(ce)]
    if system == "bert-utterance+fusion":
        fused = _errors("ce+fusion", set_name, seed)
        return [max(e - 1, 0) for e in fused] if set_name == "test" else [e + 1 for e in fused]
    return ce  # ce, bert-context, ce+rescore-lm


SYSTEMS = ("ce", "smoothing-control", "bert-utterance", "bert-context", "ce+fusion", "ce+rescore-lm",
           "bert-utterance+fusion")  # no lm-kd, no rescore-bert: not measured


def _table(folder: Path, systems=SYSTEMS, sets=SETS) -> Path:
    """The claim-table JSON (the real build_claim) of the designed systems, 3 seeds, 2 sets."""
    res = folder / "results"
    res.mkdir(parents=True)
    for set_name in SETS:
        for system in systems:
            for seed in (1, 2, 3):
                _write(res, f"{system}@s{seed}", set_name, _errors(system, set_name, seed))
    claim = build_claim(load_seeded([res]), ClaimConfig("ce", sets, systems, resamples=1000))
    path = folder / "claim-test.json"
    path.write_text(json.dumps(claim.doc))
    return path


def _bench(path: Path, latency: dict[str, float]) -> Path:
    """A bench JSON written by the bench's own record classes (SystemsBench.to_json) with given p50
    latencies at batch 1 (ms); one seed's systems, named as the claim recipe names them."""
    from kdasr.reports.bench import machine_info
    from kdasr.reports.bench_systems import NOT_RUN, ModeStats, SystemRecord, SystemsBench

    def row(name: str, ms: float) -> SystemRecord:
        return SystemRecord(name, "m", None, None, {"beam": 4}, ModeStats(3000 / ms, ms / 1000, ms / 1000, ms, ms, ms),
                            NOT_RUN, 10.0, 5.0)

    b = SystemsBench("now", "kdasr bench ...", "", machine_info(), "data/test.jsonl", 32, 96.0, 1, 2,
                     tuple(row(f"{n}@s1", ms) for n, ms in latency.items()), "ce@s1", "batch 1")
    path.write_text(json.dumps(b.to_json()))
    return path


CHOICES = {
    "protocol": "claim-v1", "evidence": "dev only", "dev_set": "dev-all", "dev_manifests": ["data/mix/dev.jsonl"],
    "tk": {"system": "bert-utterance", "seed": 1, "steps": 600, "kd_weight": 0.3,
           "chosen": {"temperature": 2.0, "top_k": 8},
           "points": [{"temperature": t, "top_k": k, "dev_wer": 20 + abs(t - 2) + k / 100} for t in (1.0, 2.0)
                      for k in (8, 32)]},
    "lambda": {"bert-utterance": {"chosen": 0.1, "points": [{"kd_weight": 0.1, "dev_wer": 20.5},
                                                            {"kd_weight": 0.3, "dev_wer": 21.0}]}},
    "same_lambda": [{"kd_weight": 0.3, "dev_wer": {"bert-utterance": 21.0, "bert-context": 21.4}}],
    "label_smoothing": {"smoothing-control": {"epsilon": 0.31234, "soft_labels": "bert-t2-k8"}},
    "alternatives": {"best_kd": {"chosen": "bert-utterance",
                                 "mean_dev_wer": {"bert-utterance": 20.1, "bert-context": 20.9}}},
}


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return _table(tmp_path_factory.mktemp("verdicts"))


def _claims(v) -> dict:
    return {c["id"]: c for c in v.doc["claims"]}


def test_verdicts_are_read_from_the_intervals(table):
    doc = load_table(table)
    v = build_verdicts(doc, Roles(), choices=CHOICES)
    c = _claims(v)
    pairs = {(p["a"], p["b"]): p for p in doc["comparisons"]["test"]}
    # claim 1 holds: the interval lies below 0 on both sets, and the verdict carries its numbers
    one = c["1"]["parts"][0]
    assert (one["a"], one["b"], one["overall"], c["1"]["verdict"]) == ("bert-utterance", "ce", HOLDS, HOLDS)
    assert one["sets"]["test"]["high"] == pairs[("bert-utterance", "ce")]["high"] < 0
    # claim 2 does not hold: context is clearly worse than utterance
    assert c["2"]["verdict"] == NOT and all(s["verdict"] == NOT and s["low"] > 0 for s in c["2"]["parts"][0]["sets"]
                                            .values())
    # claim 4: utterance vs the smoothing control is not resolved, context vs it does not hold -> does not hold
    utt, ctx = c["4"]["parts"]
    low, high = pairs[("bert-utterance", "smoothing-control")]["low"], pairs[("bert-utterance", "smoothing-control")][
        "high"]
    assert low < 0 < high and utt["sets"]["test"]["verdict"] == OPEN and utt["overall"] == OPEN
    assert ctx["overall"] == NOT and c["4"]["verdict"] == NOT
    # claim 3: no LM-KD records -> not measured, no error; the BERT variant chosen on dev and named
    assert c["3"]["verdict"] == UNMEASURED and c["3"]["parts"][0]["why"] == "no record of lm-kd"
    assert "bert-utterance vs lm-kd" in c["3"]["note"] and "lower mean dev WER (20.10" in c["3"]["note"]
    # claim 6: fusion clearly beats KD (does not hold); rescoring-LM does not (holds); rescore-bert not measured
    fusion, lm, bert = c["6"]["parts"]
    assert (fusion["overall"], lm["overall"], bert["overall"]) == (NOT, HOLDS, UNMEASURED)
    assert c["6"]["verdict"] == NOT and "ce+rescore-bert" in c["6"]["verdict_note"]
    # claim 7: KD + fusion better than ce + fusion on test, worse on test_heldout: contradictory
    seven = c["7"]["parts"][0]
    assert (seven["sets"]["test"]["verdict"], seven["sets"]["test_heldout"]["verdict"]) == (HOLDS, NOT)
    assert c["7"]["verdict"] == OPEN and "(contradictory)" in seven["why"]
    assert c["5"]["verdict"] == UNMEASURED and "no bench JSON" in c["5"]["note"]
    assert v.doc["summary"] == {HOLDS: ["1"], NOT: ["2", "4", "6"], OPEN: ["7"], UNMEASURED: ["3", "5"]}

    md = v.markdown
    section = md.split("## Which of the paper's claims hold on our data")[1].split("## What was tried")[0]
    assert "- **Claim 1: BERT-KD (utterance) lowers WER against the CE baseline.** Overall: **holds**." in section
    assert "- **Claim 3: BERT-KD beats LM-KD.** Overall: **not measured** (" in section
    assert "no record of lm-kd" in section.split("Claim 3")[1].split("\n")[0]
    one_set = pairs[("bert-utterance", "ce")]
    assert f"test **holds** {one_set['change']:+.1f} % [{one_set['low']:+.1f}, {one_set['high']:+.1f}]".replace(
        "-", "−") in section
    assert "Rule: On one test set" in section and "more than half" in section
    assert "In short: holds: claim 1; does not hold: claims 2, 4, 6; not resolved: claim 7; not measured: claims " \
           "3, 5." in md
    json.dumps(v.doc, allow_nan=False)


def test_what_was_tried_comes_from_the_choices_file(table):
    v = build_verdicts(load_table(table), Roles(), choices=CHOICES)
    tried = v.markdown.split("## What was tried")[1]
    assert "- T and K swept on dev: T ∈ {1, 2} × K ∈ {8, 32}, with bert-utterance at λ 0.3, seed 1, 600 steps" \
        in tried and "chosen T = 2, K = 8." in tried
    assert "- λ of bert-utterance swept on dev over {0.1, 0.3} (dev WER per λ: 0.1: 20.50, 0.3: 21.00); chosen λ = " \
           "0.1." in tried
    assert "- Utterance and context BERT-KD at the same λ 0.3, dev WER: bert-utterance 21.00, bert-context 21.40." \
        in tried
    assert "- Smoothing control smoothing-control: label smoothing ε = 0.3123" in tried
    assert "- Best KD student for the alternatives: bert-utterance (mean dev WER over seeds: bert-utterance 20.10" \
        in tried
    assert "ce (baseline), seeds 1, 2, 3" in tried and "ce+fusion, seeds 1, 2, 3" in tried
    bare = build_verdicts(load_table(table), Roles()).markdown.split("## What was tried")[1]
    assert "No choices file given (--choices)" in bare and "T and K swept" not in bare
    # without a choices file the KD student is the one non-baseline student of the alternatives
    assert "KD student: bert-utterance (the one student besides the baseline" in build_verdicts(
        load_table(table), Roles()).markdown


def test_inference_cost_from_the_bench(table, tmp_path):
    cheap = {"ce": 100.0, "ce+fusion": 250.0, "ce+rescore-lm": 180.0, "bert-utterance": 104.0,
             "bert-utterance+fusion": 260.0}
    v = build_verdicts(load_table(table), Roles(), load_bench(_bench(tmp_path / "b.json", cheap)), CHOICES)
    five = _claims(v)["5"]
    kd, *alts = five["parts"]
    assert (kd["label"], kd["expect"]) == ("bert-utterance vs ce", "no cost") and kd["ratio"] == pytest.approx(1.04)
    assert kd["overall"] == HOLDS and "104 vs 100 ms, ×1.04" in kd["why"]
    assert [(p["label"], round(p["ratio"], 2)) for p in alts] == [
        ("ce+fusion vs ce", 2.5), ("ce+rescore-lm vs ce", 1.8), ("bert-utterance+fusion vs bert-utterance", 2.5)]
    assert five["verdict"] == HOLDS and "above 1.10 counts as a cost" in five["note"]
    slow_kd = {**cheap, "bert-utterance": 130.0, "bert-utterance+fusion": 135.0}  # KD slower; its fusion free
    five = _claims(build_verdicts(load_table(table), Roles(), load_bench(_bench(tmp_path / "s.json", slow_kd)),
                                  CHOICES))["5"]
    assert five["parts"][0]["overall"] == NOT and five["parts"][-1]["overall"] == NOT and five["verdict"] == NOT
    no_kd = {k: ms for k, ms in cheap.items() if not k.startswith("bert")}
    five = _claims(build_verdicts(load_table(table), Roles(), load_bench(_bench(tmp_path / "n.json", no_kd)),
                                  CHOICES))["5"]
    assert five["parts"][0]["overall"] == UNMEASURED and "no record of bert-utterance" in five["parts"][0]["why"]
    assert five["verdict"] == UNMEASURED and "the KD student's cost: the bench has no record of bert-utterance" \
        in five["note"]


def test_a_table_without_a_system_says_not_measured(tmp_path):
    doc = load_table(_table(tmp_path, ("ce", "bert-utterance"), (*SETS, "test_real")))  # test_real: no records
    v = build_verdicts(doc, Roles())
    c = _claims(v)
    one = c["1"]["parts"][0]
    assert c["1"]["verdict"] == HOLDS and one["sets"]["test_real"]["verdict"] is None
    assert one["why"] == "holds on 2, does not hold on 0, not resolved on 0 of 2 sets"  # test_real left out
    assert "; test_real: no interval" in v.markdown
    assert c["2"]["verdict"] == UNMEASURED and c["2"]["verdict_note"] == "no record of bert-context"
    assert c["6"]["verdict"] == UNMEASURED and "no best-kd" in c["6"]["note"]
    renamed = build_verdicts(doc, Roles(utterance="ce", baseline="bert-utterance"))  # roles from the protocol
    assert _claims(renamed)["1"]["verdict"] == NOT


def test_bad_inputs_are_named_in_one_line(tmp_path, table):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(KdasrError, match=rf"^{bad}: not JSON"):
        load_table(bad)
    bad.write_text(json.dumps({"kdasr_bench": 1, "systems": []}))
    with pytest.raises(KdasrError, match=rf"^{bad}: not a claim-table JSON \(no 'kdasr_claim_table' key"):
        load_table(bad)
    bad.write_text(json.dumps({"kdasr_claim_table": 1, "sets": ["test"], "systems": [{"system": "ce"}],
                               "comparisons": {}}))
    with pytest.raises(KdasrError, match=rf"^{bad}: not a claim-table JSON \(its 'sets', 'systems'"):
        load_table(bad)
    with pytest.raises(KdasrError, match=rf"^{table}: not a bench JSON"):
        load_bench(table)
    bad.write_text("[1, 2]")
    with pytest.raises(KdasrError, match=rf"^{bad}: not a choices file"):
        load_choices(bad)


@pytest.mark.slow  # three subprocesses
def test_claim_verdicts_command_without_torch(table, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)  # torch fails to import
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = "import kdasr.reports.claim_verdicts, kdasr.cli.claim; print('imported'); import torch"
    check = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    assert check.stdout.strip() == "imported" and "torch is blocked" in check.stderr, check.stderr
    choices = tmp_path / "choices.json"
    choices.write_text(json.dumps(CHOICES))
    bench = _bench(tmp_path / "bench.json", {"ce": 100.0, "ce+fusion": 250.0, "bert-utterance": 101.0})
    out, js = tmp_path / "report" / "verdicts.md", tmp_path / "report" / "verdicts.json"
    out.parent.mkdir()
    proc = run_kdasr("claim-verdicts", str(table), "--bench", str(bench), "--choices", str(choices), "--out", str(out),
                     "--json", str(js), env=env)
    assert proc.stdout.strip() == f"wrote {out} and {js}"
    md, doc = out.read_text(), json.loads(js.read_text())
    assert "## Which of the paper's claims hold on our data" in md and "## What was tried" in md
    assert doc["sources"] == {"claim_table": str(table), "bench": str(bench), "choices": str(choices)}
    assert doc["command"].startswith("kdasr claim-verdicts") and f"Generated by `{doc['command']}`" in md
    assert _claims_doc(doc)["1"]["verdict"] == HOLDS and _claims_doc(doc)["5"]["verdict"] == HOLDS

    bad = tmp_path / "bad.json"
    bad.write_text("not json at all")
    proc = run_kdasr("claim-verdicts", str(bad), "--out", str(out), env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {bad}: not JSON") and out.read_text() == md  # the old output kept
    proc = run_kdasr("claim-verdicts", str(table), "--choices", str(bench), "--bench", str(choices), "--out", str(out),
                     env=env, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {choices}: not a bench JSON")


def _claims_doc(doc: dict) -> dict:
    return {c["id"]: c for c in doc["claims"]}

"""kdasr claim-table: systems × training seeds from result records written by the real record writer
(kdasr.eval.results over real jiwer scores of synthetic transcripts; no model): WER mean ± sd over
seeds, pairwise intervals over seeds and utterances, the protocol block verbatim, '–' for missing
system/set combinations, the JSON beside the Markdown, and one-line errors naming the file."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_kdasr
from test_torch_free import BLOCKER

from kdasr.errors import KdasrError
from kdasr.eval.run import EvalReport
from kdasr.eval.wer import error_rates, utterance_scores
from kdasr.reports.claim_table import ClaimConfig, build_claim, load_seeded

VOCAB = "the quick brown fox jumps over a lazy dog while seven owls watch from old trees".split()
SIZES = {"dev": 30, "test": 40}
ORDER = ["ce", "kd", "smooth"]  # rows: the baseline, then first seen


def _refs(n):
    return [" ".join(VOCAB[(3 * i + j) % len(VOCAB)] for j in range(6 + i % 5)) for i in range(n)]


def _ce_errors(n, seed):
    return [1 + (7 * i + seed) % 3 for i in range(n)]  # at least one error everywhere


def _errors(system, n, seed):
    base = _ce_errors(n, seed)
    if system == "kd":
        return [e - 1 for e in base]  # one error fewer on every utterance, every seed
    if system == "smooth":
        return [e if (i + seed) % 2 else max(e - 1, 0) for i, e in enumerate(base)]
    return base


def _write(folder: Path, name: str, set_name: str, errors: list[int], drop: int = 0, stem: str = "",
           decoding: dict | None = None, **extra) -> Path:
    """A result record as `kdasr eval --json` writes it, from real WER scores: the first `e` words of
    utterance i's reference substituted."""
    refs = _refs(len(errors))
    hyps = [" ".join(["zzz"] * e + r.split()[e:]) for r, e in zip(refs, errors)]
    ids = [f"{set_name}-{i:03d}" for i in range(len(refs))]
    refs, hyps, ids = refs[drop:], hyps[drop:], ids[drop:]
    report = EvalReport(error_rates(refs, hyps), 0, 2.0 * len(refs), scores=utterance_scores(ids, refs, hyps))
    from kdasr.eval.results import result_record, write_result

    path = folder / f"{stem or name.replace('@', '-')}-{set_name}.json"
    write_result(path, result_record(name, Path(f"data/{set_name}.jsonl"), report, 1.0, 1,
                                     decoding=decoding or {"beam": 1}, **extra))
    return path


def _records(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for set_name, n in SIZES.items():
        for seed in (1, 2, 3):
            _write(folder, f"ce@s{seed}", set_name, _errors("ce", n, seed))
            _write(folder, f"kd@s{seed}", set_name, _errors("kd", n, seed))
    for seed in (1, 2):  # the smoothing control: seed as a field, test only (dev: '–')
        _write(folder, "smooth", "test", _errors("smooth", SIZES["test"], seed), stem=f"smooth-{seed}", seed=seed)
    (folder / "tune.points.json").write_text(json.dumps({"decoding": {}}))  # not a record: skipped
    return folder


def _wer(system, set_name, seed):
    n = SIZES[set_name]
    return 100 * sum(_errors(system, n, seed)) / sum(len(r.split()) for r in _refs(n))


def test_claim_table_rows_pairs_and_json(tmp_path):
    res = _records(tmp_path / "results")
    claim = build_claim(load_seeded([res]), ClaimConfig("ce", ("dev", "test", "test_real"), resamples=1000))
    md, doc = claim.markdown, claim.doc
    rows = {x.split(" | ")[0][2:]: x for x in md.split("## WER")[1].split("\n## ")[0].splitlines()
            if x.startswith("| ") and not x.startswith("| system")}
    ce = [_wer("ce", "test", k) for k in (1, 2, 3)]
    dev_mean = statistics.mean([_wer("ce", "dev", k) for k in (1, 2, 3)])
    assert rows["ce (baseline)"].startswith(f"| ce (baseline) | 3 | {dev_mean:.2f} ± ")
    assert f"{statistics.mean(ce):.2f} ± {statistics.stdev(ce):.2f}" in rows["ce (baseline)"]
    assert rows["smooth"].startswith("| smooth | 2 | – | ") and rows["smooth"].endswith(" | – |")  # dev, test_real
    test_ce = doc["systems"][0]["sets"]["test"]
    assert test_ce["mean"] == pytest.approx(statistics.mean(ce))
    assert test_ce["sd"] == pytest.approx(statistics.stdev(ce))
    assert test_ce["seeds"] == ["1", "2", "3"] and len(test_ce["files"]) == 3
    assert doc["systems"][2]["system"] == "smooth" and doc["systems"][2]["sets"]["dev"] is None

    # every pair, not only against the baseline; the clearly better one excludes 0
    test = md.split("## test (40 utterances)")[1].split("\n## ")[0]
    assert "| kd vs ce |" in test and "| smooth vs ce |" in test and "| smooth vs kd |" in test
    kd_ce = next(p for p in doc["comparisons"]["test"] if (p["a"], p["b"]) == ("kd", "ce"))
    assert kd_ce["high"] < 0 and kd_ce["excludes_zero"] and kd_ce["p_a_better"] == 1.0 and kd_ce["seeds"] == [3, 3]
    assert f"| kd vs ce | {kd_ce['change']:+.1f}".replace("-", "−") in test
    ce_kd = next(p for p in doc["comparisons"]["test"] if (p["a"], p["b"]) == ("ce", "kd"))
    assert ce_kd["low"] > 0 and ce_kd["p_a_better"] == 0.0
    dev_smooth = [p for p in doc["comparisons"]["dev"] if "smooth" in (p["a"], p["b"])]
    assert dev_smooth and all(p["change"] is None for p in dev_smooth)
    assert "| smooth vs ce | – | – |" in md.split("## dev (30 utterances)")[1].split("\n## ")[0]
    assert "## test_real\n\nNo records of this set." in md and doc["comparisons"]["test_real"] == []

    reading = md.split("## Reading")[1].split("Relative change =")[0]
    assert "- test: kd has a lower WER than ce:" in reading and "- dev: kd has a lower WER than ce:" in reading
    assert "3 × 3 seeds, 40 utterances" in reading and "1000 draws" in md.split("## Reading")[1]
    assert doc["reading"] == [x[2:] for x in reading.splitlines() if x.startswith("- ")]
    assert "- test: smooth has a higher WER than kd:" in reading  # pairs beside the baseline's
    assert len(doc["reading"]) == sum(p["excludes_zero"] is True and p["b"] in ORDER[:ORDER.index(p["a"])]
                                      for n in ("dev", "test") for p in doc["comparisons"][n])
    json.dumps(doc, allow_nan=False)  # plain JSON: no NaN


def test_records_that_cannot_be_compared_name_the_file(tmp_path):
    res = _records(tmp_path / "r")
    short = _write(tmp_path / "r", "kd@s4", "test", _errors("kd", SIZES["test"], 4), drop=1)
    with pytest.raises(KdasrError, match=rf"kd seed 4 \({short}\): lacks 1 of the 40 utterances"):
        build_claim(load_seeded([res]), ClaimConfig("ce"))
    short.unlink()
    twice = _write(tmp_path / "r", "kd@s3", "test", _errors("kd", SIZES["test"], 3), stem="zz-again")
    with pytest.raises(KdasrError, match=rf"{twice}: a second record of system 'kd', seed 3, on 'test'"):
        load_seeded([res])
    twice.unlink()
    clash = _write(tmp_path / "r", "kd@s5", "test", _errors("kd", SIZES["test"], 5), seed=6)
    with pytest.raises(KdasrError, match=rf"{clash}: system 'kd@s5' names seed 5 but the record's 'seed' is 6"):
        load_seeded([res])
    clash.unlink()
    lone = _write(tmp_path / "r", "kd", "test", _errors("kd", SIZES["test"], 5))
    with pytest.raises(KdasrError, match=rf"{lone}: no seed, while other records of 'kd' on 'test' have one"):
        load_seeded([res])
    doc = json.loads(lone.read_text())
    del doc["per_utterance"]
    lone.write_text(json.dumps({**doc, "system": "old"}))
    with pytest.raises(KdasrError, match=rf"{lone}: no per-utterance counts"):
        load_seeded([res])
    lone.unlink()
    with pytest.raises(KdasrError, match="baseline 'nobody' has no result record"):
        build_claim(load_seeded([res]), ClaimConfig("nobody"))


def test_one_seed_shows_no_sd(tmp_path):
    res = tmp_path / "one"
    res.mkdir()
    _write(res, "ce", "test", _errors("ce", 20, 1))  # no seed at all: one run
    _write(res, "kd@s1", "test", _errors("kd", 20, 1))
    claim = build_claim(load_seeded([res]), ClaimConfig("ce", resamples=1000))
    assert "| kd | 1 | " in claim.markdown and " ± – |" in claim.markdown
    assert claim.doc["systems"][1]["sets"]["test"]["sd"] is None


def test_seeds_tuned_apart_are_no_warning_but_a_run_decoded_two_ways_is(tmp_path):
    res = tmp_path / "tuned"
    res.mkdir()
    for set_name in ("dev", "test"):
        for seed, beam in ((1, 1), (2, 4)):  # each seed's own dev-chosen beam, the same on every set
            _write(res, f"ce@s{seed}", set_name, _errors("ce", 20, seed), decoding={"beam": beam})
    claim = build_claim(load_seeded([res]), ClaimConfig("ce", ("dev", "test"), resamples=200))
    assert "different settings" not in claim.markdown
    _write(res, "ce@s1", "test", _errors("ce", 20, 1), decoding={"beam": 8})  # seed 1's test decoded otherwise
    claim = build_claim(load_seeded([res]), ClaimConfig("ce", ("dev", "test"), resamples=200))
    assert "**Warning:** ce@s1 was decoded with different settings on different sets (dev; test)" in claim.markdown
    assert "ce@s2 was decoded" not in claim.markdown


@pytest.mark.slow  # four subprocesses
def test_claim_table_command_without_torch(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)  # the command is torch-free: torch fails to import
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = "import kdasr.reports.claim_table, kdasr.cli.claim; print('imported'); import torch"
    check = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    assert check.stdout.strip() == "imported", check.stderr  # torch-free ...
    assert check.returncode != 0 and "torch is blocked" in check.stderr  # ... and the blocker works
    res = _records(tmp_path / "results")
    protocol = tmp_path / "protocol.json"
    protocol.write_text('{"budget_steps": 4000, "seeds": [1, 2, 3],\n "note": "```fenced``` inside"}\n')
    out, js = tmp_path / "report" / "claim.md", tmp_path / "report" / "claim.json"
    proc = run_kdasr("claim-table", str(res), "--baseline", "ce", "--sets", "dev,test", "--protocol-block",
                     str(protocol), "--out", str(out), "--json", str(js), env=env)
    assert proc.stdout.strip() == f"wrote {out} and {js}"
    md, doc = out.read_text(), json.loads(js.read_text())
    assert "````json\n" + protocol.read_text() + "````\n" in md  # verbatim, in a fence longer than its own
    assert doc["protocol"] == protocol.read_text() and doc["sets"] == ["dev", "test"]
    assert "Generated by `kdasr claim-table" in md and doc["command"].startswith("kdasr claim-table")

    short = _write(res, "kd@s4", "test", _errors("kd", SIZES["test"], 4), drop=2)
    proc = run_kdasr("claim-table", str(res), "--baseline", "ce", "--out", str(out), env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and str(short) in proc.stderr and "lacks 2 of the 40" in proc.stderr
    short.unlink()
    proc = run_kdasr("claim-table", str(res), "--baseline", "ce", "--out", str(out), "--protocol-block",
                     str(tmp_path / "absent.json"), env=env, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {tmp_path / 'absent.json'}: cannot read")
    assert "Traceback" not in proc.stderr


def test_chosen_rows_set_the_order_of_each_pair(tmp_path):
    res = _records(tmp_path / "r")
    claim = build_claim(load_seeded([res]), ClaimConfig("ce", ("test",), ("smooth", "kd", "ghost"), resamples=1000))
    md = claim.markdown
    assert "| kd vs smooth |" in md and "| smooth vs kd |" not in md and "| smooth vs ce |" in md
    assert "| ghost | – | – |" in md and "**Warning:** no record of ghost." in md
    assert [s["system"] for s in claim.doc["systems"]] == ["ce", "smooth", "kd", "ghost"]
    only = build_claim(load_seeded([res]), ClaimConfig("ce", ("test",), ("kd",), resamples=1000))
    assert "smooth" not in only.markdown and "kd-s1-test.json`: kd, seed 1, on test" in only.markdown


def test_shares_of_draws_are_not_rounded_to_certainty():
    from kdasr.reports.claim_table import _p

    assert [_p(x) for x in (0.0, 0.0005, 0.25, 0.9995, 1.0)] == ["0.000", "< 0.001", "0.250", "> 0.999", "1.000"]

"""The claim recipe (`kdasr recipe claim`, issue 28) end to end on the session's toy corpus: a protocol
with 2 seeds, 3 systems (CE, the entropy-matched smoothing control, BERT-utterance KD), a 1-point T/K
grid and a 2-point λ grid, students of a few steps, random tiny teachers (as test_tune builds them), and
one inference-time alternative (LM rescoring, a 2-point weight grid) on the baseline and the best KD
student. Checks that every choice is made on dev and says so, that every system × seed (alternatives
included) has a test record, that the table carries the protocol block and the pairwise rows, that the
bench puts each alternative beside its student, that an edited protocol stops the test and table stages
in one line until its change is recorded, and that a rerun does nothing. Real subprocesses throughout: the
recipe's ~60 kdasr commands are forked by a warm launcher (tests/warm_kdasr.py: $KDASR), each its own process
that does not import torch and onnx again."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import save_random_bert, save_random_lm
from warm_kdasr import warm_kdasr

from kdasr.recipe import claim_logic, stage_times
from kdasr.spec.protocol import read_protocol

TIMEOUT = 900
WORK = re.compile(r"\] (train |soft labels|eval |tune |claim table|claim verdicts|learning curves|export teachers|"
                  r"bench )")
SYSTEMS = ("ce", "smooth", "bert")
SEEDS = (1, 2)


def _protocol(corpus: Path, teachers: Path, beam: str = "1, 2") -> str:
    return textwrap.dedent(f"""\
        name = "toy-claim"
        seeds = [1, 2]
        dev_manifests = ["{corpus / 'dev.jsonl'}"]
        test_sets = ["test"]

        [budget]
        steps = 4
        threads = 1

        [setup]
        train = "{corpus / 'train.jsonl'}"
        dev = "{corpus / 'dev.jsonl'}"
        config = "tiny"
        tokenizer = "{corpus / 'tokenizer.model'}"
        bert_teacher = "{teachers / 'bert'}"
        lm_teacher = "{teachers / 'lm'}"
        test_dir = "{corpus}"
        sweep_steps = 2
        dev_limit = 3

        [soft_labels]
        temperature = [2]
        top_k = [4]
        kd_smoothing = 0.1

        [decoding]
        beam = [{beam}]

        [[system]]
        name = "ce"
        kd = "none"
        label_smoothing = 0.1

        [[system]]
        name = "smooth"
        kd = "none"
        label_smoothing = "entropy-matched"

        [[system]]
        name = "bert"
        kd = "bert"
        label_smoothing = 0.1
        kd_weight = [0.1, 0.3]

        [alternatives]
        methods = ["rescore-lm"]
        on = ["ce", "best-kd"]
        rescore_weight = [0.1, 0.5]
        nbest = 2
        bench_limit = 2
        """)


def _teachers(corpus: Path, root: Path) -> None:
    """A random tiny LM and BERT on the corpus's units (as test_tune.model_with_teachers)."""
    from kdasr.text import Tokenizer

    tok = Tokenizer(corpus / "tokenizer.model")
    # max_len: the untrained students' looping hypotheses run past 128 units, and LM rescoring scores them whole
    save_random_lm(tok, root / "lm", d_model=16, layers=1, max_len=1024)
    save_random_bert(tok, root / "bert", hidden=16, layers=1, ff_dim=32)


def _run(env: dict, protocol: Path, exp: Path, *stages: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kdasr", "recipe", "claim", "--protocol", str(protocol),
                           "--exp", str(exp), *stages], env=env, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def claim(tiny_corpus, tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("claim")  # no 'test' in the folder names: kdasr tune refuses those
    _teachers(tiny_corpus, root / "teachers")
    protocol = root / "protocol.toml"
    protocol.write_text(_protocol(tiny_corpus, root / "teachers"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "JOBS": "2"}
    with warm_kdasr(root, env) as kdasr:
        env["KDASR"] = kdasr
        t0 = time.time()
        first = _run(env, protocol, root / "exp")
        wall = time.time() - t0
        assert first.returncode == 0, f"{first.stdout}\n{first.stderr}"
        print(f"toy claim recipe: {wall:.0f} s wall")
        yield {"root": root, "exp": root / "exp", "protocol": protocol, "env": env, "corpus": tiny_corpus,
               "first": first}


def test_every_choice_is_made_on_dev_and_says_so(claim):
    exp = claim["exp"]
    choices = json.loads((exp / "choices.json").read_text())
    assert choices["evidence"] == "dev only" and choices["dev_set"] == "dev-all"
    assert "dev WER" in choices["metric"] and choices["fingerprint"] == read_protocol(claim["protocol"]).fingerprint
    points = [*choices["tk"]["points"], *choices["lambda"]["bert"]["points"]]
    for q in points:  # every number a choice rests on is a dev record, of the pooled dev manifests
        record = json.loads(Path(q["record"]).read_text())
        assert record["set"] == "dev-all" and Path(record["manifest"]) == exp / "dev" / "dev-all.jsonl"
        assert record["utterances"] == 3  # setup.dev_limit
        assert q["dev_wer"] == record["wer"] and Path(q["run"]).parent == exp / "sweep"
    assert choices["tk"]["chosen"] == {"temperature": 2.0, "top_k": 4} and choices["tk"]["kd_weight"] == 0.3
    lam = {q["kd_weight"]: q["dev_wer"] for q in choices["lambda"]["bert"]["points"]}
    assert choices["lambda"]["bert"]["chosen"] == min((0.1, 0.3), key=lambda x: (lam[x], x))
    # the T/K point (middle λ 0.3) is the λ sweep's 0.3 point: one run, not two
    assert len(list((exp / "sweep").glob("*/done.json"))) == 2
    eps = choices["label_smoothing"]["smooth"]["epsilon"]
    stats = json.loads(Path(choices["label_smoothing"]["smooth"]["stats"]).read_text())
    assert eps == stats["matched_label_smoothing"] and 0 < eps < 1 and stats["top_k"] == 4
    argv = json.loads((exp / "students" / "smooth" / "s2" / "done.json").read_text())["argv"]
    assert argv[argv.index("--label-smoothing") + 1] == f"{eps:g}" and "--kd" not in argv
    argv = json.loads((exp / "students" / "bert" / "s1" / "done.json").read_text())["argv"]
    assert argv[argv.index("--kd-weight") + 1] == f"{choices['lambda']['bert']['chosen']:g}"
    assert argv[argv.index("--max-steps") + 1] == "4" and argv[argv.index("--seed") + 1] == "1"
    assert argv[argv.index("--soft-labels") + 1].endswith("soft/bert-t2-k4")


def test_every_system_and_seed_has_its_records_and_the_table_its_protocol(claim):
    exp = claim["exp"]
    for system in SYSTEMS:
        for seed in SEEDS:
            for set_name in ("test", "dev"):
                record = json.loads((exp / "results" / f"{system}@s{seed}" / f"{set_name}.json").read_text())
                assert record["system"] == f"{system}@s{seed}" and record["set"] == set_name
            tuned = json.loads((exp / "tune" / f"{system}@s{seed}.json").read_text())
            assert tuned["tuned_on"]["set"] == "dev-all" and tuned["tuned_on"]["utterances"] == 3
    table = (exp / "report" / "claim-test.md").read_text()
    assert "### Protocol `toy-claim`" in table and "Choices made on dev only" in table
    assert "- Students: 3 systems × 2 seeds = 6 runs × 4 steps = 24 optimiser steps" in table
    assert "Wall time actually spent" in table and "Changes since the protocol was fixed: none." in table
    assert re.search(r"- Teacher passes over the train set .*: bert-t2-k4 [\d.]+ min \(\d+ utterances, 1 run\(s\)\)",
                     table)
    for pair in ("smooth vs ce", "bert vs ce", "bert vs smooth"):
        assert re.search(rf"^\| {pair} \| ", table, re.M), pair
    assert "| ce (baseline) | 2 |" in table
    assert "## dev (" in (exp / "report" / "claim-dev.md").read_text()
    assert (exp / "report" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    runs = {line.split(",")[0] for line in (exp / "report" / "curves.csv").read_text().splitlines()[1:]}
    assert len(runs) == 6  # every seed's learning curve
    assert (exp / "report" / "loss-curves.png").read_bytes()[:4] == b"\x89PNG"
    losses = (exp / "report" / "loss-curves.csv").read_text().splitlines()[1:]
    assert {tuple(line.split(",")[:2]) for line in losses} == {(s, f"s{seed}") for s in SYSTEMS for seed in SEEDS}
    assert (exp / "logs" / "students-bert-s2.log").is_file()


def test_the_alternatives_are_tuned_on_dev_per_seed_tested_tabled_and_benched(claim):
    exp = claim["exp"]
    best = json.loads((exp / "choices.json").read_text())["alternatives"]["best_kd"]
    assert best["chosen"] == "bert" and "word-weighted" in best["metric"]
    for seed in SEEDS:  # best-kd's evidence: the tune stage's dev records, word-weighted
        dev = json.loads((exp / "results" / f"bert@s{seed}" / "dev.json").read_text())
        assert best["dev_wer"]["bert"][str(seed)] == pytest.approx(100 * dev["word_errors"] / dev["words"])
    assert sorted(p.name for p in (exp / "models" / "teachers").glob("*.json")) == ["lm.json"]  # no BERT needed
    for student in ("ce", "bert"):
        for seed in SEEDS:
            label = f"{student}+rescore-lm@s{seed}"
            tuned = json.loads((exp / "tune" / f"{label}.json").read_text())
            plain = json.loads((exp / "tune" / f"{student}@s{seed}.json").read_text())["decoding"]
            assert tuned["tuned_on"]["set"] == "dev-all" and tuned["tuned_on"]["utterances"] == 3
            assert tuned["points"] == 2 and Path(tuned["lm"]) == exp / "models" / "teachers"
            d = tuned["decoding"]
            assert (d["rescore"], d["nbest"], d["rescore_weight"] in (0.1, 0.5)) == ("lm", 2, True)
            assert (d["beam"], d["ctc_weight"]) == (max(plain["beam"], 2), plain["ctc_weight"])  # its student's
            for set_name in ("test", "dev"):
                record = json.loads((exp / "results" / label / f"{set_name}.json").read_text())
                assert record["system"] == label and record["decoding"]["rescore"] == "lm"
    table = (exp / "report" / "claim-test.md").read_text()
    assert "| ce+rescore-lm | 2 |" in table and "| bert+rescore-lm | 2 |" in table
    for pair in ("ce+rescore-lm vs ce", "bert+rescore-lm vs bert", "bert+rescore-lm vs ce+rescore-lm"):
        assert re.search(rf"^\| {re.escape(pair)} \| ", table, re.M), pair
    assert "Best KD student (the alternatives' best-kd): bert" in table and "([bench.md](bench.md): one" in table
    assert re.search(r"^\| bert\+rescore-lm@s1 \| beam 2, LM rescoring 0\.[15] \| ", table, re.M)  # the bench's row
    assert "| ce+rescore-lm | 2 |" in (exp / "report" / "claim-dev.md").read_text()
    bench = json.loads((exp / "report" / "bench.json").read_text())
    assert [s["name"] for s in bench["systems"]] == ["ce@s1", "ce+rescore-lm@s1", "bert@s1", "bert+rescore-lm@s1"]
    assert bench["utterances"] == 2 and bench["manifest"] == str(claim["corpus"] / "test.jsonl")
    assert "ce+rescore-lm@s1" in (exp / "report" / "bench.md").read_text()


def test_the_verdicts_name_the_protocols_systems_by_their_role(claim):
    exp = claim["exp"]
    verdicts = json.loads((exp / "report" / "verdicts.json").read_text())
    assert verdicts["sources"] == {"claim_table": str(exp / "report" / "claim-test.json"),
                                   "bench": str(exp / "report" / "bench.json"), "choices": str(exp / "choices.json")}
    assert (verdicts["roles"]["smoothing"], verdicts["roles"]["utterance"]) == ("smooth", "bert")
    claims = {c["id"]: c for c in verdicts["claims"]}
    assert [p["label"] for p in claims["1"]["parts"]] == ["bert vs ce"] and claims["1"]["parts"][0]["sets"]["test"]
    assert claims["3"]["verdict"] == "not measured"  # no LM-KD system in this protocol
    assert [(p["label"], p["expect"]) for p in claims["5"]["parts"]] == [
        ("bert vs ce", "no cost"), ("ce+rescore-lm vs ce", "a cost"), ("bert+rescore-lm vs bert", "a cost")]
    md = (exp / "report" / "verdicts.md").read_text()
    assert "## Which of the paper's claims hold on our data" in md and "## What was tried" in md
    assert "- λ of bert swept on dev over {0.1, 0.3}" in md and "Smoothing control smooth: label smoothing ε" in md


def test_a_rerun_does_nothing_but_keep_the_report(claim):
    kept = claim["root"] / "kept"
    again = _run(claim["env"], claim["protocol"], claim["exp"], "--keep", str(kept))
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert not WORK.search(again.stdout), again.stdout
    assert f"report files in {kept}" in again.stdout
    for name in ("claim-test.md", "claim-dev.json", "verdicts.md", "bench.md", "protocol.md", "curves.png",
                 "loss-curves.png", "protocol.toml", "protocol.lock.json", "choices.json", "times.json"):
        assert (kept / name).is_file(), name
    assert (kept / "claim-test.md").read_bytes() == (claim["exp"] / "report" / "claim-test.md").read_bytes()


def test_an_edited_protocol_stops_test_and_table_until_the_change_is_recorded(claim):
    exp, protocol, env = claim["exp"], claim["protocol"], claim["env"]
    frozen = json.loads((exp / "protocol.lock.json").read_text())["fingerprint"]
    before = (exp / "report" / "claim-test.md").read_text()
    protocol.write_text(_protocol(claim["corpus"], claim["root"] / "teachers", beam="1, 3"))
    for stage in ("test", "table"):
        refused = _run(env, protocol, exp, stage)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
        assert f"stage {stage}: " in refused.stderr and f'record the change as a [[change]] with from = "{frozen}"' \
            in refused.stderr and "Traceback" not in refused.stderr
    assert (exp / "report" / "claim-test.md").read_text() == before
    protocol.write_text(protocol.read_text() + textwrap.dedent(f"""
        [[change]]
        date = 2026-12-07
        from = "{frozen}"
        what = "beam grid 1, 2 -> 1, 3"
        why = "a wider search"
        after_test = true
        """))
    done = _run(env, protocol, exp, "test", "table")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    table = (exp / "report" / "claim-test.md").read_text()
    assert "| 2026-12-07 | beam grid 1, 2 -> 1, 3 | a wider search | **yes** |" in table
    history = json.loads((exp / "protocol.lock.json").read_text())["history"]
    assert [h["fingerprint"] for h in history] == [frozen, read_protocol(protocol).fingerprint]


def test_same_lambda_pairs_utterance_and_context_at_every_shared_lambda(tmp_path):
    from kdasr.spec.protocol import System

    kd = [System("u", "bert", 0.1, (0.1, 0.3)), System("c", "bert-context", 0.1, (0.3, 0.5))]
    wer = {"u": {0.1: 20.0, 0.3: 19.0}, "c": {0.3: 18.5, 0.5: 18.0}}
    assert claim_logic.same_lambda(kd, wer) == [{"kd_weight": 0.3, "dev_wer": {"u": 19.0, "c": 18.5}}]
    assert claim_logic.same_lambda(kd[:1], wer) == []
    assert claim_logic.choose([("a", 2.0), ("b", 1.0), ("c", 1.0)]) == "b"


def test_verdict_roles_name_the_systems_by_kind(tmp_path):
    (tmp_path / "p.toml").write_text(_protocol(tmp_path, tmp_path))
    roles = claim_logic.verdict_roles(read_protocol(tmp_path / "p.toml"))
    assert roles == ["--baseline", "ce", "--smoothing", "smooth", "--utterance", "bert"]  # no LM-KD, no context


def test_a_choice_reads_only_dev_records(tmp_path):
    from kdasr.recipe.runner import RecipeError

    record = tmp_path / "r.json"
    record.write_text(json.dumps({"set": "dev-all", "wer": 12.5}))
    assert claim_logic.dev_wer(record) == 12.5
    record.write_text(json.dumps({"set": "test", "wer": 10.0}))
    with pytest.raises(RecipeError, match="a record of 'test', not of the dev set dev-all"):
        claim_logic.dev_wer(record)


def test_wall_time_adds_up_over_the_runs_that_did_work(tmp_path):
    times = tmp_path / "times.json"
    stage_times.add_time(times, "students", 90.0, 3)
    stage_times.add_time(times, "students", 30.0, 1)  # resumed after a kill
    stage_times.add_time(times, "export", 12.0, 2)
    stage_times.add_time(times, "export", 5.0, 0)  # a rerun with nothing to do adds nothing
    assert json.loads(times.read_text())["students"] == {"seconds": 120.0, "runs": 2, "commands": 4}
    assert json.loads(times.read_text())["export"]["runs"] == 1
    line = stage_times.time_lines(times, ["students", "export", "table"])[0]
    assert "students 2.0, export 0.2; total 2.2" in line


def test_a_killed_stage_still_counts_up_to_its_last_heartbeat(tmp_path):
    """A run killed mid-stage never reaches add_time: its open entry is folded in by the next run."""
    times = tmp_path / "times.json"
    ran = [0]
    clock = stage_times.StageClock(times, lambda: ran[0], every=0.05)
    clock.start("tune")
    ran[0] = 2  # two commands started
    deadline = time.monotonic() + 10
    while "tune" not in stage_times._read(times) and time.monotonic() < deadline:
        time.sleep(0.02)
    clock.stop()  # the process dies here: no add_time
    opened = json.loads(times.read_text())["tune"]["open"]
    assert opened["commands"] == 2 and opened["seconds"] > 0
    assert stage_times.fold_open(times) == ["tune"]
    entry = json.loads(times.read_text())["tune"]
    assert entry["runs"] == 1 and entry["killed"] == 1 and entry["commands"] == 2 and "open" not in entry
    assert entry["seconds"] == opened["seconds"]
    assert stage_times.fold_open(times) == []  # counted once
    # the rerun finishes: its time adds to the killed run's
    stage_times.record_open(times, "tune", 30.0, 1)
    stage_times.add_time(times, "tune", 60.0, 3)
    entry = json.loads(times.read_text())["tune"]
    assert entry["runs"] == 2 and entry["seconds"] == round(opened["seconds"] + 60.0, 1) and "open" not in entry
    lines = stage_times.time_lines(times, ["tune"])
    assert "1 of them stopped before their stage finished" in lines[0]


def test_reconstructed_time_is_shown_apart_with_its_source(tmp_path):
    times = tmp_path / "times.json"
    stage_times.add_time(times, "tk", 600.0, 3)
    stage_times.add_reconstructed(times, "tk", 120.0, 1, "lane B 19:56:48 to 19:58:48")
    lines = stage_times.time_lines(times, ["tk"])
    assert "tk 10.0 (+2.0 reconstructed)" in lines[0] and "total 10.0 measured + 2.0 reconstructed = 12.0" in lines[0]
    assert "tk: lane B 19:56:48 to 19:58:48" in lines[1]


def test_best_kd_is_the_lowest_mean_dev_wer_over_seeds_word_weighted_over_dev_sets():
    from kdasr.recipe.runner import RecipeError

    # word-weighted: 70 errors in 400 words, not the mean of 10 % and 20 %
    assert claim_logic.pooled_wer([{"words": 100, "word_errors": 10}, {"words": 300, "word_errors": 60}]) == 17.5
    # a has the best single seed, b the lower mean: b
    best = claim_logic.best_kd(["a", "b"], {"a": {1: 10.0, 2: 20.0}, "b": {1: 14.0, 2: 15.0}})
    assert best["chosen"] == "b" and best["mean_dev_wer"] == {"a": 15.0, "b": 14.5}
    assert best["dev_wer"]["a"] == {"1": 10.0, "2": 20.0}
    assert claim_logic.best_kd(["a", "b"], {"a": {1: 15.0}, "b": {1: 15.0}})["chosen"] == "a"  # a tie: first
    choices = {"alternatives": {"best_kd": {"chosen": "b"}}}
    assert claim_logic.alt_students(("ce", "best-kd", "b"), choices) == ["ce", "b"]
    assert claim_logic.alt_students(("ce",), {}) == ["ce"]
    with pytest.raises(RecipeError, match="run the alternatives stage first"):
        claim_logic.alt_students(("ce", "best-kd"), {})



def test_one_teacher_pass_per_mode_serves_the_t_k_grid(tmp_path):
    """Every (T, K) of the grid comes from the first temperature at the largest K (kdasr teacher
    soft-derive); that point is the pass itself; a K above the grid's is a pass of its own."""
    text = _protocol(tmp_path, tmp_path).replace("temperature = [2]", "temperature = [1, 2, 3]")
    (tmp_path / "p.toml").write_text(text.replace("top_k = [4]", "top_k = [8, 32]"))
    p = read_protocol(tmp_path / "p.toml")
    assert {claim_logic.soft_source(p, t, k) for t in (1.0, 2.0, 3.0) for k in (8, 32)} == {(1.0, 32)}
    assert claim_logic.soft_source(p, 2.0, 64) == (2.0, 64)


def test_the_soft_stage_makes_every_modes_teacher_pass_before_t_and_k_are_chosen(tmp_path):
    """Every KD mode's teacher pass is the same (first T, largest K) whatever the sweep chooses, so the
    first soft stage makes them all (JOBS at a time), not the sweep's mode alone; after the choice, each
    mode at the chosen point (derived from its pass)."""
    text = _protocol(tmp_path, tmp_path).replace("temperature = [2]", "temperature = [1, 3]")
    text = text.replace("top_k = [4]", "top_k = [8, 32]")
    text += '\n[[system]]\nname = "lm"\nkd = "lm"\nlabel_smoothing = 0.1\nkd_weight = [0.3]\n'
    (tmp_path / "p.toml").write_text(text)
    p = read_protocol(tmp_path / "p.toml")
    before = claim_logic.soft_jobs(p, {})
    assert set(before) == {("bert", 1.0, 8), ("bert", 1.0, 32), ("bert", 3.0, 8), ("bert", 3.0, 32), ("lm", 1.0, 32)}
    after = claim_logic.soft_jobs(p, {"tk": {"chosen": {"temperature": 3, "top_k": 8}}})
    assert ("lm", 3.0, 8) in after and ("bert", 3.0, 8) in after and len(after) == len(set(after))


def test_the_budget_says_what_each_teacher_pass_cost_over_all_its_runs(tmp_path):
    """A resumed pass counts every run (seconds_all_runs); a derived point is left out; a pass from before
    the runs were counted says it is its last run only."""
    for name, doc in {"bert-t1-k32": {"seconds": 60, "seconds_all_runs": 600, "runs": 2, "utterances": 9},
                      "bert-t3-k8": {"derived_from": "x", "seconds": 1},
                      "lm-t1-k32": {"seconds": 120, "utterances": 9}}.items():
        (tmp_path / "soft" / name).mkdir(parents=True)
        (tmp_path / "soft" / name / "summary.json").write_text(json.dumps(doc))
    assert claim_logic.teacher_pass_lines(tmp_path) == [
        "- Teacher passes over the train set (one thread each; `kdasr teacher soft-labels`, summary.json): "
        "bert-t1-k32 10.0 min (9 utterances, 2 run(s)); lm-t1-k32 2.0 min (9 utterances, its last run only)"]
    assert claim_logic.teacher_pass_lines(tmp_path / "none") == []


"""The paper recipe (eval/recipe.sh, `make recipe`) end to end on a toy corpus: every stage from the
corpus check to the results table, with tiny teachers and students (kdasr/configs/tiny-recipe.toml).
The first run is killed (SIGKILL to its whole process group) while the students stage trains; the
second run completes it and writes a table with one row per system, fusion and rescoring included;
a third run trains, tunes and decodes nothing and changes no file. Real subprocesses throughout: the
recipe's kdasr commands are forked by a warm launcher (tests/warm_kdasr.py: $KDASR), each its own process
that does not import torch, onnx and transformers again; killing a command's client kills the command."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from warm_kdasr import BERT_MODULES, warm_kdasr

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "eval" / "recipe.sh"
TIMEOUT = 1800  # seconds per run: generous, the suite shares 2 cores with training jobs
# work lines the recipe prints only when it does something (a finished artifact is skipped silently)
WORK = re.compile(r"\] (train |soft labels|BERT teacher|LM teacher|export |tune |decode |bench \d)")


def _tiny_data(corpus: Path, data: Path) -> None:
    """The session's toy corpus (12 train, 4 dev, 4 test utterances) with a short teacher text: reading
    and tokenising 58k teacher sentences would cost more than the tiny teachers' training."""
    data.mkdir()
    for name in ("train", "dev", "test"):
        shutil.copy(corpus / f"{name}.jsonl", data / f"{name}.jsonl")
    (data / "audio").symlink_to(corpus / "audio", target_is_directory=True)  # manifests' paths are relative
    shutil.copy(corpus / "tokenizer.model", data / "tokenizer.model")
    lines = (corpus / "teacher.txt").read_text(encoding="utf-8").splitlines()[:1500]
    (data / "teacher.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _env(root: Path) -> dict:
    # EXPORT_ARGS: not the default --check --quantize int8 (both tested with the tiny model), which cost CPU here
    out = root / "reports"
    return {
        **os.environ,
        "PY": sys.executable, "OMP_NUM_THREADS": "1",
        "DATA": str(root / "data"), "EXP": str(root / "exp"), "SYNTH": "0", "WARM_START": "",
        "CONFIG": "tiny-recipe", "TEACHER_SIZE": "tiny", "BERT_STEPS": "20", "LM_STEPS": "20",
        "BERT_ARGS": "--arch modernbert --window 64 --batch-size 4", "LM_ARGS": "--batch-size 16",
        "TEACHER_EVAL_EVERY": "0", "QUALITY_SENTENCES": "4", "STRICT": "0",
        "WARM": "1", "SWEEP": "1", "EPOCHS": "2", "LAMBDAS": "0.1 0.3", "KD_MODES": "bert-context",
        "DEV_LIMIT": "4", "SETS": "dev test", "SKIP_REFERENCE": "1", "THREADS": "1", "JOBS": "2",
        "EXPORT_ARGS": "--method attention", "TUNE_BEAMS": "1,2", "TUNE_CTC": "0,0.3", "TUNE_LM_WEIGHTS": "0.3",
        "TUNE_LENGTH_BONUS": "0,1", "TUNE_RESCORE_WEIGHTS": "0.3", "NBEST": "2",
        "BENCH_SET": "test", "BENCH_LIMIT": "4", "BENCH_REPEATS": "1",
        "QUALITY_OUT": str(out / "quality.md"), "CURVES_PLOT": str(out / "curves.png"),
        "TABLE_OUT": str(out / "table.md"), "PLOT_OUT": str(out / "table.png"),
    }


def _run(env: dict, *stages: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RECIPE), *stages], env=env, capture_output=True, text=True, timeout=TIMEOUT)


def _kill_in_students_stage(env: dict, log: Path) -> None:
    """Start the recipe and SIGKILL its process group once the students stage's baseline run has
    logged a training step past the baseline stage's (the epoch-2 checkpoint not yet written)."""
    exp = Path(env["EXP"])
    train_log = exp / "baseline" / "train_log.csv"
    with open(log, "w") as f:
        proc = subprocess.Popen(["bash", str(RECIPE)], env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    t0, steps_before = time.time(), None
    try:
        while proc.poll() is None and time.time() - t0 < TIMEOUT:
            text = log.read_text()
            if "stage students" in text:
                rows = len(train_log.read_text().splitlines())
                steps_before = rows if steps_before is None else steps_before
                if rows > steps_before or (exp / "baseline" / "epoch-2.pt").exists():
                    break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    text = log.read_text()
    assert "stage students" in text and "stage export" not in text, f"not killed in the students stage:\n{text}"
    assert not (exp / "models").exists() or not any((exp / "models").iterdir())


@pytest.fixture(scope="module")
def recipe(tiny_corpus, tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("recipe")  # no 'test' in the data folder's name: tune refuses those
    _tiny_data(tiny_corpus, root / "data")
    env = _env(root)
    with warm_kdasr(root, env, BERT_MODULES) as kdasr:
        env["KDASR"] = kdasr
        t0 = time.time()
        _kill_in_students_stage(env, root / "run1.log")
        second = _run(env)
        wall = time.time() - t0
        assert second.returncode == 0, f"{second.stdout}\n{second.stderr}"
        print(f"tiny recipe: {wall:.0f} s wall for the killed run and the completing one")
        yield {"root": root, "env": env, "exp": Path(env["EXP"]), "second": second}


def _section(markdown: str, title: str) -> list[str]:
    part = markdown.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    return [line for line in part.splitlines() if line.startswith("| ") and not line.startswith("| system")]


def test_table_has_every_system(recipe):
    exp, env = recipe["exp"], recipe["env"]
    students = (exp / "systems.txt").read_text().split()
    assert students[0] == "baseline" and len(students) == 2  # KD_MODES: bert-context (test_together_...: lm)
    # lambda chosen per mode: the lowest dev greedy-attention WER at epoch WARM + SWEEP in the curves
    with open(exp / "curves.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["epoch"] == "2"]
    for mode, chosen in zip(("bert-context",), students[1:]):
        wer = {lam: float(r["dev_wer_attention"]) for lam in ("0.1", "0.3") for r in rows
               if r["run"] == f"kd-{mode}-{lam}"}
        assert chosen == f"kd-{mode}-{min(wer, key=lambda lam: (wer[lam], lam))}"
    systems = [*students, "baseline+fusion", "baseline+rescore-lm", "baseline+rescore-bert"]
    table = Path(env["TABLE_OUT"]).read_text()
    wer_rows = _section(table, "WER (CER) %")
    assert sorted(r.split(" | ")[0][2:] for r in wer_rows) == sorted(systems)
    for row in wer_rows:  # WER (CER) on dev and test, a number each
        assert len(re.findall(r"\| \d+\.\d\d \(\d+\.\d\d\)", row)) == 2, row
    paper = {r.split(" | ")[0][2:]: r for r in wer_rows}
    assert "10.31" in paper["baseline"] and "9.19" in paper[students[1]]
    cost_rows = _section(table, "Decoding cost")
    assert sorted(r.split(" | ")[0][2:] for r in cost_rows) == sorted(systems)
    assert all("not in the bench run" not in r for r in cost_rows)
    relative = _section(table, "Relative WER change")
    assert len(relative) == len(systems) - 1
    assert "Students' forward pass: fp32." in table  # STUDENT_AMP's default, stated in the protocol
    for png in (env["PLOT_OUT"], env["CURVES_PLOT"]):
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(env["QUALITY_OUT"]).is_file() and Path(env["QUALITY_OUT"]).with_suffix(".json").is_file()


def test_killed_run_resumed(recipe):
    """The second run went on from where the kill left it: the baseline resumed its last.pt, and the
    stages before the students (teachers, soft labels, sweep) were not run again."""
    exp, second = recipe["exp"], recipe["second"].stdout
    assert "resuming from" in (exp / "logs" / "baseline.log").read_text()
    with open(exp / "baseline" / "train_log.csv", newline="") as f:  # no step logged twice after the kill
        steps = [int(r["step"]) for r in csv.DictReader(f)]
    assert steps == sorted(set(steps)) and steps, steps
    done_before_kill = re.compile(r"\] (soft labels|BERT teacher|LM teacher|train kd-\S+ to epoch 2)")
    assert not done_before_kill.search(second), second


def test_rerun_does_nothing(recipe):
    exp, env, root = recipe["exp"], recipe["env"], recipe["root"]

    def snapshot() -> dict:
        return {p: (p.stat().st_mtime_ns, p.stat().st_size) for d in (exp, root / "reports")
                for p in d.rglob("*") if p.is_file()}

    before = snapshot()
    t0 = time.time()
    third = _run(env)
    took = time.time() - t0
    assert third.returncode == 0, f"{third.stdout}\n{third.stderr}"
    assert not WORK.search(third.stdout), third.stdout
    assert snapshot() == before, "a rerun of a complete recipe changed files"
    assert took < 60, f"a rerun with nothing to do took {took:.0f} s"


def test_strict_quality_gate(recipe):
    """STRICT=1 stops before any distillation when a teacher does not beat the count baselines."""
    import json

    env = recipe["env"]
    passed = json.loads(Path(env["QUALITY_OUT"]).with_suffix(".json").read_text())["passed"]
    gate = _run({**env, "STRICT": "1"}, "quality")
    assert (gate.returncode == 0) == passed, gate.stderr
    if not passed:
        assert "does not beat the count baselines" in gate.stderr


def test_unknown_stage_refused(recipe):
    amp = Path(recipe["env"]["EXP"]) / "student_amp"
    before = amp.read_text()
    bad = _run({**recipe["env"], "STUDENT_AMP": "bf16"}, "baseline", "tables")
    assert bad.returncode != 0 and "unknown stage 'tables'" in bad.stderr
    assert "stage baseline" not in bad.stdout  # refused before any stage runs
    assert amp.read_text() == before  # and before the sticky settings are written: EXP is as it was


def test_ship_exports_the_best_student_on_dev_with_its_tuned_decoding(recipe, tmp_path):
    import json

    exp, env = recipe["exp"], recipe["env"]
    ship_dir = tmp_path / "shipped"
    refused = _run({**env, "SHIP_DIR": str(ship_dir), "WARM_START": str(ship_dir)}, "ship")
    assert refused.returncode != 0 and "warm start" in refused.stderr and not ship_dir.exists()
    shipped = _run({**env, "SHIP_DIR": str(ship_dir)}, "ship")
    assert shipped.returncode == 0, f"{shipped.stdout}\n{shipped.stderr}"
    students = (exp / "systems.txt").read_text().split()
    wer = {s: json.loads((exp / "results" / s / "dev.json").read_text())["wer"] for s in students}
    best = min(students, key=lambda s: (wer[s], students.index(s)))
    assert f"ship {best} to" in shipped.stdout
    tuned = json.loads((exp / "tune" / f"{best}.json").read_text())["decoding"]
    from kdasr.spec.modelspec import load_model_spec

    spec = load_model_spec(ship_dir)
    assert (spec.decoding.beam, spec.decoding.ctc_weight) == (tuned["beam"], tuned["ctc_weight"])
    assert (ship_dir / "MODEL_CARD.md").is_file() and best in (ship_dir / "MODEL_CARD.md").read_text()


def test_shipped_teachers_are_adopted_only_for_their_own_text(recipe, tmp_path):
    """ship_teachers writes the finished teachers without optimiser state, with the sha1 of the text they
    learnt; a fresh EXP adopts them instead of training (nothing trained), but not for another text."""
    env = recipe["env"]
    out = tmp_path / "teachers"
    shipped = _run({**env, "TEACHERS_OUT": str(out)}, "ship_teachers")
    assert shipped.returncode == 0, f"{shipped.stdout}\n{shipped.stderr}"
    assert (out / "bert" / "config.json").is_file() and (out / "lm" / "lm.pt").is_file()
    assert not list(out.rglob("train_state.pt")) and (out / "QUALITY.md").is_file()
    env2 = {**env, "EXP": str(tmp_path / "exp2"), "TEACHERS_FROM": str(out)}
    adopted = _run(env2, "teachers")
    assert adopted.returncode == 0, f"{adopted.stdout}\n{adopted.stderr}"
    assert "teacher bert: adopted" in adopted.stdout and "teacher lm: adopted" in adopted.stdout
    assert not WORK.search(adopted.stdout), adopted.stdout
    assert (tmp_path / "exp2" / "teachers" / "bert" / "kdasr_teacher.json").is_file()
    (out / "lm" / "teacher_text.sha1").write_text("0" * 40 + "\n")  # as if trained on another text
    other = _run({**env2, "EXP": str(tmp_path / "exp3")}, "teachers")
    assert other.returncode == 0, f"{other.stdout}\n{other.stderr}"
    assert "teacher lm: not adopting" in other.stdout and "] LM teacher" in other.stdout
    assert "teacher bert: adopted" in other.stdout


def test_together_protocol_trains_every_student_in_prep_from_one_start(recipe, tmp_path):
    """WARM=0 SWEEP=0 (the default, one-session protocol): no sweep, lambda from KD_LAMBDA, every
    student starts where the baseline does (nothing branched) and trains in the prep stage's lanes,
    after the teachers' quality gate; the students stage then only draws the curves. Raising EPOCHS
    afterwards trains them on, in prep, JOBS at a time (the soft labels all exist)."""
    env = {**recipe["env"], "EXP": str(tmp_path / "exp"), "WARM": "0", "SWEEP": "0", "EPOCHS": "1",
           "KD_MODES": "lm", "KD_LAMBDA": "lm=0.3", "CURVES_PLOT": str(tmp_path / "curves.png")}
    (tmp_path / "exp").mkdir()
    # what this test is not about, from the fixture's run (which made no LM soft labels: made in a lane here)
    shutil.copytree(recipe["exp"] / "teachers", tmp_path / "exp" / "teachers")
    missing = _run({**env, "KD_LAMBDA": "bert-context=0.1"}, "prep")
    assert missing.returncode != 0 and "no lambda for KD mode lm" in missing.stderr
    assert "] train " not in missing.stdout
    done = _run(env, "prep", "sweep", "students")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    prep, after = done.stdout.split("stage sweep", 1)
    trained = re.findall(r"\] train (\S+) to epoch 1", prep)
    assert sorted(trained) == ["baseline", "kd-lm-0.3"], prep
    gate = re.search(r"teacher quality: every teacher|WARNING: a teacher", prep)  # STRICT=0 here: either
    assert gate and gate.start() < prep.index("] train "), prep
    assert "no lambda sweep" in after and "] train " not in after
    assert (tmp_path / "exp" / "student_amp").read_text() == "none\n"  # kept for a later resume
    assert (tmp_path / "exp" / "systems.txt").read_text().split() == ["baseline", "kd-lm-0.3"]
    with open(tmp_path / "exp" / "curves.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["run"] for r in rows} == set(trained) and not any(r["branched_from"] for r in rows)
    assert "soft labels: lm" in prep and prep.index("soft labels: lm") < prep.index("] train kd-lm-0.3")
    more = _run({**env, "EPOCHS": "2"}, "prep")
    assert more.returncode == 0, f"{more.stdout}\n{more.stderr}"
    assert sorted(re.findall(r"\] train (\S+) to epoch 2", more.stdout)) == sorted(trained)
    assert "soft labels:" not in more.stdout
    assert all((tmp_path / "exp" / run / "epoch-2.pt").is_file() for run in trained)


def test_reference_records_are_kept_and_adopted_only_for_the_same_set(recipe, tmp_path):
    """The decode stage (here its `reference` part) keeps whisper's record with its set's hash in
    REFERENCE_FROM; a later run adopts it instead of decoding, but not when the hash differs (planted
    here: another record, a wrong hash)."""
    import json

    exp = tmp_path / "exp"
    shutil.copytree(recipe["exp"], exp)
    ref = tmp_path / "ref" / "whisper-tiny.en"
    ref.mkdir(parents=True)
    shutil.copy(exp / "results" / "baseline" / "dev.json", ref / "dev.json")
    (ref / "dev.sha1").write_text("0" * 40 + "\n")
    env = {**recipe["env"], "EXP": str(exp), "SETS": "dev", "BENCH_SET": "dev", "SKIP_REFERENCE": "0",
           "REFERENCE_FROM": str(tmp_path / "ref")}
    first = _run(env, "reference")  # decode's whisper part on its own
    assert first.returncode == 0, f"{first.stdout}\n{first.stderr}"
    assert "] decode whisper-tiny.en on dev (log" in first.stdout and "adopted" not in first.stdout
    record = json.loads((exp / "results" / "whisper-tiny.en" / "dev.json").read_text())
    assert record["system"].startswith("whisper-tiny.en") and json.loads((ref / "dev.json").read_text()) == record
    (exp / "results" / "whisper-tiny.en" / "dev.json").unlink()
    second = _run(env, "decode")
    assert second.returncode == 0, f"{second.stdout}\n{second.stderr}"
    assert "decode whisper-tiny.en on dev: adopted" in second.stdout and "(log" not in second.stdout
    assert json.loads((exp / "results" / "whisper-tiny.en" / "dev.json").read_text()) == record

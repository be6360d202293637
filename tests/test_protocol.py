"""The protocol fixed before any test number (issue 28 item 1): a TOML file read and checked with
errors naming the file and key, a fingerprint of its content (not of its formatting or its change
record), frozen into a run dir; a changed protocol is refused unless the change is recorded, then the
lock follows it once and keeps the history; the Markdown block lists every change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kdasr.errors import KdasrError
from kdasr.recipe.protocol import COPY, LOCK, freeze, read_lock, require_frozen
from kdasr.spec.protocol import ENTROPY_MATCHED, KD_MODES, read_protocol, render_protocol_block
from kdasr.teachers.kd_mode import KdMode

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "kdasr" / "configs" / "protocols" / "claim-v1.toml"

BASE = textwrap.dedent("""\
    name = "t"
    seeds = [1, 2, 3]
    dev_manifests = ["data/mix/dev.jsonl"]
    test_sets = ["test"]

    [budget]
    steps = 100
    threads = 1

    [soft_labels]
    temperature = [1, 3]
    top_k = [8]

    [decoding]
    beam = [1, 5]
    ctc_weight = [0, 0.3]

    [[system]]
    name = "ce"
    kd = "none"
    label_smoothing = 0.1

    [[system]]
    name = "bert"
    kd = "bert"
    label_smoothing = 0.1
    kd_weight = [0.1, 0.3]
    """)


def _refused_in_one_line(path, message: str) -> None:
    """read_protocol(path) raises one line that starts with the file's name and says `message`."""
    with pytest.raises(KdasrError, match=f"^{path}.*{message}") as e:
        read_protocol(path)
    assert "\n" not in str(e.value)


def change(source: str, after_test: bool = False, what: str = "budget 100 -> 200 steps") -> str:
    return textwrap.dedent(f"""
        [[change]]
        date = 2026-12-07
        from = "{source}"
        what = "{what}"
        why = "the dev curve had not flattened"
        after_test = {str(after_test).lower()}
        """)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_example_protocol_reads_and_its_kd_modes_are_the_trainers():
    assert list(KD_MODES) == [m.value for m in KdMode]
    p = read_protocol(EXAMPLE)
    assert [s.name for s in p.systems] == ["ce", "smoothing-control", "lm-kd", "bert-utterance", "bert-context"]
    assert p.system("smoothing-control").label_smoothing == ENTROPY_MATCHED
    assert {s.kd_weight for s in p.systems if s.kd != "none"} == {(0.1, 0.3, 0.5)}
    assert p.temperatures == (1.0, 2.0, 3.0) and p.top_ks == (8, 32) and len(p.seeds) >= 3
    assert p.dev_manifests == ("data/mix/dev.jsonl", "data/mix/dev_real.jsonl")
    assert p.test_sets == ("test", "test_heldout", "test_neural_heldout", "test_noisy", "test_real")
    assert "DRAFT" not in EXAMPLE.read_text() and "PLACEHOLDER" not in EXAMPLE.read_text()  # fixed for the run
    assert (p.steps, p.setup.sweep_steps, p.setup.dev_limit, p.kd_smoothing) == (1000, 600, 600, 0.0)
    a = p.alternatives
    assert a.methods == ("fusion", "rescore-lm", "rescore-bert") and a.on == ("ce", "best-kd") and a.nbest == 4
    assert "no uniform part, as in the paper" in render_protocol_block(p)


def test_the_fingerprint_covers_content_not_formatting_or_changes(tmp_path):
    fp = read_protocol(write(tmp_path / "a.toml", BASE)).fingerprint
    same = BASE.replace("temperature = [1, 3]", "temperature = [1.0, 3.0]  # the same numbers").replace(
        'name = "t"\n', '# a comment\nname = "t"\n\n')
    same += change("0" * 64)
    assert read_protocol(write(tmp_path / "b.toml", same)).fingerprint == fp
    for old, new in [("steps = 100", "steps = 101"), ("seeds = [1, 2, 3]", "seeds = [1, 2, 4]"),
                     ("kd_weight = [0.1, 0.3]", "kd_weight = [0.1, 0.5]"), ("beam = [1, 5]", "beam = [1, 10]"),
                     ('test_sets = ["test"]', 'test_sets = ["test", "test_real"]')]:
        assert read_protocol(write(tmp_path / "c.toml", BASE.replace(old, new))).fingerprint != fp, new


def test_freeze_then_check_round_trip(tmp_path):
    src, exp = write(tmp_path / "p.toml", BASE), tmp_path / "exp"
    p, what = freeze(src, exp)
    assert what == "frozen" and (exp / COPY).read_bytes() == src.read_bytes()
    lock = read_lock(exp)
    assert lock["fingerprint"] == p.fingerprint and lock["path"] == str(src) and lock["time"].endswith("Z")
    assert [h["fingerprint"] for h in lock["history"]] == [p.fingerprint] and lock["history"][0]["change"] is None
    before = (exp / LOCK).read_bytes()
    assert freeze(src, exp)[1] == "unchanged" and (exp / LOCK).read_bytes() == before  # a no-op
    assert require_frozen(src, exp) == p and (exp / LOCK).read_bytes() == before


def test_nothing_frozen_is_refused(tmp_path):
    src = write(tmp_path / "p.toml", BASE)
    with pytest.raises(KdasrError, match="freeze the protocol before building a test table"):
        require_frozen(src, tmp_path / "exp")
    assert not (tmp_path / "exp").exists()


def test_a_changed_protocol_is_refused_until_the_change_is_recorded_then_once(tmp_path):
    src, exp = write(tmp_path / "p.toml", BASE), tmp_path / "exp"
    first = freeze(src, exp)[0].fingerprint
    before = (exp / LOCK).read_bytes()
    write(src, BASE.replace("steps = 100", "steps = 200"))
    changed = read_protocol(src).fingerprint
    message = (f"{src} (fingerprint {changed[:16]}) is not the protocol frozen in {exp / LOCK} (fingerprint "
               f"{first[:16]}): record the change as a [[change]] with from = \"{first}\"")
    with pytest.raises(KdasrError) as e:
        require_frozen(src, exp)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    with pytest.raises(KdasrError, match="is not the protocol frozen in"):
        freeze(src, exp)  # freezing again does not overwrite either
    assert (exp / LOCK).read_bytes() == before
    write(src, BASE.replace("steps = 100", "steps = 200") + change(first))
    p = require_frozen(src, exp)
    assert p.fingerprint == changed and (exp / COPY).read_bytes() == src.read_bytes()
    lock = read_lock(exp)
    assert lock["fingerprint"] == changed and [h["fingerprint"] for h in lock["history"]] == [first, changed]
    assert lock["history"][1]["change"]["from_fingerprint"] == first
    assert lock["history"][1]["change"]["what"] == "budget 100 -> 200 steps"
    assert require_frozen(src, exp) == p  # the lock is at the new protocol now
    # the same record does not cover a further edit: it changes `first`, and the lock is at `changed`
    write(src, BASE.replace("steps = 100", "steps = 300") + change(first))
    with pytest.raises(KdasrError, match=f"fingerprint {changed[:16]}\\): record the change"):
        require_frozen(src, exp)
    write(src, BASE.replace("steps = 100", "steps = 300") + change(first) + change(changed, True, "300 steps"))
    require_frozen(src, exp)
    assert len(read_lock(exp)["history"]) == 3


def test_the_block_lists_every_change_with_its_after_test_flag(tmp_path):
    text = (BASE.replace('label_smoothing = 0.1\n\n[[system]]\nname = "bert"',
                         f'label_smoothing = "{ENTROPY_MATCHED}"\n\n[[system]]\nname = "bert"')
            + change("a" * 64, False, "λ grid widened") + change("b" * 64, True, "budget | doubled"))
    block = render_protocol_block(read_protocol(write(tmp_path / "p.toml", text)))
    assert "- Budget: 100 optimiser steps per student, 1 thread" in block
    assert "- Seeds: 1, 2, 3" in block and "T ∈ {1, 3}, K ∈ {8}" in block
    assert "beam ∈ {1, 5}; ctc_weight ∈ {0, 0.3}" in block and "`data/mix/dev.jsonl`" in block
    assert "| ce | none | entropy-matched (`kdasr teacher soft-stats`) | — |" in block
    assert "| bert | bert | 0.1 | {0.1, 0.3} |" in block
    assert "(2; 1 after a test number was seen)" in block
    assert "| 2026-12-07 | λ grid widened | the dev curve had not flattened | no |" in block
    assert "| 2026-12-07 | budget \\| doubled | the dev curve had not flattened | **yes** |" in block
    assert "Changes since the protocol was fixed: none." in render_protocol_block(
        read_protocol(write(tmp_path / "q.toml", BASE)))


@pytest.mark.parametrize(("old", "new", "message"), [
    ('name = "t"', 'name = "t"\nbudgett = 3', "unknown key 'budgett'"),
    ("steps = 100", "steps = 0", r"\[budget\] steps must be a positive whole number, got 0"),
    ("threads = 1\n", "", r"\[budget\] missing required key 'threads'"),
    ("seeds = [1, 2, 3]", "seeds = [1, 1]", "seeds lists a value twice"),
    ('kd = "bert"', 'kd = "bert-utt"', r"\[\[system\]\] 2 \('bert'\): kd must be one of none, lm, bert, bert-context"),
    ("kd_weight = [0.1, 0.3]", "kd_weight = []", r"kd = 'bert' needs kd_weight, the λ grid"),
    ('kd = "none"', 'kd = "none"\nkd_weight = [0.1]', r"\('ce'\): kd_weight \(λ\) is for KD systems"),
    ("label_smoothing = 0.1\n\n", "label_smoothing = 1.0\n\n", r"label_smoothing must be in \[0, 1\)"),
    ("beam = [1, 5]", "beam = [0, 5]", r"\[decoding\] beam: beam must be within \[1, 1000\], not 0"),
    ("beam = [1, 5]", "beams = [1, 5]", r"\[decoding\] unknown key 'beams': not a decoding option"),
    ("top_k = [8]", "top_k = [8.5]", r"\[soft_labels\] top_k must be a non-empty list"),
    ('name = "bert"', 'name = "ce"', r"\[\[system\]\] name 'ce' is used twice"),
    ("steps = 100", "steps = = 100", r":7:9: invalid TOML"),
])
def test_bad_protocols_are_refused_naming_the_file_and_key(tmp_path, old, new, message):
    assert old in BASE
    path = write(tmp_path / "bad.toml", BASE.replace(old, new, 1))
    _refused_in_one_line(path, message)


def test_a_bad_change_record_is_refused(tmp_path):
    path = write(tmp_path / "bad.toml", BASE + change("not-a-fingerprint"))
    with pytest.raises(KdasrError, match=r"\[\[change\]\] 1: from must be the sha256 fingerprint"):
        read_protocol(path)
    path = write(tmp_path / "bad.toml", BASE + change("a" * 64).replace("after_test = false", ""))
    with pytest.raises(KdasrError, match=r"\[\[change\]\] 1: after_test must be true or false"):
        read_protocol(path)


BLOCK_TORCH = ("import sys\nclass _B:\n    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'torch':\n            raise ImportError('torch blocked')\n"
               "sys.meta_path.insert(0, _B())\n")


@pytest.mark.slow
def test_the_commands_are_torch_free_and_fail_in_one_line(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(ROOT)])}
    blocked = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert blocked.returncode != 0 and "torch blocked" in blocked.stderr  # the blocker works

    def kdasr(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kdasr", "protocol", *map(str, args)], capture_output=True,
                              text=True, env=env)

    src, exp = write(tmp_path / "p.toml", BASE), tmp_path / "exp"
    proc = kdasr("freeze", src, "--exp", exp)
    fp = read_protocol(src).fingerprint
    assert proc.returncode == 0 and proc.stdout == f"froze {src} into {exp} (fingerprint {fp})\n", proc.stderr
    write(src, BASE.replace("steps = 100", "steps = 200"))
    proc = kdasr("check", src, "--exp", exp)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {src} (fingerprint ") and f'from = "{fp}"' in proc.stderr
    write(src, BASE.replace("steps = 100", "steps = 200") + change(fp, True))
    proc = kdasr("check", src, "--exp", exp)
    assert proc.returncode == 0 and "its recorded change moved the lock" in proc.stdout, proc.stderr
    proc = kdasr("show", src)
    assert proc.returncode == 0 and proc.stdout == render_protocol_block(read_protocol(src))
    assert "| **yes** |" in proc.stdout and json.loads((exp / LOCK).read_text())["fingerprint"] != fp
    proc = kdasr("show", write(tmp_path / "bad.toml", "name = = 1\n"))
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: {tmp_path / 'bad.toml'}:1:")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


SETUP = textwrap.dedent("""
    [setup]
    train = "data/mix/train.jsonl"
    dev = "data/mix/dev.jsonl"
    config = "whisper-tiny-frozen"
    tokenizer = "data/mix/tok1000.model"
    bert_teacher = "exp/p27/teachers/bert-1000"
    lm_teacher = "exp/p27/teachers/lm-1000"
    test_dir = "data/mix"
    sweep_steps = 50
    """)


def test_the_setup_is_read_checked_and_in_the_fingerprint(tmp_path):
    p = read_protocol(write(tmp_path / "p.toml", BASE + SETUP))
    u = p.setup
    assert (u.train, u.config, u.sweep_steps) == ("data/mix/train.jsonl", "whisper-tiny-frozen", 50)
    assert u.feature_cache == "" and u.dev_limit == 0
    assert u.test_manifest("test") == str(Path("data/mix") / "test.jsonl")
    assert p.content()["setup"]["bert_teacher"] == "exp/p27/teachers/bert-1000"
    without = read_protocol(write(tmp_path / "q.toml", BASE))
    assert without.setup is None and "setup" not in without.content()
    assert p.fingerprint != without.fingerprint
    for old, new in [('config = "whisper-tiny-frozen"', 'config = "demo"'), ("sweep_steps = 50", "sweep_steps = 60"),
                     ('test_dir = "data/mix"', 'test_dir = "data/v2"'),
                     ("sweep_steps = 50", 'sweep_steps = 50\nfeature_cache = "exp/cache/x"'),
                     ("sweep_steps = 50", "sweep_steps = 50\ndev_limit = 10")]:
        other = read_protocol(write(tmp_path / "r.toml", BASE + SETUP.replace(old, new)))
        assert other.fingerprint != p.fingerprint, new
    block = render_protocol_block(p)
    assert "student config `whisper-tiny-frozen`" in block and "50 optimiser steps per run, first seed" in block
    assert (read_protocol(write(tmp_path / "s.toml", BASE + SETUP.replace("sweep_steps = 50", "sweep_steps = 50\n"
                                                                          'feature_cache = "exp/c"'))).setup
            .feature_cache == "exp/c")


def test_the_example_protocol_has_the_claim_runs_setup():
    u = read_protocol(EXAMPLE).setup
    assert (u.train, u.dev, u.config, u.tokenizer) == ("data/mix/train.jsonl", "data/mix/dev.jsonl",
                                                       "whisper-tiny-frozen", "data/mix/tok1000.model")
    assert (u.bert_teacher, u.lm_teacher, u.feature_cache, u.test_dir) == (
        "exp/p27/teachers/bert-1000", "exp/p27/teachers/lm-1000", "exp/cache/tiny-frozen", "data/mix")


@pytest.mark.parametrize(("old", "new", "message"), [
    ('train = "data/mix/train.jsonl"\n', "", r"\[setup\] missing required key 'train'"),
    ('config = "whisper-tiny-frozen"', 'config = ""', r"\[setup\] config must be a non-empty string"),
    ("sweep_steps = 50", "sweep_steps = 0", r"\[setup\] sweep_steps must be a whole number in \[1, budget.steps"),
    ("sweep_steps = 50", "sweep_steps = 101", r"sweep_steps .* = 100\], got 101"),
    ("sweep_steps = 50", "sweep_steps = 50\nfeature_cache = 3", r"\[setup\] feature_cache must be a string"),
    ("sweep_steps = 50", "sweep_steps = 50\ndev_limit = -1", r"\[setup\] dev_limit must be a whole number"),
    ("sweep_steps = 50", "sweep_steps = 50\nteacher = 'x'", r"\[setup\] unknown key 'teacher'"),
    ('test_dir = "data/mix"', 'test_dir = ["data/mix"]', r"\[setup\] test_dir must be a non-empty string"),
])
def test_a_bad_setup_is_refused_naming_the_file_and_key(tmp_path, old, new, message):
    assert old in SETUP
    path = write(tmp_path / "bad.toml", BASE + SETUP.replace(old, new, 1))
    _refused_in_one_line(path, message)


def test_a_test_set_named_like_a_dev_manifest_is_refused(tmp_path):
    path = write(tmp_path / "bad.toml", BASE.replace('test_sets = ["test"]', 'test_sets = ["test", "dev"]'))
    with pytest.raises(KdasrError, match="test set 'dev' has the name of a dev manifest"):
        read_protocol(path)


ALT = textwrap.dedent("""
    [alternatives]
    methods = ["fusion", "rescore-bert"]
    on = ["ce", "best-kd"]
    lm_weight = [0.1, 0.3]
    nbest = 4
    """)
# BASE's fingerprints before [alternatives] existed (git f2e2ed5): a protocol without the table keeps them
BASE_FINGERPRINT = "706ceeb8c920f6308a92b6c4e4e1aecd730aab14f0397710addaadb8a38cad35"
BASE_SETUP_FINGERPRINT = "82e6c489d509a5dd926f730f2a7d4a6fbdb789d561dc34e8395d479dc937e735"


def test_the_alternatives_are_read_checked_and_in_the_fingerprint_only_when_present(tmp_path):
    p = read_protocol(write(tmp_path / "p.toml", BASE + ALT))
    a = p.alternatives
    assert a.methods == ("fusion", "rescore-bert") and a.on == ("ce", "best-kd") and a.nbest == 4
    assert a.lm_weight == (0.1, 0.3) and a.length_bonus == (0.0,) and a.rescore_weight == (0.1, 0.3, 0.5)
    assert (a.bench_limit, a.bench_repeats) == (16, 1) and a.scorers() == ("lm", "bert")
    assert p.content()["alternatives"]["methods"] == ["fusion", "rescore-bert"]
    without = read_protocol(write(tmp_path / "q.toml", BASE))
    assert without.alternatives is None and "alternatives" not in without.content()
    assert without.fingerprint == BASE_FINGERPRINT != p.fingerprint
    assert read_protocol(write(tmp_path / "s.toml", BASE + SETUP)).fingerprint == BASE_SETUP_FINGERPRINT
    for old, new in [("nbest = 4", "nbest = 5"), ("lm_weight = [0.1, 0.3]", "lm_weight = [0.1, 0.5]"),
                     ('on = ["ce", "best-kd"]', 'on = ["ce"]'), ("nbest = 4", "nbest = 4\nbench_limit = 8"),
                     ('"fusion", "rescore-bert"', '"fusion", "rescore-lm"')]:
        other = read_protocol(write(tmp_path / "r.toml", BASE + ALT.replace(old, new)))
        assert other.fingerprint != p.fingerprint, new
    # defaults: the first system and best-kd (the first alone without a KD system); only the methods' grids
    only = read_protocol(write(tmp_path / "d.toml", BASE + '\n[alternatives]\nmethods = ["rescore-lm"]\n'))
    assert only.alternatives.on == ("ce", "best-kd") and only.alternatives.lm_weight == ()
    assert only.alternatives.rescore_weight == (0.1, 0.3, 0.5) and only.alternatives.scorers() == ("lm",)
    no_kd = BASE.split("[[system]]\nname = \"bert\"")[0] + '[alternatives]\nmethods = ["fusion"]\n'
    assert read_protocol(write(tmp_path / "n.toml", no_kd)).alternatives.on == ("ce",)
    block = render_protocol_block(p)
    assert ("- Inference-time alternatives on ce, best-kd (the KD system with the lowest mean dev WER over seeds): "
            "fusion (lm_weight ∈ {0.1, 0.3}, length_bonus ∈ {0}); rescore-bert (BERT's pseudo-log-likelihood, "
            "rescore_weight ∈ {0.1, 0.3, 0.5})") in block
    assert "beam (at least 4, the n-best list rescored)" in block and "the first 16 utterances of `test`" in block
    assert "alternatives" not in render_protocol_block(without)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("nbest = 4", "nbest = 4\nlm_weights = [1]", r"\[alternatives\] unknown key 'lm_weights' \(known: methods, on,"),
    ('methods = ["fusion", "rescore-bert"]\n', "", r"\[alternatives\] missing required key 'methods'"),
    ('"fusion", "rescore-bert"', '"fusion", "rescore"', r"\[alternatives\] methods: unknown method 'rescore'"),
    ('"fusion", "rescore-bert"', '"fusion", "fusion"', r"\[alternatives\] methods lists a value twice"),
    ('on = ["ce", "best-kd"]', 'on = ["ce", "best"]', r"\[alternatives\] on: 'best' is not a \[\[system\]\] name"),
    ('"fusion", "rescore-bert"', '"rescore-bert"', r"\[alternatives\] lm_weight is the grid of fusion, not among"),
    ("nbest = 4", "nbest = 4\nrescore_weight = []", r"\[alternatives\] rescore_weight must be a non-empty list"),
    ("lm_weight = [0.1, 0.3]", "lm_weight = [0.1, -0.3]", r"\[alternatives\] lm_weight: lm_weight must be within"),
    ("lm_weight = [0.1, 0.3]", 'lm_weight = ["0.1"]', r"\[alternatives\] lm_weight must be a non-empty list"),
    ("nbest = 4", "nbest = 1", r"\[alternatives\] nbest must be a whole number >= 2, got 1"),
    ("nbest = 4", "nbest = 4\nbench_limit = 0", r"\[alternatives\] bench_limit must be a whole number >= 1"),
])
def test_bad_alternatives_are_refused_naming_the_file_and_key(tmp_path, old, new, message):
    assert old in ALT
    path = write(tmp_path / "bad.toml", BASE + ALT.replace(old, new, 1))
    _refused_in_one_line(path, message)


def test_best_kd_needs_a_kd_system_and_alternative_names_stay_free(tmp_path):
    no_kd = BASE.split("[[system]]\nname = \"bert\"")[0]
    path = write(tmp_path / "a.toml", no_kd + '[alternatives]\nmethods = ["fusion"]\non = ["best-kd"]\n')
    with pytest.raises(KdasrError, match=r"on: 'best-kd' needs a KD system"):
        read_protocol(path)
    path = write(tmp_path / "b.toml", BASE.replace('name = "bert"', 'name = "bert+fusion"') + ALT)
    with pytest.raises(KdasrError, match=r"name 'bert\+fusion' has a '\+', which names the alternatives"):
        read_protocol(path)
    with pytest.raises(KdasrError, match=r"'alternatives' must be a table \(\[alternatives\]\), got int"):
        read_protocol(write(tmp_path / "c.toml", "alternatives = 3\n" + BASE))

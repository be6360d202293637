"""Shared fixtures: one tiny corpus, one tiny trained+exported model and a copy of it with random tiny
teachers exported in, per test run (built_once: under pytest-xdist the workers share them).

Fast lane (`make test-fast` = `pytest -m "not slow"`): a test is `slow` when it needs a fixture in
SLOW_FIXTURES, directly or through another fixture (marked here automatically, so new tests follow the
rule), or when it is marked `@pytest.mark.slow` by hand: do that for a test (or, through `pytestmark`,
a file) whose setup + call takes over ~2 s in `pytest --durations=0` on a busy 2-core machine, e.g. a
corpus build, training, or a chain of CLI subprocesses. `make test` runs everything. Build nothing
twice: a test that needs the tiny corpus or model takes these fixtures rather than making its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import warm_kdasr
from filelock import FileLock

KDASR = [sys.executable, "-m", "kdasr"]

# One torch/OpenMP thread per core among xdist's workers (set before torch loads; the CLI subprocesses
# inherit it): two workers of two threads each on two cores made a 6-step training take 3x the wall time
# and 4x the CPU of one thread (spinning threads waiting on each other). A test that is about threads
# says how many it wants.
if workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // workers)))


def corpus_waves(corpus: Path, n: int = 4) -> list:
    """The first n waves of a corpus's test manifest, as the runtime takes them."""
    from kdasr.audio import load_audio
    from kdasr.data.manifest import read_manifest

    return [load_audio(u.audio) for u in read_manifest(corpus / "test.jsonl")[:n]]


# Commands that import torch (and onnx) anyway: run_kdasr forks them from a warm launcher (warm_kdasr.py), one
# per test process, started at the first such call and stopped at the end of the session. Each is still its
# own process (argv, env, cwd, pipes, exit status, a fresh import of kdasr), ~3 CPU-s cheaper to start. Not
# when the call sets a variable that acts as Python, torch or numpy start (a thread count, PYTHONPATH, ...)
# to another value than the launcher's: a fresh interpreter sees it.
WARM_COMMANDS = frozenset({"train", "export", "export-lm", "teacher", "curves"})
STARTUP_VARS = ("PYTHON", "LD_", "OMP_", "MKL_", "KMP_", "OPENBLAS_", "TORCH", "PYTORCH")
_warm_env = dict(os.environ)  # what the launcher starts with (conftest's OMP_NUM_THREADS included)


def _kdasr_prefix(args: tuple[str, ...], env: dict | None) -> list[str]:
    if not args or args[0] not in WARM_COMMANDS:
        return KDASR
    given = {**os.environ, **(env or {})}
    if any(given.get(k) != _warm_env.get(k) for k in {*given, *_warm_env} if k.startswith(STARTUP_VARS)):
        return KDASR
    return warm_kdasr.SHARED.get(_warm_env)


def pytest_sessionfinish(session) -> None:
    warm_kdasr.SHARED.stop()


def run_kdasr(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*_kdasr_prefix(args, env), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"kdasr {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


# fixtures that build a corpus or train: every test that uses one, even indirectly, is slow
SLOW_FIXTURES = frozenset({"tiny_corpus", "tiny_model"})


# The files that take longest on a quiet 2-core machine (test_recipe: its fixture alone 134-202 s;
# test_examples 85-90 s; test_whisper_h2h 50-62 s). make test (pytest-xdist --dist loadfile
# --no-loadscope-reorder) hands whole files to the workers in the order below: test_recipe to one
# worker, the other two to the other, then the rest by number of tests (xdist's own order).
# test_whisper_h2h goes before test_examples: it needs no corpus, so the second worker works while the
# first builds it. Left to xdist's order (most tests first), the one-test test_examples came near the
# end and ran on one worker while the other idled.
LONG_FILES = ("test_recipe.py", "test_whisper_h2h.py", "test_examples.py")


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    count: dict[Path, int] = {}
    for item in items:
        count[item.path] = count.get(item.path, 0) + 1

    def rank(item) -> tuple:
        name = item.path.name
        return (LONG_FILES.index(name) if name in LONG_FILES else len(LONG_FILES), -count[item.path])

    items.sort(key=rank)  # stable: a file's tests, and files of equal rank, keep their order


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder made by build(folder) once per test run. Under pytest-xdist every worker of the run gets
    the same folder: the first to ask builds it while holding a file lock, the others wait for it (a
    session fixture is per worker, so each would build its own). Tests read it and never change it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        out = tmp_path_factory.mktemp(name)
        build(out)
        return out
    run_dir = tmp_path_factory.getbasetemp().parent  # this run's, above each worker's own basetemp
    out, done = run_dir / name, run_dir / f"{name}.done"
    with FileLock(run_dir / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)  # left by a worker whose build failed
            out.mkdir()
            build(out)
            done.touch()
    return out


def _build_tiny_corpus(out: Path) -> None:
    from kdasr.data.synth import synth_corpus
    from kdasr.text import train_tokenizer

    # corpus v1 (Debian voices, WEB + Austen): seconds to build; v2's text download and Kokoro voices
    # are tested on their own in test_corpus_v2.py
    synth_corpus(
        out, seed=1, jobs=2, voices_per_sentence=1, max_train_sentences=12, max_eval_sentences=4, progress=False,
        version=1,
    )
    train_tokenizer([out / "teacher.txt"], out / "tokenizer", vocab_size=60)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, "corpus", _build_tiny_corpus)


@pytest.fixture(scope="session")
def tiny_model(tiny_corpus, tmp_path_factory) -> Path:
    """A toy student trained a few steps through the real CLI, then exported (with parity check)."""
    return built_once(tmp_path_factory, "exp", lambda exp: _train_tiny_model(tiny_corpus, exp)) / "model"


def _train_tiny_model(tiny_corpus: Path, exp: Path) -> None:
    run_kdasr(
        "train",
        "--train",
        str(tiny_corpus / "train.jsonl"),
        "--dev",
        str(tiny_corpus / "dev.jsonl"),
        "--tokenizer",
        str(tiny_corpus / "tokenizer.model"),
        "--out",
        str(exp),
        "--config",
        "tiny",
        "--max-steps",
        "6",
        "--threads",
        "1",  # one: under xdist the other worker has the other core
    )
    proc = run_kdasr("export", str(exp / "last.pt"), "--out", str(exp / "model"), "--check")
    (exp / "export-check.txt").write_text(proc.stdout)  # what the check printed, for test_e2e to read


@pytest.fixture(scope="session")
def tiny_model_with_teachers(tiny_model, tmp_path_factory) -> tuple[Path, Path]:
    """(model dir, root): a copy of the tiny model dir with a random tiny LM and BERT exported into it
    (export-lm --check); root/lm and root/bert are the torch teachers they came from (test_beam compares
    ORT fusion and rescoring with them, test_tune tunes over them)."""
    root = built_once(tmp_path_factory, "teachers", lambda root: _export_random_teachers(tiny_model, root))
    return root / "model", root


def _export_random_teachers(tiny_model: Path, root: Path) -> None:
    from kdasr.text import Tokenizer

    tok = Tokenizer(tiny_model / "tokenizer.model")
    save_random_lm(tok, root / "lm", d_model=32, layers=2)
    save_random_bert(tok, root / "bert", hidden=32, layers=2)
    model_dir = root / "model"
    shutil.copytree(tiny_model, model_dir)
    out = run_kdasr(
        "export-lm", "--lm", str(root / "lm"), "--bert", str(root / "bert"), "--out", str(model_dir), "--check"
    )
    assert "check lm:" in out.stdout and "check bert:" in out.stdout and "FAIL" not in out.stdout


def save_random_lm(tok, folder: Path, d_model: int = 32, layers: int = 2, max_len: int = 128) -> Path:
    """An untrained tiny LM teacher on `tok`'s units saved as `kdasr teacher lm` saves one (folder/lm.pt):
    what tests of fusion, rescoring and LM export need, without training one."""
    import torch

    from kdasr.models.lm import LMConfig, build_lm
    from kdasr.teachers.lm_train import save_lm_teacher

    torch.manual_seed(0)
    lm = build_lm(LMConfig(vocab_size=tok.vocab_size, d_model=d_model, layers=layers, heads=2,
                           ff_dim=2 * d_model, max_len=max_len))
    return save_lm_teacher(lm, tok, folder, {})


def save_random_bert(tok, folder: Path, hidden: int = 32, layers: int = 2, ff_dim: int = 64, window: int = 64,
                     arch: str | None = None, summary: dict | None = None) -> Path:
    """An untrained tiny BERT teacher on `tok`'s units saved as `kdasr teacher bert` saves one (seed 0)."""
    import torch

    from kdasr.teachers.bert import BertConfigLite, build_bert, save_bert_teacher

    torch.manual_seed(0)
    cfg = BertConfigLite(layers=layers, hidden=hidden, heads=2, ff_dim=ff_dim, window=window,
                         **({"arch": arch} if arch else {}))
    save_bert_teacher(build_bert(cfg, tok.vocab_size).eval(), tok, cfg, folder, summary or {})
    return folder


@pytest.fixture
def one_torch_thread():
    """Tiny models: one thread is faster, and far faster on a shared, oversubscribed machine
    (use with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""The README is a guide a clone can follow, and `make demo` is light (issue 30 items 4 and 5).

Item 4: the README linked `../shared/DESIGN.md` (absent in a clone), said nothing of `kdasr serve`,
`kdasr doctor` or how to distil one's own model. Item 5: `make demo` ran `make setup` (torch,
transformers, every extra, 11 Debian packages) for a demo that needs onnxruntime and the model."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import typer

from kdasr.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _code_blocks(text: str) -> str:
    return "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S))


def test_readme_paths_exist_in_a_clone():
    # every repository path the README names, in links or in backquotes, is in the repository
    named = set(re.findall(r"\]\(([^)#]+)\)", README))
    named |= {p for p in re.findall(r"`((?:docs|serve|eval|examples|kdasr)/[\w./-]+)`", README) if "*" not in p}
    assert named, "no paths found: the pattern is broken"
    missing = sorted(p for p in named if not p.startswith("http") and not (ROOT / p).exists())
    assert not missing, f"README names paths a clone lacks: {missing}"
    assert "../shared" not in README


def test_readme_commands_are_real_commands():
    commands = typer.main.get_command(app).commands
    used = set(re.findall(r"^\s*kdasr ([a-z][a-z-]+)", _code_blocks(README), flags=re.M))
    used |= set(re.findall(r"`kdasr ([a-z][a-z-]+)", README))
    assert {"transcribe", "serve", "doctor", "train", "export", "teacher"} <= used
    assert not sorted(c for c in used if c not in commands), "README uses commands kdasr does not have"
    assert "kdasr doctor" in README and "serve/README.md" in README


def test_readme_is_a_guide_in_order():
    heads = [h.lower() for h in re.findall(r"^## (.+)$", README, flags=re.M)]
    order = [next(i for i, h in enumerate(heads) if key in h)
             for key in ("quickstart", "your own model", "deployment", "results")]
    assert order == sorted(order), heads
    assert (ROOT / "examples/distil-your-own.sh").is_file() and "examples/distil-your-own.sh" in README


def test_make_demo_installs_the_runtime_only(tmp_path):
    venv = tmp_path / "demo-venv"
    plan = subprocess.run(["make", "-n", "demo", f"DEMO_VENV={venv}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    steps = plan.stdout
    installs = [line for line in steps.splitlines() if "pip install" in line]
    assert installs and all(re.search(r"pip install (-q )?\.$", line.strip()) for line in installs), installs
    for heavy in ("apt-get", "torch", "setup", ".[", "requirements"):
        assert heavy not in steps, f"make demo runs {heavy!r}:\n{steps}"
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in deps}
    assert "onnxruntime" in names and not names & {"torch", "transformers", "faster-whisper", "fastapi"}

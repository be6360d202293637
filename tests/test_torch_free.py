"""DESIGN.md §2: the runtime commands must work where `import torch` fails."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from kdasr.data.manifest import read_manifest

BLOCKER = textwrap.dedent("""
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('torch', 'transformers'):
                raise ImportError(f'{name} is blocked: the runtime must be torch-free')
            return None
    sys.meta_path.insert(0, _Block())
""")


def test_transcribe_and_eval_without_torch(tiny_corpus, tiny_model, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "blocked" in check.stderr  # the blocker really works
    audio = read_manifest(tiny_corpus / "test.jsonl")[0].audio
    proc = subprocess.run(
        [sys.executable, "-m", "kdasr", "transcribe", audio, "--model", str(tiny_model)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(audio + "\t")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kdasr",
            "eval",
            "--model",
            str(tiny_model),
            "--manifest",
            str(tiny_corpus / "test.jsonl"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "WER" in proc.stdout, proc.stderr

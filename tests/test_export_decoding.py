"""`kdasr export` and the recommended decoding (issue 30 item 9): without decode flags it records the
run's dev-tuned decoding (tuned.json beside the checkpoint, or --options), flags win, and when it
records none it says so plainly. Re-exports a copy of the shipped format-1 model (weights read back
from its graphs) with its recommendation removed: a run that was never tuned."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_kdasr

ROOT = Path(__file__).resolve().parents[1]


def _untuned_run(tmp_path: Path) -> Path:
    src = tmp_path / "run" / "model-src"
    shutil.copytree(ROOT / "export" / "demo-en-v1", src)
    spec = json.loads((src / "model.json").read_text())
    spec["decoding"] = {}
    (src / "model.json").write_text(json.dumps(spec))
    return src


def _decoding(model_dir: Path) -> dict:
    return json.loads((model_dir / "model.json").read_text())["decoding"]


@pytest.mark.slow
def test_export_says_when_it_records_no_decoding_and_uses_the_tuned_one(tmp_path):
    src = _untuned_run(tmp_path)
    bare = run_kdasr("export", str(src), "--out", str(tmp_path / "bare"))
    assert _decoding(tmp_path / "bare") == {}
    assert "note: no decoding recorded" in bare.stderr and "decodes greedy" in bare.stderr
    assert f"--out {src.parent / 'tuned.json'}" in " ".join(bare.stderr.split())

    (src.parent / "tuned.json").write_text(json.dumps({"decoding": {"beam": 4, "ctc_weight": 0.3}}))
    tuned = run_kdasr("export", str(src), "--out", str(tmp_path / "tuned"))
    assert _decoding(tmp_path / "tuned") == {"beam": 4, "ctc_weight": 0.3}
    assert "recorded in model.json: beam=4, ctc_weight=0.3" in tuned.stdout and "tuned.json" in tuned.stdout
    assert "no decoding recorded" not in tuned.stderr



def test_flags_win_over_the_options_file_and_a_bad_file_is_one_line(tmp_path):
    import pytest

    from kdasr.cli.export import _export_decoding
    from kdasr.errors import KdasrError

    ckpt = tmp_path / "run" / "last.pt"
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"decoding": {"beam": 6, "ctc_weight": 0.5}}))
    assert _export_decoding([ckpt], other, {"beam": 3}) == ({"beam": 3, "ctc_weight": 0.5}, f"{other}, flags")
    assert _export_decoding([ckpt], None, {}) == ({}, "")  # no tuned.json in the run
    (ckpt.parent).mkdir()
    (ckpt.parent / "tuned.json").write_text(json.dumps({"decoding": {"beam": 5}}))
    assert _export_decoding([ckpt], None, {}) == ({"beam": 5}, str(ckpt.parent / "tuned.json"))
    assert _export_decoding([ckpt], None, {"beam": 2}) == ({"beam": 2}, "flags")  # given flags: tuned.json unused
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"decoding": {"beams": 6}}))
    with pytest.raises(KdasrError, match="unknown decoding option"):
        _export_decoding([ckpt], bad, {})

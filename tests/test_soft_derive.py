"""`kdasr teacher soft-derive`: labels derived from a (T = 1, K = 12) store equal what the teacher
writes directly at (T = 3, K = 4) and (T = 2, K = 12), up to float16 storage; bad requests are one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from test_soft_labels import tiny_bert, tok, utterances  # noqa: F401  (tok: the module fixture)

from kdasr.errors import KdasrError
from kdasr.teachers.bert import BertTeacher
from kdasr.teachers.soft_derive import derive_soft_labels
from kdasr.teachers.soft_labels import SoftLabelConfig, generate_soft_labels
from kdasr.teachers.storage import load_soft_labels, read_meta

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _direct(tok, folder, t: float, k: int) -> None:  # noqa: F811
    teacher = BertTeacher(tiny_bert(tok.vocab_size), window=64, mask_id=tok.mask_id, path="tiny")
    cfg = SoftLabelConfig(mode="utterance", top_k=k, temperature=t, shard_size=5)
    generate_soft_labels(utterances(), tok, teacher, "bert", cfg, folder, progress=False)
    (folder / "summary.json").write_text("{}")  # as `kdasr teacher soft-labels` ends


def test_derived_labels_equal_the_teachers_own(tok, tmp_path):  # noqa: F811
    _direct(tok, tmp_path / "t1k12", 1.0, 12)
    for t, k in ((3.0, 4), (2.0, 12)):
        _direct(tok, tmp_path / "direct", t, k)
        stats = derive_soft_labels(tmp_path / "t1k12", tmp_path / f"derived-{t:g}-{k}", t, k)
        assert stats["shards_written"] == stats["shards"] == 4 and stats["top_k"] == k
        a, b = load_soft_labels(tmp_path / "direct"), load_soft_labels(tmp_path / f"derived-{t:g}-{k}")
        assert (b.meta.temperature, b.meta.top_k, b.meta.mode) == (t, k, "utterance") and set(a.rows) == set(b.rows)
        for uid, (ids, probs) in a.rows.items():
            np.testing.assert_array_equal(ids, b.rows[uid][0])
            np.testing.assert_allclose(probs, b.rows[uid][1], atol=3e-3)  # both stored as float16
        import shutil

        shutil.rmtree(tmp_path / "direct")
    again = derive_soft_labels(tmp_path / "t1k12", tmp_path / "derived-3-4", 3.0, 4)
    assert again["shards_written"] == 0  # resumed: every shard there


def test_requests_the_source_cannot_serve_are_one_line(tok, tmp_path):  # noqa: F811
    _direct(tok, tmp_path / "src", 1.0, 4)
    with pytest.raises(KdasrError, match="cannot derive K = 8"):
        derive_soft_labels(tmp_path / "src", tmp_path / "out", 3.0, 8)
    with pytest.raises(KdasrError, match="their own folder"):
        derive_soft_labels(tmp_path / "src", tmp_path / "src", 3.0, 2)
    derive_soft_labels(tmp_path / "src", tmp_path / "out", 3.0, 2)
    with pytest.raises(KdasrError, match="other settings"):  # a folder of other labels is not mixed
        derive_soft_labels(tmp_path / "src", tmp_path / "out", 2.0, 2)
    (tmp_path / "src" / "summary.json").unlink()
    proc = subprocess.run([sys.executable, "-m", "kdasr", "teacher", "soft-derive", str(tmp_path / "src"),
                           "--temperature", "2", "--top-k", "2", "--out", str(tmp_path / "o2")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "not finished" in proc.stderr and "Traceback" not in proc.stderr
    assert read_meta(tmp_path / "out").top_k == 2 and json.loads((tmp_path / "out" / "summary.json").read_text())


def test_a_second_writer_of_the_same_folder_waits_for_the_first(tok, tmp_path, capsys, monkeypatch):  # noqa: F811
    """A folder another process is writing (its writer lock held) is not written beside it: the second run
    says so, waits, and once the first has ended keeps what is there and finishes."""
    import textwrap
    import threading
    import time

    import kdasr.teachers.soft_derive as sd
    from kdasr.teachers import storage

    _direct(tok, tmp_path / "src", 1.0, 4)
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from pathlib import Path
        from kdasr.dir_lock import dir_lock
        with dir_lock(Path({str(out)!r}), {storage.WRITER_LOCK!r}):
            print("held", flush=True)
            time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    done: list[dict] = []
    real = storage.one_writer
    monkeypatch.setattr(sd, "one_writer", lambda folder: real(folder, poll_s=0.05))  # the same lock, polled quickly
    try:
        t = threading.Thread(target=lambda: done.append(derive_soft_labels(tmp_path / "src", out, 2.0, 2)))
        t.start()
        time.sleep(1.0)
        assert not done and not list(out.glob("shard-*.npz"))  # waiting, nothing written
        assert f"pid {holder.pid}" in capsys.readouterr().err
        holder.kill()
        holder.wait()
        t.join(timeout=60)
    finally:
        holder.kill()
    assert done and done[0]["shards_written"] == 4 and (out / "summary.json").is_file()

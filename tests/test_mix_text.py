"""The mix's teacher text: v2's text, then one document per game dialogue in spoken order, without
any line that a dev or test set also holds."""

from pathlib import Path

from kdasr.data.manifest import Utterance, write_manifest
from kdasr.data.mix_text import write_teacher_text


def _utt(i: str, text: str, doc: str, pos: int) -> Utterance:
    return Utterance(id=i, audio="a.flac", text=text, duration=1.0, doc=doc, pos=pos)


def test_teacher_text_orders_dialogues_and_leaves_out_held_out_lines(tmp_path: Path):
    v2, game, out = tmp_path / "v2", tmp_path / "game", tmp_path / "mix"
    for d in (v2, game, out):
        d.mkdir()
    (v2 / "teacher.txt").write_text("first synthetic sentence\nsecond one\n", encoding="utf-8")
    write_manifest(game / "train.jsonl", [_utt("g2", "then the reply", "d1", 1), _utt("g1", "a line first", "d1", 0),
                                          _utt("g3", "yes", "d2", 0), _utt("g4", "another scene", "d2", 1)])
    write_manifest(out / "test_real.jsonl", [_utt("t1", "yes", "d9", 0)])
    info = write_teacher_text(out, v2, [game], [out / "test_real.jsonl", out / "dev_real.jsonl"])
    docs = (out / "teacher.txt").read_text(encoding="utf-8").split("\n\n")
    assert docs == ["first synthetic sentence\nsecond one", "a line first\nthen the reply", "another scene\n"]
    assert info == {"documents_added": 2, "lines_added": 3, "lines_left_out_held_out": 1,
                    "base": str(v2 / "teacher.txt")}


def test_teacher_text_without_a_synthetic_teacher_text_holds_the_real_lines(tmp_path: Path):
    write_manifest(tmp_path / "train.jsonl", [_utt("g1", "only line", "d1", 0)])
    info = write_teacher_text(tmp_path, tmp_path / "v2", [tmp_path], [])
    assert (tmp_path / "teacher.txt").read_text(encoding="utf-8") == "only line\n" and info["base"] is None

"""The benches' writers: typed records in, Markdown/JSON out, every row found by its name. The
records are built by hand here (the measuring is covered by test_bench.py, test_paper_table.py
and test_soft_labels.py on real models); the order of the settings in a record is shuffled on
purpose, so a writer that took a row by its place would put the wrong one in."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from kdasr.export.whisper_bench import EncoderTime, StepTime, WhisperBench, whisper_text
from kdasr.reports.bench_records import LongAudio, Measured, RuntimeBench
from kdasr.reports.bench_report import runtime_json, runtime_markdown, write_runtime_bench
from kdasr.reports.bench_systems import ModeStats, SystemRecord, SystemsBench, systems_markdown, write_systems_bench
from kdasr.reports.engines import Row
from kdasr.reports.paper_table import load_bench
from kdasr.teachers.bench_records import BertInfo, KdStepTimes, LmInfo, SoftLabelSpeed, TeacherBench
from kdasr.teachers.bench_report import teachers_markdown, write_teacher_bench

MACHINE = {"cpu": "test CPU", "amx": False, "cores_usable": 2, "cpu_count": 2, "load_average": [0.5, 0.4, 0.3],
           "python": "3.11", "system": "Linux", "versions": {"numpy": "2"}}
AUDIO = 10.0
REC = "beam 10 + CTC 0.2 (model.json recommends)"


def tables(md: str) -> dict[str, list[list[str]]]:
    """The tables' body rows as lists of cells, by `## ` section; a section's second table is
    "SECTION #2"."""
    out: dict[str, list[list[str]]] = {}
    section, key, lines = "top", "top", [*md.splitlines(), ""]
    for i, line in enumerate(lines):
        if line.startswith("## "):
            section = line[3:]
        elif line.startswith("|---"):
            n = sum(k == section or k.startswith(f"{section} #") for k in out)
            key = section if n == 0 else f"{section} #{n + 1}"
            out[key] = []
        elif line.startswith("| ") and not lines[i + 1].startswith("|---"):
            out[key].append([c.strip() for c in line.strip("|").split("|")])
    return out


def named(rows: list[list[str]], name: str) -> list[str]:
    hits = [r for r in rows if r[0] == name]
    assert len(hits) == 1, (name, [r[0] for r in rows])
    return hits[0]


def following(rows: list[list[str]], name: str) -> list[str]:
    """The encoder-only row printed under setting `name`."""
    return rows[rows.index(named(rows, name)) + 1]


def setting(name: str, wall: float, note: str = "", wer: float = 20.0, enc: float | None = None) -> Measured:
    stages = {"encoder graph": 0.5 * wall, "decoder graph": 0.3 * wall, "search (numpy) + rest": 0.2 * wall}
    enc = 0.4 * wall if enc is None else enc
    return Measured(Row(name, wall, AUDIO, wer, wer / 2, cpu=wall, stages=stages),
                    Row("encoder only", enc, AUDIO, cpu=enc), note)


def runtime_record(**change) -> RuntimeBench:
    search = (  # greedy, the base, is not first; beam 5 not second
        setting(f"fp32 {REC}", 4.0, wer=10.0, enc=1.7),
        setting("fp32 beam 5", 2.0, wer=12.0),
        setting("fp32 greedy (beam 1)", 1.0, wer=15.0),
        setting("fp32 greedy, no CTC length limit", 1.0, "length cap: frames x 0.6 only; "),
        setting("int8 greedy (beam 1)", 0.5),
    )
    b = RuntimeBench(
        run="2026-12-06 22:00 UTC", machine=MACHINE, command="kdasr bench ...", note="", manifest="m.jsonl",
        utterances=4, seconds_audio=AUDIO, sample_rate=16000, model="export/x", threads=1, repeats=1,
        reference="torch eager fp32", reference_source="export/x", has_int8=True,
        engines=(setting("ORT fp32, batch 1", 1.0, wer=15.0), setting("torch eager fp32, batch 1", 2.0, wer=15.0),
                 setting("ORT int8, batch 1", 0.5, wer=15.5)),
        batch16=setting("ORT fp32, batch 16", 0.4), search=search, recommended=f"fp32 {REC}", recommended_label=REC,
        fusion=(setting("beam 5 + LM rescoring (0.3)", 4.0, wer=11.0),),
        long_audio=LongAudio(180.0, (*(float(x) for x in range(15, 195, 15)), 180.0), 2.0, 150.0, 3.0, 160.0, 4.0),
    )
    return replace(b, **change)


def test_runtime_tables_take_rows_by_name():
    md = runtime_markdown(runtime_record())
    t = tables(md)
    engines = t["Engines: torch eager vs ORT fp32 vs ORT int8 (greedy, one utterance at a time)"]
    assert named(engines, "torch eager fp32, batch 1")[4] == "1.00x / 1.00x"  # the reference is the base
    assert named(engines, "ORT fp32, batch 1")[4] == "2.00x / 2.00x"
    assert following(engines, "ORT int8, batch 1")[0] == "&nbsp;&nbsp;&nbsp;encoder only"
    assert following(engines, "ORT int8, batch 1")[7] == "40 % of the row above (wall)"
    batch = t["Batch 1 vs batch 16 (ORT fp32, greedy)"]
    assert [r[0] for r in batch[::2]] == ["ORT fp32, batch 1", "ORT fp32, batch 16"]
    assert named(batch, "ORT fp32, batch 16")[4] == "2.50x / 2.50x"
    search = t["Search: greedy, beam, joint CTC/attention (ORT, batch 16)"]
    assert named(search, "fp32 greedy (beam 1)")[4] == "1.00x / 1.00x"  # greedy is the base wherever it stands
    assert named(search, "fp32 beam 5")[4] == "0.50x / 0.50x"
    assert named(search, "fp32 greedy, no CTC length limit")[7].startswith("length cap: frames x 0.6 only; CPU s: ")
    stages = "CPU s: encoder graph 1.00 + decoder graph 0.60 + search (numpy) + rest 0.40"
    assert named(search, "fp32 beam 5")[7] == stages
    fusion = t["Shallow fusion and rescoring cost against plain beam search (ORT fp32, batch 16)"]
    assert [r[0] for r in fusion[::2]] == ["fp32 beam 5", "beam 5 + LM rescoring (0.3)"]  # beam 5 by name
    assert named(fusion, "beam 5 + LM rescoring (0.3)")[4] == "0.50x / 0.50x"
    # the recommended setting's own encoder-only row (1.70 CPU s), not its neighbour's
    assert (f"Recommended decoding (fp32 {REC}): RTFx 2.5 (wall; 2.5 by CPU time) with 1 onnxruntime thread(s); search "
            "(everything but the encoder graph) 2.00 CPU s against the encoder's 2.00 in the same run (1.70 alone): "
            "1.00x the encoder.") in md
    aims = t["Ratios side by side (this run)"]
    assert named(aims, "ORT fp32 vs torch eager (greedy, batch 1, end to end)")[1:5] == ["2.00x", "2.00x", ">= 2.5x",
                                                                                      "missed"]
    assert named(aims, "ORT int8 vs fp32 (greedy, batch 1)")[5] == "CER change +0.25 (aim <= +0.5)"
    assert named(aims, "batch 16 vs batch 1 (ORT fp32, greedy)")[4] == "met"
    long = "- 180.0 s file -> 13 segments (max 20 s, cut at pauses), greedy: 2.00 s, RTFx 90.0; segment ends 15.0,"
    assert long in md
    assert "165.0, 180.0 ...\n" in md and "greedy 150 MB (3.0 s wall incl. start-up), beam 5 160 MB (4.0 s)" in md


def test_recommended_int8_is_the_summary_and_the_search_ratio():
    """A model that recommends int8 on the CPU: the summary line and the encoder-vs-search aim are about
    its int8 row (what a user runs), not the fp32 one beside it."""
    base = runtime_record()
    b = replace(base, search=(*base.search, setting(f"int8 {REC}", 2.0, wer=10.5, enc=0.9)), recommended=f"int8 {REC}")
    md = runtime_markdown(b)
    assert f"Recommended decoding (int8 {REC}): RTFx 5.0 (wall; 5.0 by CPU time)" in md
    assert "against the encoder's 1.00 in the same run (0.90 alone)" in md
    assert named(tables(md)["Ratios side by side (this run)"], f"encoder vs search, int8 {REC}")[4] == "met"


def test_runtime_report_without_reference_int8_or_lm():
    b = runtime_record(reference=None, has_int8=False, fusion=(),
                       engines=(setting("ORT fp32, batch 1", 1.0),),
                       search=tuple(m for m in runtime_record().search if not m.name.startswith("int8")))
    md = runtime_markdown(b)
    t = tables(md)
    engines = t["Engines: torch eager vs ORT fp32 vs ORT int8 (greedy, one utterance at a time)"]
    assert named(engines, "ORT fp32, batch 1")[4] == "1.00x / 1.00x" and len(engines) == 2
    assert "(no int8 graphs in the model dir" in md and "(no exported LM/BERT" in md and "Reference engine" not in md
    assert [r[0] for r in t["Ratios side by side (this run)"]] == [
        "batch 16 vs batch 1 (ORT fp32, greedy)", f"encoder vs search, fp32 {REC}"]


def test_runtime_json_and_markdown_written(tmp_path):
    b = runtime_record()
    write_runtime_bench(b, tmp_path / "r" / "runtime.md", tmp_path / "r" / "runtime.json")
    assert (tmp_path / "r" / "runtime.md").read_text() == runtime_markdown(b)
    doc = json.loads((tmp_path / "r" / "runtime.json").read_text())
    assert doc == json.loads(json.dumps(runtime_json(b), allow_nan=False))
    search = {s["name"]: s for s in doc["search"]}
    assert search[f"fp32 {REC}"]["encoder_only"]["cpu"] == 1.7 and search["fp32 beam 5"]["row"]["rtfx"] == 5.0
    assert doc["recommended"] == f"fp32 {REC}" and doc["sample_rate"] == 16000
    assert {a["what"]: a["met"] for a in doc["aims"]}["batch 16 vs batch 1 (ORT fp32, greedy)"] is True
    with pytest.raises(KeyError, match="no setting"):
        b.setting("fp32 beam 99")


def mode(p50: float) -> ModeStats:
    return ModeStats(rtfx=50.0, wall_s=2.0, cpu_s=1.9, latency_ms_p50=p50, latency_ms_p95=2 * p50,
                     latency_ms_mean=1.2 * p50)


def test_systems_table_takes_the_baseline_by_name(tmp_path):
    fusion = SystemRecord("fusion", "export/a", "fusion.json", "export/lm", {"beam": 5, "lm_weight": 0.3},
                          mode(300.0), mode(900.0), 10.0, None)
    base = SystemRecord("baseline", "export/a", None, None, {"beam": 10, "ctc_weight": 0.2}, mode(100.0), mode(400.0),
                        12.5, 6.25)
    b = SystemsBench(run="r", command="kdasr bench --system ...", note="busy", machine=MACHINE, manifest="m.jsonl",
                     utterances=3, seconds_audio=AUDIO, threads=1, repeats=1, systems=(fusion, base),
                     baseline="baseline", method="the method")
    md = systems_markdown(b)
    rows = tables(md)["top"]
    assert "| system | decoding | RTFx b1 | p50 / p95 ms b1 | RTFx b16 | p50 / p95 ms b16 | p50 b1 / baseline |" in md
    assert named(rows, "fusion") == ["fusion", "beam 5 + LM fusion 0.3", "50.0", "300 / 600", "50.0", "900 / 1800",
                                     "3.00", "10.00", "–"]
    assert named(rows, "baseline")[1] == "beam 10 + CTC 0.2" and named(rows, "baseline")[6] == "1.00"
    assert "**Note:** busy" in md and "rounds: 1. the method." in md
    out = tmp_path / "bench.md"
    write_systems_bench(b, out, out.with_suffix(".json"))
    doc = load_bench(out.with_suffix(".json"))  # what kdasr paper-table and kdasr card read
    assert set(doc) == {"kdasr_bench", "run", "command", "note", "machine", "machine_lines", "manifest", "utterances",
                        "seconds_audio", "threads", "repeats", "systems", "baseline", "method"}
    assert doc["machine_lines"][0].startswith("- CPU: test CPU; 2 cores usable")
    s = {x["name"]: x for x in doc["systems"]}["fusion"]
    assert s["batch1"]["latency_ms_p50"] == 300.0 and s["options_file"] == "fusion.json" and s["cer"] is None
    assert out.read_text() == md


def speed(mode_: str, tokens: int) -> SoftLabelSpeed:
    return SoftLabelSpeed(mode_, 10, tokens, 12.0, 8, 10, 100.0, 400.0, 800.0, 1.0, 1e-6, 1600.0, 0.99, 0.95, 0.01)


def teacher_record(**change) -> TeacherBench:
    b = TeacherBench(
        run="r", machine="test machine", command="", utterances=10, repeats=2, threads=1,
        bert=BertInfo("bert", 4, 256, 4, 64), lm=LmInfo(2, 128),
        soft_labels=(speed("context", 300), speed("utterance", 120)), lm_tokens=120, lm_tps=5000.0,
        bytes_per_token=33.2,
        kd_step=KdStepTimes("demo", 8, 800, 30, 5, {"KD (bert, λ=0.1)": 1.1, "baseline (CE)": 1.0}),
        dev_sentences=200, bert_pppl=12.345, lm_ppl=45.678,
    )
    return replace(b, **change)


def test_teachers_report_takes_rows_by_name(tmp_path):
    b = teacher_record()
    md = teachers_markdown(b)
    t = tables(md)
    soft = t["Soft-label generation (first 10 training utterances, top-8, T=3; fastest of 2 interleaved runs per "
             "method)"]
    assert named(soft, "BERT context")[1:3] == ["300", "10 (8)"] and named(soft, "BERT context")[7] == "4.00× / 8.00×"
    assert named(soft, "LM (one causal forward per utterance)")[1] == "120"  # its own token count
    bf16 = t["Soft-label generation (first 10 training utterances, top-8, T=3; fastest of 2 interleaved runs per "
             "method) #2"]
    assert named(bf16, "BERT utterance") == ["BERT utterance", "1600", "2.00×", "99.00%", "95.00%", "1.0e-02"]
    kd = t["KD training step vs baseline (`demo` student, synthetic batch of 8 × 800 frames, 30 units; forward + "
           "backward + Adam, median of 5 interleaved steps)"]
    assert named(kd, "baseline (CE)")[1:] == ["1.000", "+0.0%"]  # the baseline by name, not the first variant
    assert named(kd, "KD (bert, λ=0.1)")[1:] == ["1.100", "+10.0%"]
    ppl = t["Teacher perplexity on dev text (200 distinct dev sentences)"]
    assert named(ppl, "BERT")[2] == "12.35" and named(ppl, "Transformer LM")[2] == "45.68"
    assert "Command: `kdasr teacher bench`" in md and "## KD training step" not in teachers_markdown(
        teacher_record(kd_step=None))
    text = write_teacher_bench(b, tmp_path / "teachers.md", tmp_path / "teachers.json")
    assert text == md == (tmp_path / "teachers.md").read_text()
    doc = json.loads((tmp_path / "teachers.json").read_text())
    assert doc["kd_step"]["seconds"]["baseline (CE)"] == 1.0 and doc["kd_step"]["baseline"] == "baseline (CE)"
    assert {r["mode"]: r["tokens"] for r in doc["soft_labels"]} == {"context": 300, "utterance": 120}
    assert b.soft_label("utterance").tokens == 120


def test_whisper_bench_text():
    b = WhisperBench("whisper-tiny.en", "2.13", 1, 16000, 8, 31.4,
                     (EncoderTime("torch eager", "5 s unpadded", 0.0812), EncoderTime("onnxruntime", "5 s unpadded",
                                                                                       0.05)),
                     (StepTime("full step, encoder frozen", 1.234),))
    assert whisper_text(b).splitlines() == [
        "whisper-tiny.en, 1 thread, torch 2.13",
        "  encoder graph, torch eager, 5 s unpadded: 81 ms",
        "  encoder graph, onnxruntime, 5 s unpadded: 50 ms",
        "  training step on 8 clips (31.4 s of audio), best of 3:",
        "    full step, encoder frozen: 1234 ms",
    ]
    assert b.encoder_time("onnxruntime", "5 s unpadded").seconds == 0.05


@pytest.mark.slow  # ~60 s: trains the tiny preset's KD step variants for real
def test_kd_step_bench_measures_every_variant(tmp_path):
    from kdasr.text import Tokenizer, train_tokenizer
    from kdasr.training.kd_bench import bench_kd_step
    from kdasr.training.presets import read_preset

    (tmp_path / "text.txt").write_text("the cat sat on the mat\nthe dog ran to the park\n" * 20)
    tok = Tokenizer(train_tokenizer([tmp_path / "text.txt"], tmp_path / "sp", vocab_size=20))
    r = bench_kd_step(tok, read_preset("tiny"), steps=1, batch=1, frames=32, units=3)
    assert (r.preset, r.batch, r.frames, r.units, r.steps) == ("tiny", 1, 32, 3, 1)
    assert r.baseline in r.seconds and len(r.seconds) == 3 and min(r.seconds.values()) > 0

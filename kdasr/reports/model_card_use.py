"""The model card's "Intended use" and "How to use" (the commands and the Python call)."""

from __future__ import annotations

from .model_card_facts import Facts


def intended_use() -> list[str]:
    return ["## Intended use", "",
            "Offline transcription of short English utterances on a CPU, and a measured demonstration of "
            "knowledge distillation into a small seq2seq recogniser (kdasr's purpose). It is a research and demo "
            "model: read the limitations below before using it on anything else.", ""]


def how_to_use(f: Facts) -> list[str]:
    d = f.model_dir
    int8 = all("int8" in g.files for g in f.spec.graphs.values()) and f.spec.precision_for("cpu") != "int8"
    return ["## How to use", "", "```sh",
            f"kdasr transcribe a.wav b.flac --model {d}                 # the recommended decoding and precision",
            f"kdasr transcribe recordings/ --model {d} --output-dir out/ --format jsonl"
            + (" --precision int8" if int8 else f"  # {f.spec.precision_for('cpu')} on CPU"),
            f"kdasr eval --manifest test.jsonl --model {d} --json result.json",
            f"kdasr serve --model {d} --port 8000", "```", "", "```python",
            "from kdasr import Transcriber", f"t = Transcriber({str(d)!r})",
            "print(t.transcribe([\"a.wav\"])[0].text)", "```", ""]

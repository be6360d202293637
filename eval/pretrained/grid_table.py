"""Issue 27's encoder x training grid as a Markdown table, from the records eval/pretrained/run.sh
gridscore wrote: per row NAME-info.json (eval/pretrained/grid_info.py) and NAME-SET-b1.json
(`kdasr eval --json`, greedy, first 200 utterances of each set). Torch-free.

  python eval/pretrained/grid_table.py --records exp/p27/units grid-tiny-frozen grid-tiny-top2 ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SETS = ("dev", "dev_real", "test", "test_real", "test_noisy", "test_heldout", "test_neural_heldout")


def training(info: dict) -> str:
    n, layers = info["whisper_trainable_layers"], info["whisper_layers"]
    if n == 0:
        return "frozen (cached)"
    what = "all" if n == layers else f"top {n} of {layers}"
    cached = f", bottom {layers - n} cached" if info["encoder_cache"] and n < layers else ""
    return f"{what}{cached}, lr x {info['pretrained_lr_scale']:g}"


def table(records: Path, names: list[str]) -> str:
    head = ("| encoder | whisper layers trained | trainable / all params (M) | steps in the minutes | cache build min "
            "| " + " | ".join(SETS) + " |")
    lines = [head, "|---|---|---:|---:|---:|" + "---:|" * len(SETS)]
    for name in names:
        info_path = records / f"{name}-info.json"
        if not info_path.is_file():
            continue
        info = json.loads(info_path.read_text())
        cells = []
        for s in SETS:
            f = records / f"{name}-{s}-b1.json"
            cells.append(f"{json.loads(f.read_text())['wer']:.1f}" if f.is_file() else "–")
        build = info.get("cache_build")
        cache = f"{build['seconds'] / 60:.0f}" if build else "–"
        params = f"{info['trainable_parameters'] / 1e6:.1f} / {info['parameters'] / 1e6:.1f}"
        steps = f"{info['steps']:,} in {info['train_minutes']:.0f} min"
        head = f"| {info['encoder']} | {training(info)} | {params} | {steps} | {cache} | "
        lines.append(head + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=Path, required=True)
    ap.add_argument("names", nargs="+")
    args = ap.parse_args(argv)
    print(table(args.records, args.names))


if __name__ == "__main__":
    main()

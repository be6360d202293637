"""The grid's learning curves from the trainers' train_log.csv: the training loss (attention + CTC, the
mean of the logged batches in each window) at every 15 minutes of each run's budget, and at equal steps:
the mean of the last LAST_ROWS logged rows up to the fewest steps any of the runs made. The dev rows of the
trainer come once per epoch, and the fine-tuned runs do not finish one in 45 minutes, so this is the curve
all six runs have.

  python eval/pretrained/grid_curves.py --logs eval/pretrained/records/logs grid-tiny-frozen grid-base-all ...
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

WINDOW_MIN = 15
LAST_ROWS = 5  # logged rows (20 steps apart) averaged at the equal-steps mark


def windows(rows: list[dict], minutes: int) -> list[tuple[int, float | None]]:
    """(last step, mean loss) of the rows logged in each WINDOW_MIN-minute window up to `minutes`."""
    out = []
    for end in range(WINDOW_MIN, minutes + 1, WINDOW_MIN):
        inside = [r for r in rows if end - WINDOW_MIN < float(r["elapsed_s"]) / 60 <= end]
        out.append((int(inside[-1]["step"]), sum(float(r["loss"]) for r in inside) / len(inside)) if inside
                   else (0, None))
    return out


def loss_at(rows: list[dict], step: int) -> float:
    upto = [float(r["loss"]) for r in rows if int(r["step"]) <= step][-LAST_ROWS:]
    return sum(upto) / len(upto)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=Path, required=True, help="folder of RUN-train_log.csv")
    ap.add_argument("--minutes", type=int, default=45)
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    marks = range(WINDOW_MIN, args.minutes + 1, WINDOW_MIN)
    logs = {}
    for run in args.runs:
        path = args.logs / f"{run}-train_log.csv"
        if path.is_file():
            with path.open() as f:
                logs[run] = list(csv.DictReader(f))
    equal = min(int(rows[-1]["step"]) for rows in logs.values())
    print("| run | " + " | ".join(f"min {m - WINDOW_MIN}-{m}: last step, loss" for m in marks)
          + f" | loss at step {equal:,} |")
    print("|---|" + "---:|" * (len(marks) + 1))
    for run, rows in logs.items():
        cells = [f"{step:,}, {loss:.2f}" if loss is not None else "–" for step, loss in windows(rows, args.minutes)]
        print(f"| {run} | " + " | ".join(cells) + f" | {loss_at(rows, equal):.2f} |")


if __name__ == "__main__":
    main()

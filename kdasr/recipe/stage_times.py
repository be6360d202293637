"""The wall time a recipe's stages actually spent, summed over every run of them, in EXP/times.json.

A stage that finishes adds its time (`add_time`). A stage that is killed (a session's end, a kill -9)
never gets there, so while it runs its time so far is kept beside the total (`StageClock` rewrites
an "open" entry every minute and when it ends); the next run folds an open entry into the total as
a killed run (`fold_open`) before it starts anything. A run that fails leaves its open entry too: its time
was spent as well. Time from before this bookkeeping existed can
be added by hand from the logs (`add_reconstructed`); the table keeps it apart and says so.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..io_utils import atomic_write_text

HEARTBEAT_S = 60.0
_WRITE = threading.Lock()  # the clock's thread and the stage loop both write the file


def _read(times: Path) -> dict:
    try:
        doc = json.loads(times.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write(times: Path, doc: dict) -> None:
    times.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(times, json.dumps(doc, indent=2) + "\n")


def _entry(doc: dict, stage: str) -> dict:
    return doc.setdefault(stage, {"seconds": 0.0, "runs": 0, "commands": 0})


def _count(entry: dict, seconds: float, commands: int) -> None:
    """One more run of a stage, that spent SECONDS and started COMMANDS, into its entry."""
    entry["seconds"] = round(entry["seconds"] + seconds, 1)
    entry["runs"] += 1
    entry["commands"] += commands


def add_time(times: Path, stage: str, seconds: float, commands: int) -> None:
    """A finished run of STAGE: its seconds added to the total (its open entry, now counted, dropped). A run
    that did nothing (commands 0) adds nothing."""
    with _WRITE:
        doc = _read(times)
        if stage in doc:
            doc[stage].pop("open", None)
        if commands:
            _count(_entry(doc, stage), seconds, commands)
        _write(times, doc)


def record_open(times: Path, stage: str, seconds: float, commands: int) -> None:
    """STAGE running for SECONDS so far, COMMANDS started: what a kill now would otherwise lose."""
    with _WRITE:
        doc = _read(times)
        if commands or stage in doc:
            _entry(doc, stage)["open"] = {"seconds": round(seconds, 1), "commands": commands}
            _write(times, doc)


def fold_open(times: Path) -> list[str]:
    """Count every open entry (a run killed before its stage finished) into its total as a killed run; the
    stages it was done for. Called when a run starts, under the experiment's lock."""
    with _WRITE:
        doc = _read(times)
        opened = {s: e.pop("open") for s, e in doc.items() if isinstance(e, dict) and "open" in e}
        folded = [s for s, o in opened.items() if o.get("commands")]
        for s in folded:
            _count(doc[s], float(opened[s]["seconds"]), int(opened[s]["commands"]))
            doc[s]["killed"] = doc[s].get("killed", 0) + 1
        if opened:
            _write(times, doc)
        return folded


def add_reconstructed(times: Path, stage: str, seconds: float, runs: int, note: str) -> None:
    """Time of killed runs from before the open entries existed, read off the logs by hand (NOTE says how):
    kept apart from the measured total."""
    with _WRITE:
        doc = _read(times)
        _entry(doc, stage)["reconstructed"] = {"seconds": round(seconds, 1), "runs": runs, "note": note}
        _write(times, doc)


class StageClock:
    """Keeps the open entry of the stage now running: `start` when it begins, `stop` when it ends (its
    finished time then goes through `add_time`)."""

    def __init__(self, times: Path, ran: Callable[[], int], every: float = HEARTBEAT_S):
        self.times, self.ran, self.every = times, ran, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, stage: str) -> None:
        self.stop()
        self._stop = threading.Event()
        t0, ran0, stop = time.monotonic(), self.ran(), self._stop

        def beat() -> None:
            while not stop.wait(self.every):
                record_open(self.times, stage, time.monotonic() - t0, self.ran() - ran0)

        self._thread = threading.Thread(target=beat, name=f"stage-clock-{stage}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def time_lines(times: Path, order: list[str]) -> list[str]:
    """The wall-time line of the claim table: minutes per stage, measured, plus any reconstructed."""
    doc = _read(times)
    stages = [s for s in order if isinstance(doc.get(s), dict)]
    if not stages:
        return ["- Wall time: none recorded yet"]
    parts, killed = [], 0
    for s in stages:
        e = doc[s]
        part = f"{s} {e['seconds'] / 60:.1f}"
        if rec := e.get("reconstructed"):
            part += f" (+{rec['seconds'] / 60:.1f} reconstructed)"
        parts.append(part)
        killed += e.get("killed", 0)
    measured = sum(doc[s]["seconds"] for s in stages) / 60
    recon = sum(doc[s].get("reconstructed", {}).get("seconds", 0.0) for s in stages) / 60
    stopped = (f", {killed} of them stopped before their stage finished (killed or failed), counted up to their "
               f"last minute") if killed else ""
    out = [f"- Wall time actually spent, minutes on {os.cpu_count()} cores (stages that did work, every run "
           f"summed{stopped}; this table's own stage not yet counted): {', '.join(parts)}; total {measured:.1f}"
           + (f" measured + {recon:.1f} reconstructed = {measured + recon:.1f}" if recon else "")]
    notes = [f"{s}: {doc[s]['reconstructed']['note']}" for s in stages if "reconstructed" in doc[s]]
    if notes:
        out.append("- Reconstructed from the lane logs (runs killed before the recipe kept the time of a "
                   "stage still running; lower bounds): " + "; ".join(notes))
    return out

"""A decode journal: each utterance's result appended as it is made, so that a long evaluation that is
killed (a session's end, Ctrl-C) resumes where it stopped instead of starting again. whisper base takes
about 20 minutes of one CPU thread per test set here (739 utterances).

The first line names what the rows belong to (the recogniser and its options, and the manifest's hash);
a journal of anything else is dropped and the run starts afresh. Each row also carries its audio
file's size and modification time: an utterance whose audio changed since (a rebuilt noisy set) is
decoded again. The caller removes the journal once its result is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..io_utils import file_stamp


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial.jsonl")


def _read(path: Path) -> tuple[dict | None, list[dict]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None, []
    try:
        head = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        return None, []
    rows = []
    for line in lines[1:]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # torn by the kill that ended the earlier run (only the last line can be)
        if isinstance(row, dict) and "id" in row:
            rows.append(row)
    return head, rows


class Journal:
    """Rows by utterance id from an earlier run of the same job (`done`), and `add` for new ones."""

    def __init__(self, path: Path, job: dict) -> None:
        self.path = path
        head, rows = _read(path)
        # another job's rows (other options, an edited manifest) are dropped: they write the same output
        self.dropped = len(rows) if head is not None and head != {"job": job} else 0
        if self.dropped:
            rows = []
        self.done: dict[str, dict] = {r["id"]: r for r in rows}
        # written again whole: a torn last line is dropped, and appends start on a line of their own
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(x) + "\n" for x in [{"job": job}, *rows]), encoding="utf-8")
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the whole run, closed by close()

    def reusable(self, utt_id: str, audio: str | os.PathLike) -> dict | None:
        """The earlier row of this utterance, if its audio is the same file as then."""
        row = self.done.get(utt_id)
        if row is not None and row.get("audio_stamp") == file_stamp(audio):
            return row
        return None

    def add(self, row: dict, audio: str | os.PathLike) -> None:
        self._f.write(json.dumps({**row, "audio_stamp": file_stamp(audio)}) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

"""What `kdasr transcribe` is asked to transcribe: files, directories (searched recursively by audio
extension), glob patterns, `-` (one path a line on stdin) and JSONL manifests, expanded into one
deterministic list of `InputItem`s, optionally cut into a shard for job arrays.

Torch-free and decoding-free: the local command, the Ray path and the server expand inputs the
same way. An argument that names nothing usable becomes an item with `error` set, so it is
reported with the other failures instead of stopping the batch."""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ...errors import KdasrError, ManifestError

AUDIO_EXTENSIONS = frozenset(
    "wav wave flac ogg oga opus mp3 aif aiff aifc au snd caf w64 rf64 sph nist".split()
)
# media a folder scan finds but the loader (libsndfile) cannot read: reported, never skipped silently
UNREADABLE_MEDIA = frozenset("m4a m4b mp4 aac wma webm mkv mka mov avi amr 3gp ac3 ape wv".split())
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputItem:
    audio: str  # a path (as given, or found in a directory)
    start: float = 0.0  # seconds into the file (manifests)
    duration: float | None = None
    id: str | None = None  # a manifest id: the output's name and the result's source
    error: str | None = None  # why this argument gives nothing to transcribe

    @property
    def source(self) -> str:
        return self.id if self.id is not None else self.audio

    def transcriber_input(self):
        """What `Transcriber.transcribe` takes for this item: a path, or an AudioSlice."""
        if self.id is None and self.start == 0.0 and self.duration is None:
            return self.audio
        from ..prepare import AudioSlice

        return AudioSlice(self.audio, self.start, self.duration, self.source)


def shown(text: str) -> str:
    """`text` safe to print as one line: control characters (NUL, newlines, escapes) and the
    surrogates standing for undecodable bytes of a file name are written as escapes."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def is_audio_name(name: str) -> bool:
    return name.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS if "." in name else False


def _unreadable(name: str) -> bool:
    return "." in name and name.rsplit(".", 1)[-1].lower() in UNREADABLE_MEDIA


def _walk(folder: str) -> list[InputItem]:
    """Audio files under `folder`, and media files of formats the loader cannot read as failed items."""
    found = []
    for root, dirs, files in os.walk(folder):  # symlinked folders are not followed (no loops)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.startswith("."):
                continue
            if is_audio_name(f):
                found.append(InputItem(os.path.join(root, f)))
            elif _unreadable(f):
                ext = f.rsplit(".", 1)[-1]
                found.append(InputItem(os.path.join(root, f), error=f"format .{ext} cannot be read (convert it, "
                                       f"e.g. ffmpeg -i {f} {f.rsplit('.', 1)[0]}.flac)"))
    return found


def _glob(pattern: str) -> list[str]:
    """Sorted matches of a pattern. `**` goes through pathlib, which never descends into a symlinked
    folder (glob.glob's recursive walk follows them: a link to a parent folder loops until the
    paths overflow, repeating every file); hidden names are skipped like glob.glob and _walk do."""
    parts = Path(pattern).parts
    if "**" not in parts:
        return sorted(glob.glob(pattern))  # a fixed depth: loops cannot make it endless
    fixed = next(k for k, part in enumerate(parts) if _GLOB_CHARS & set(part))
    root = Path(*parts[:fixed]) if fixed else Path()
    rest = Path(*parts[fixed:]).as_posix()
    try:
        found = [p for p in root.glob(rest) if not any(q.startswith(".") for q in p.relative_to(root).parts)]
    except (OSError, ValueError):
        return []
    return sorted(str(p) for p in found)


def _unique_files(items: list[InputItem]) -> list[InputItem]:
    """Each file once: paths that resolve to one file (through symlinks) keep the shortest; failed
    items (formats the loader cannot read) are kept as they are."""
    seen, keep = set(), set()
    for p in sorted((i.audio for i in items if i.error is None), key=lambda p: (len(p), p)):
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            keep.add(p)
    return [i for i in items if i.error is not None or i.audio in keep]


def _expand_path(arg: str) -> list[InputItem]:
    if "\0" in arg:
        return [InputItem(arg, error="path contains a NUL byte")]
    if os.path.isdir(arg):
        items = _unique_files(_walk(arg))
        if not items:
            exts = ", ".join(f".{e}" for e in sorted(AUDIO_EXTENSIONS))
            return [InputItem(arg, error=f"is a directory with no audio files in it (looked for {exts})")]
        return items
    if not os.path.lexists(arg) and _GLOB_CHARS & set(arg):
        matches = _glob(arg)
        if not matches:
            return [InputItem(arg, error="no files match this pattern")]
        items = []
        for m in matches:
            items += _walk(m) if os.path.isdir(m) else [InputItem(m)]
        return _unique_files(items)
    return [InputItem(arg)]  # missing or unreadable files are reported when they are read


def read_input_manifest(path: str | os.PathLike) -> list[InputItem]:
    """Items of a JSONL manifest: `audio` required (relative to the manifest's folder), `id`, `start`,
    `duration` optional (a training manifest works as is). Raises ManifestError at the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, 0, "<file>", "no such manifest file")
    items, seen = [], {}
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = list(f)
        except UnicodeDecodeError:
            raise ManifestError(path, 0, "<file>", "not valid UTF-8") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(path, n, "<json>", f"invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(d, dict) or not isinstance(d.get("audio"), str) or not d["audio"]:
            raise ManifestError(path, n, "audio", "each line needs an object with a non-empty 'audio' path")
        uid = d.get("id")
        if uid is not None and (not isinstance(uid, str) or not uid.strip()):
            raise ManifestError(path, n, "id", "must be a non-empty string")
        if uid is not None and not uid.isprintable():  # it names the output file
            raise ManifestError(path, n, "id", f"contains a control character ({ascii(uid)[:60]}); ids name files")
        if uid in seen:
            raise ManifestError(path, n, "id", f"duplicate id {uid!r} (first on line {seen[uid]})")
        seen[uid] = n
        start, duration = d.get("start", 0.0), d.get("duration")
        for key, v in (("start", start), ("duration", duration)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
                raise ManifestError(path, n, key, f"expected a number of seconds, got {json.dumps(v)[:40]}")
        audio = d["audio"] if os.path.isabs(d["audio"]) else os.path.join(path.parent, d["audio"])
        items.append(InputItem(audio, float(start), None if duration is None else float(duration), uid))
    return items


def expand_inputs(args: Iterable[str], manifest: str | os.PathLike | None = None, stdin=None) -> list[InputItem]:
    """Every argument expanded in order, then the manifest's items; `-` reads paths from `stdin`.
    The same file (and slice) named twice is transcribed once."""
    items: list[InputItem] = []
    for arg in args:
        if arg == "-":
            if stdin is None:
                raise KdasrError("'-' given but there is no standard input to read paths from")
            # bytes, decoded like the OS decodes file names: any byte sequence is some path (or
            # that line's error), never a UnicodeDecodeError for the whole batch
            for raw in getattr(stdin, "buffer", stdin):
                line = os.fsdecode(raw) if isinstance(raw, bytes) else raw
                line = line.rstrip("\r\n")
                if line.strip():
                    items += _expand_path(line)
        else:
            items += _expand_path(arg)
    if manifest is not None:
        items += read_input_manifest(manifest)
    seen, unique = set(), []
    for it in items:
        key = (os.path.abspath(it.audio), it.start, it.duration, it.id)
        if key not in seen:
            seen.add(key)
            unique.append(it)
    return unique


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n (job-array style): shard i of n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise KdasrError(f"--shard must look like i/n (e.g. 0/4), not {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise KdasrError(f"--shard {text}: need n >= 1 and 0 <= i < n")
    return i, n


def shard(items: list[InputItem], index: int, count: int) -> list[InputItem]:
    """Every count-th item starting at index: shards are disjoint, cover everything, and are balanced
    in number whatever the order; each is the same whichever machine computes it."""
    return items[index::count]

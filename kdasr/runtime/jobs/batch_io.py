"""Where a batch's outputs go and how they are written, shared by `kdasr transcribe --output-dir`,
the Ray path and anything else that must write the same files.

- Names mirror the inputs' paths relative to their common folder (`in/a/x.wav` -> `OUT/a/x.txt`);
  manifest items are named by id. Two inputs that would write one file are refused before
  anything runs, never silently overwritten.
- Every output is written atomically (temp file in the same folder + fsync + rename) as soon as
  its input is finished, so an output that exists is complete: `--skip-existing` trusts that,
  and a killed batch rerun with the same command loses and duplicates nothing.
- The folder's writability is checked before any decoding starts; an output name too long for
  any file system fails that input alone, and the temp files a killed run left for these outputs
  are removed (`prepare_outputs`).
Torch-free, decoding-free."""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import replace
from pathlib import Path, PurePath

from ...errors import KdasrError
from ...io_utils import NAME_MAX, atomic_write_text, remove_orphan_temps_of
from .inputs import InputItem

PATH_MAX = 4096  # bytes (Linux)
# write errors that concern one output's name, not the folder or the disk: that input fails, the batch goes on
PER_FILE_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.EINVAL, errno.EILSEQ})


class OutputError(KdasrError):
    """An output cannot be named or written; one line naming the path and the reason. `per_file`:
    only this output is affected (its name), so a batch records the input as failed and goes on."""

    def __init__(self, message: str, per_file: bool = False) -> None:
        super().__init__(message)
        self.per_file = per_file


def extension(fmt: str) -> str:
    return "txt" if fmt == "text" else fmt


def _relative_key(item: InputItem, base: str) -> PurePath:
    if item.id is not None:
        key = PurePath(item.id)
        if key.is_absolute() or ".." in key.parts or not key.parts:
            raise OutputError(f"manifest id {item.id!r} cannot name an output file (absolute or '..')")
        return key
    rel = PurePath(os.path.relpath(os.path.abspath(item.audio), base))
    return rel.with_suffix("") if rel.suffix else rel


def output_paths(items: list[InputItem], out_dir: str | os.PathLike, fmt: str) -> list[Path]:
    """One output path per item (in order). Raises OutputError if two items would share one."""
    files = [os.path.abspath(it.audio) for it in items if it.id is None]
    base = os.path.commonpath([os.path.dirname(f) for f in files]) if files else os.getcwd()
    out, ext, owner = Path(out_dir), extension(fmt), {}
    paths = []
    for it in items:
        p = out / f"{_relative_key(it, base)}.{ext}"
        fold = str(p).casefold()  # case-insensitive file systems would merge these too
        if fold in owner:
            raise OutputError(
                f"{owner[fold]} and {it.source} would both write {p}; rename one or transcribe them in separate runs"
            )
        owner[fold] = it.source
        paths.append(p)
    return paths


def prepare_outputs(
    items: list[InputItem], out_dir: str | os.PathLike, formats: tuple[str, ...], skip_existing: bool
) -> tuple[list[InputItem], list[tuple[Path, ...]], int, int]:
    """(items, their output paths (one per format), number skipped, orphan temp files removed) for a
    batch writing to `out_dir`: the folder proven writable; an input whose output no file system can
    name gets that as its error (it fails alone, the batch goes on); the temp files a killed run left
    for these outputs removed (others' are left alone); with `skip_existing`, inputs whose every
    format's output exists dropped."""
    outputs = list(zip(*(output_paths(items, out_dir, f) for f in formats)))  # a tuple per input
    check_writable(out_dir)
    items = [it if it.error or not (why := next(filter(None, map(output_problem, ps)), None))
             else replace(it, error=why) for it, ps in zip(items, outputs)]
    orphans = remove_orphan_temps_of([p for ps in outputs for p in ps])
    skipped = 0
    if skip_existing:
        keep = [k for k, ps in enumerate(outputs) if not all(is_done(p) for p in ps)]
        skipped = len(items) - len(keep)
        items, outputs = [items[k] for k in keep], [outputs[k] for k in keep]
    return items, outputs, skipped, orphans


def output_problem(path: str | os.PathLike) -> str | None:
    """Why no file system could hold an output at `path` (a name over NAME_MAX bytes, a path over
    PATH_MAX), else None: that input fails in one line before anything is decoded for it."""
    raw = os.fsencode(os.path.abspath(path))
    longest = max(len(part) for part in raw.split(b"/"))
    if longest > NAME_MAX:
        return f"its output name would be {longest} bytes long (the limit is {NAME_MAX}); rename the input"
    if len(raw) >= PATH_MAX:
        return f"its output path would be {len(raw)} bytes long (the limit is {PATH_MAX - 1})"
    return None


def check_writable(folder: str | os.PathLike) -> None:
    """Create `folder` if needed and prove a file can be created in it; else one-line OutputError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".kdasr-write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputError(f"cannot write to {folder}: {e.strerror or e}") from None


def check_writable_file(path: str | os.PathLike) -> None:
    """For a single output file (e.g. `kdasr eval --hyps`): its folder must take a new file and an
    existing file must not be a directory."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: is a directory")
    check_writable(path.parent if str(path.parent) else ".")


def is_done(path: str | os.PathLike) -> bool:
    """Outputs are only ever renamed into place whole, so one that exists is complete."""
    return os.path.isfile(path)  # False, not an error, for a name the OS refuses


def write_output(path: str | os.PathLike, text: str) -> None:
    """Atomic write; a failure (disk full, permissions) leaves no partial file and raises OutputError
    (`per_file` when only this output's name is the problem)."""
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}", e.errno in PER_FILE_ERRNOS) from None
    except ValueError as e:  # a NUL byte in the name
        raise OutputError(f"cannot write {path!r}: {e}", per_file=True) from None

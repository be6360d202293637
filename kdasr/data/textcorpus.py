"""Public-domain text for the demo corpus: extraction, cleaning, document split.

Sources and recipes are those verified in shared/DATA-SOURCES.md (sections 1.2-1.4):
the World English Bible (Debian `sword-text-web`, one document per chapter) and
Jane Austen's six novels (`r-cran-janeaustenr`, one document per chapter).
Documents are split whole by a hash of their id so no document lands in two splits.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from kdasr.errors import KdasrError
from kdasr.io_utils import atomic_write_text

SPLITS = ("test", "dev", "speech", "teacher")
AUSTEN_BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")
MIN_WORDS, MAX_WORDS = 3, 30
CACHE_VERSION = 1

_ABBR = r"(?:Mr|Mrs|Messrs|Dr|St|Col|Capt|Lt|Gen|Rev|Sir|Esq|Prof|vs|viz|cf|ch|ver|vol|etc|i\.e|e\.g|No|Ps|v)"
_SPLIT_RE = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]*[A-Z])")
_KEY_RE = re.compile(r"^(.+) (\d+):(\d+)$")
_CHAPTER_RE = re.compile(r"^\s*(CHAPTER|Chapter)\s+[IVXLC0-9]+\.?\s*$")


@dataclass(frozen=True)
class Document:
    """One document (a Bible chapter, a novel chapter) as cleaned sentences in order."""

    id: str
    sentences: tuple[str, ...]


def require_program(program: str, package: str) -> None:
    """Raise a KdasrError naming the missing program and how to install it."""
    if shutil.which(program) is None:
        raise KdasrError(
            f"'{program}' not found; install it with: "
            f"sudo apt-get install -y --no-install-recommends {package}"
        )


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, protecting abbreviations and initials (DATA-SOURCES 1.3)."""
    text = " ".join(text.split())
    text = re.sub(r"\b(" + _ABBR + r")\.", r"\1<DOT>", text, flags=re.IGNORECASE)
    text = re.sub(r"\b([A-Z])\.(?=\s)", r"\1<DOT>", text)  # initials
    parts = _SPLIT_RE.split(text)
    return [p.replace("<DOT>", ".").strip() for p in parts if p.strip()]


def clean_sentence(s: str) -> str | None:
    """Lower-case letters, apostrophes and spaces only; None if the sentence must be dropped.

    Sentences with digits are dropped rather than spelled out (no num2words dependency),
    and so are sentences outside 3-30 words (too short to carry context, too long for TTS).
    """
    if re.search(r"\d", s):
        return None
    s = unicodedata.normalize("NFKD", s.replace("&", " and "))
    s = "".join(c for c in s if not unicodedata.combining(c)).lower()
    s = re.sub(r"[\u2019\u2018`]", "'", s)
    s = re.sub(r"[^a-z' ]+", " ", s)  # hyphens/punctuation -> space
    s = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", s)  # quote marks go, don't / saul's stay
    s = " ".join(s.split())
    return s if MIN_WORDS <= len(s.split()) <= MAX_WORDS else None


def text_to_sentences(text: str) -> tuple[str, ...]:
    return tuple(c for c in map(clean_sentence, split_sentences(text)) if c)


def clean_osis(x: str) -> str:
    """OSIS markup -> plain text; notes become a space so words are not glued together."""
    x = re.sub(r"<note\b.*?</note>", " ", x, flags=re.DOTALL)
    x = re.sub(r"<title\b.*?</title>", " ", x, flags=re.DOTALL)
    x = re.sub(r"<(?:l|lb|lg|p|div)\b[^>]*>", " ", x)
    return re.sub(r"<[^>]+>", "", x)


def parse_imp(imp: str) -> list[tuple[str, str]]:
    """mod2imp output -> [(chapter id 'Genesis 1', chapter text)] in book order; intros skipped."""
    chapters: dict[str, list[str]] = {}
    key: str | None = None
    for line in imp.splitlines():
        if line.startswith("$$$"):
            m = _KEY_RE.match(line[3:].strip())
            key = None
            if m and int(m.group(2)) > 0 and int(m.group(3)) > 0:
                key = f"{m.group(1)} {int(m.group(2))}"
                chapters.setdefault(key, [])
        elif key is not None:
            chapters[key].append(clean_osis(line))
    return [(k, " ".join(v)) for k, v in chapters.items()]


def extract_web() -> list[Document]:
    require_program("mod2imp", "sword-text-web libsword-utils")
    res = subprocess.run(["mod2imp", "engWEB2015eb"], check=False, capture_output=True, text=True)
    if res.returncode != 0 or "$$$" not in res.stdout:
        raise KdasrError("mod2imp engWEB2015eb failed; install it with: sudo apt-get install -y sword-text-web")
    docs = [Document(f"web:{k}", text_to_sentences(t)) for k, t in parse_imp(res.stdout)]
    return [d for d in docs if d.sentences]


def parse_austen_book(book: str, lines: list[str]) -> list[Document]:
    """One document per chapter; the title block and VOLUME/THE END lines are dropped."""
    chapters: list[list[str]] = []
    for line in lines:
        if _CHAPTER_RE.match(line):
            chapters.append([])
        elif chapters and not re.match(r"^\s*(VOLUME\s+[IVX]+|THE END)\.?\s*$", line):
            chapters[-1].append(line.replace("_", ""))
    docs = [Document(f"austen:{book}:{i + 1}", text_to_sentences(" ".join(c))) for i, c in enumerate(chapters)]
    return [d for d in docs if d.sentences]


def extract_austen() -> list[Document]:
    require_program("Rscript", "r-cran-janeaustenr")
    with tempfile.TemporaryDirectory() as tmp:
        books = ", ".join(f'"{b}"' for b in AUSTEN_BOOKS)
        code = (
            f"library(janeaustenr); for (b in c({books})) "
            f'writeLines(get(b), file.path("{tmp}", paste0(b, ".txt")))'
        )
        res = subprocess.run(["Rscript", "-e", code], check=False, capture_output=True, text=True)
        if res.returncode != 0:
            raise KdasrError(
                "Rscript could not load janeaustenr; install it with: sudo apt-get install -y r-cran-janeaustenr"
            )
        docs: list[Document] = []
        for b in AUSTEN_BOOKS:
            lines = (Path(tmp) / f"{b}.txt").read_text(encoding="utf-8").splitlines()
            docs += parse_austen_book(b, lines)
    return docs


def load_documents(cache_dir: Path) -> list[Document]:
    """All WEB + Austen documents, cached as JSONL in cache_dir (extraction takes seconds)."""
    cache = cache_dir / f"documents.v{CACHE_VERSION}.jsonl"
    if cache.exists():
        with open(cache, encoding="utf-8") as f:
            return [Document(r["id"], tuple(r["sentences"])) for r in map(json.loads, f)]
    docs = extract_web() + extract_austen()
    atomic_write_text(
        cache, "".join(json.dumps({"id": d.id, "sentences": list(d.sentences)}) + "\n" for d in docs)
    )
    return docs


def assign_split(doc_id: str) -> str:
    """Split by a stable hash of the id: ~2% test, 2% dev, 7.5% speech, rest teacher text."""
    if doc_id.startswith("web:Psalms "):
        return "teacher"  # psalm text is quoted all over commentary: keep it out of eval
    h = int(hashlib.sha1(doc_id.encode("utf-8")).hexdigest()[:8], 16) % 1000
    if h < 20:
        return "test"
    if h < 40:
        return "dev"
    if h < 115:
        return "speech"
    return "teacher"


def split_documents(docs: list[Document]) -> dict[str, list[Document]]:
    """Whole documents per split; sentences of dev/test removed from speech and teacher (leak)."""
    out: dict[str, list[Document]] = {s: [] for s in SPLITS}
    for d in docs:
        out[assign_split(d.id)].append(d)
    held = {s for split in ("dev", "test") for d in out[split] for s in d.sentences}
    for split in ("speech", "teacher"):
        kept = [Document(d.id, tuple(s for s in d.sentences if s not in held)) for d in out[split]]
        out[split] = [d for d in kept if d.sentences]
    return out


def cap_sentences(docs: list[Document], cap: int | None) -> list[Document]:
    """First `cap` sentences taking documents in order; the last document is cut to a prefix."""
    if cap is None:
        return docs
    out: list[Document] = []
    left = cap
    for d in docs:
        if left <= 0:
            break
        out.append(Document(d.id, d.sentences[:left]))
        left -= len(out[-1].sentences)
    return out

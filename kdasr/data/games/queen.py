"""Reader of Flight of the Amazon Queen's talkie resource archive (`queen.1c`, Debian package
`flight-of-the-amazon-queen`): the speech clips and the line each of them speaks. Torch-free.

Written from how ScummVM's `engines/queen` reads the game (resource.cpp, talk.cpp, cutaway.cpp,
logic.cpp); the engine is never run. What the archive holds:
- a table `QTBL`: name (12 bytes), bundle, offset, size of every resource; `*.SB` clips are MP3;
- `*.DOG` dialogues: Joe's and the other person's lines with ids; clip `KKHHHHP#` / `KKHHHHJ#` is
  talk key K, line id H (hex), P(erson) or J(oe), spoken segment #;
- `*.CUT` cutaways: one line per scene object, spoken by that object; clip `NAME_II#` (name padded
  to 5 with '_', object index I, segment #);
- `QUEEN2.JAS`: object descriptions and Joe's stock responses, clip `JOE####` + segment.
A line is split into spoken segments at `*XX` stage commands (faces, pauses, walks), each segment its
own clip; the commands themselves are never spoken, so they never reach a transcript.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from kdasr.errors import KdasrError

ARCHIVE = "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c"
_HEADER = 20  # bytes before the data of DOG, CUT and JAS resources (resource.h: DOG_HEADER_SIZE etc.)
JOE_RESPONSE_MAX = 40  # logic.h
_OBJECT_JOE, _ROOMFADE = 0, -1  # cutaway.h: object numbers with a meaning of their own
_TEXT_OBJECTS = (-2, -3)  # cutaway text "spoken" / "displayed and spoken": the narrator's voice
_PERSON_IMAGES = (-3, -4)  # an object whose image is -3/-4 is a person (logic.cpp findBob)

# Dialogue files are named after the person spoken to; these stems name a person whose object name
# (the cutaways' speaker) differs. A stem not listed stays a speaker of its own.
DOG_SPEAKERS = {
    "AND": "Anderson", "BOB": "Trader Bob", "BUD": "Bud", "CHEF": "chef", "CHIEF": "chief", "DOG": "guard dog",
    "FAYE": "Faye", "FRANK": "Frank", "HENRY": "Henry", "IAN": "Ian", "JIM": "Jimmy", "JOHN": "John",
    "KLUNK": "Klunk", "LOLA": "Lola", "LOU": "Mary-Lou", "NAOMI": "Naomi", "PRIN": "Princess Azura",
    "SEC": "secretary", "SHOWERAM": "showering Amazon", "SPARKY": "Sparky", "TALLPYG": "tall pygmy",
    "WEDGE": "Wedgewood", "WITCH": "witch doctor", "ZOMBIE": "zombie woman", "APE": "gorilla in costume",
}


@dataclass(frozen=True)
class Line:
    clip: str  # resource name without ".SB"
    text: str  # the segment as written in the game (stage commands removed)
    speaker: str  # character name
    source: str  # resource the line comes from, e.g. "C18C.CUT"


class QueenArchive:
    """The resource table of a `queen.1c` file, read once; `read(name)` gives one resource's bytes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._data = self.path.read_bytes()
        except OSError as e:
            raise KdasrError(f"{path}: cannot read the game archive: {e.strerror}") from None
        d = self._data
        if d[:4] != b"QTBL" or len(d) < 15:
            raise KdasrError(f"{path}: not a ScummVM-rebuilt FOTAQ archive (no QTBL header)")
        self.version = d[4:10].split(b"\0")[0].decode("ascii", "replace")
        self.compression = d[12]
        if self.version[:2] != "CE" or self.compression != 1:
            raise KdasrError(f"{path}: expected the English talkie with MP3 speech (CE*, compression 1), "
                             f"found {self.version!r}, compression {self.compression}")
        (count,) = struct.unpack_from(">H", d, 13)
        self.entries: dict[str, tuple[int, int]] = {}
        for i in range(count):
            p = 15 + 21 * i
            name = d[p:p + 12].split(b"\0")[0].decode("ascii")
            offset, size = struct.unpack_from(">II", d, p + 13)
            if offset + size > len(d):
                raise KdasrError(f"{path}: resource {name} runs past the end of the file (truncated download?)")
            self.entries[name] = (offset, size)

    def names(self, suffix: str) -> list[str]:
        return sorted(n for n in self.entries if n.endswith(suffix))

    def read(self, name: str, skip: int = 0) -> bytes:
        offset, size = self.entries[name]
        return self._data[offset + skip:offset + size]


def _string(b: bytes, o: int, align: int = 2) -> tuple[str, int]:
    """A length-prefixed string and the offset after it, padded like talk.cpp getString."""
    n = b[o]
    o += 1
    if not n:
        return "", o
    return b[o:o + n].decode("latin-1"), (o + n + align - 1) & ~(align - 1)


def _i16(b: bytes, o: int) -> int:
    return struct.unpack_from(">h", b, o)[0]


def spoken_segments(sentence: str) -> list[tuple[int, str]]:
    """(segment index, text) of a line, split where the engine splits it at `*XX` commands
    (talk.cpp speak): `*XY00(237,112)` is 13 characters, other commands 3; GD/GM grab, never speak."""
    out, index, start, i = [], 0, 0, 0
    while i < len(sentence):
        if sentence[i] != "*":
            i += 1
            continue
        segment, code = sentence[start:i], sentence[i + 1:i + 3]
        i += 3 + (11 if code == "XY" else 0)
        if code not in ("GD", "GM"):
            out.append((index, segment))
        index, start = index + 1, i
    if start < len(sentence):
        out.append((index, sentence[start:]))
    return out


def _clip(prefix: str, index: int) -> str:
    # sprintf("%2d%4x") leaves spaces the engine's file lookup reads as zeros; names are upper case
    return (prefix + f"{index + 1:x}").replace(" ", "0").upper()


def _lines(prefix: str, sentence: str, speaker: str, source: str) -> list[Line]:
    return [Line(_clip(prefix, i), seg, speaker, source) for i, seg in spoken_segments(sentence) if seg.strip()]


class _Jas:
    """Objects (name, image) and strings of QUEEN.JAS / QUEEN2.JAS (logic.cpp readQueenJas)."""

    def __init__(self, archive: QueenArchive):
        jas = archive.read("QUEEN.JAS", _HEADER)
        _rooms, names, objects, descriptions = struct.unpack_from(">4H", jas, 0)
        self.objects = [struct.unpack_from(">8h", jas, 8 + 16 * i) for i in range(objects)]
        text = archive.read("QUEEN2.JAS").decode("latin-1").splitlines()
        self.descriptions = text[:descriptions]
        self.object_names = text[descriptions:descriptions + names]
        responses_at = descriptions + names + _rooms + 12  # + room names + 12 verbs
        self.joe_responses = text[responses_at:responses_at + JOE_RESPONSE_MAX]

    def is_person(self, obj: int) -> bool:
        return 0 < obj <= len(self.objects) and self.objects[obj - 1][7] in _PERSON_IMAGES

    def speaker(self, obj: int) -> str:
        if obj in (_OBJECT_JOE, _ROOMFADE):
            return "Joe"
        if obj in _TEXT_OBJECTS:
            return "narrator"
        name = abs(self.objects[obj - 1][0]) if 0 < obj <= len(self.objects) else 0
        return self.object_names[name - 1] if 0 < name <= len(self.object_names) else f"object {obj}"


def _dialogue_lines(archive: QueenArchive, name: str) -> list[Line]:
    """Every line of a DOG file (talk.cpp load / initialTalk / findDialogueString)."""
    b = archive.read(name, _HEADER)
    levels, key, joe_max, person_max = abs(_i16(b, 0)), _i16(b, 4), _i16(b, 6), _i16(b, 8)
    person1, person2 = struct.unpack_from(">H", b, 22)[0], struct.unpack_from(">H", b, 26)[0]
    joe_at = 32 + levels * 96
    stem = re.sub(r"\d+$", "", name[:-4])
    person = DOG_SPEAKERS.get(stem, stem.lower())
    out: list[Line] = []

    def table(offset: int, count: int, tag: str, speaker: str) -> None:
        for _ in range(count):
            line_id = _i16(b, offset + 2)
            text, offset = _string(b, offset + 4, 4)
            out.extend(_lines(f"{key:2d}{line_id:4x}{tag}", text, speaker, name))

    table(joe_at, joe_max, "J", "Joe")
    table(person1, person_max, "P", person)
    if not struct.unpack_from(">H", b, joe_at + 2)[0]:  # Joe's opening line, "SSSS"
        out.extend(_lines(f"{key:2d}SSSSJ", _string(b, joe_at + 4)[0], "Joe", name))
    again_person, o = _string(b, person2)  # the "talked before" pair, "XXXX"
    again_joe, _ = _string(b, o)
    out.extend(_lines(f"{key:2d}XXXXP", again_person, person, name))
    out.extend(_lines(f"{key:2d}XXXXJ", again_joe, "Joe", name))
    return out


def _cutaway_lines(archive: QueenArchive, name: str, jas: _Jas) -> list[Line]:
    """One line per scene object of a CUT file, spoken by that object (cutaway.cpp load / run)."""
    b = archive.read(name, _HEADER)
    count, sentences_at = abs(_i16(b, 2)), struct.unpack_from(">H", b, 8)[0]
    base = name[:-4].ljust(5, "_")
    _, o = _string(b, sentences_at)  # the entry string (Joe's facing), not spoken
    speakers = _cutaway_speakers(b, count, jas)
    out = []
    for i in range(1, count + 1):
        text, o = _string(b, o)
        if text and text != "*" and not text.startswith("#"):  # '#': the credits, not speech
            out.extend(_lines(f"{base}{i:02d}", text, speakers[i - 1], name))
    return out


def _cutaway_speakers(b: bytes, count: int, jas: _Jas) -> list[str]:
    """The speaker of each object record; walks the records as Cutaway::run does, skipping the
    animation frames of animated objects. 'unknown' from the first record that does not parse."""
    speakers, p = [], 12
    try:
        for _ in range(count):
            rec = struct.unpack_from(">17h", b, p)
            p += 34
            obj, anim_list, execute, from_obj = rec[0], rec[4], rec[5], rec[12]
            people = _i16(b, p)
            p += 2 + 2 * people
            obj = _OBJECT_JOE if obj == _ROOMFADE else obj
            speaker_obj = obj
            animated = True
            if (obj > 0 and not anim_list and jas.is_person(obj)) or (obj == _OBJECT_JOE and not anim_list):
                animated = False
            if from_obj > 0 or obj in (-2, -3, -4) or not execute:
                animated = False
            if animated:
                while (header := _i16(b, p)) != -2:
                    if header > 1000:
                        raise ValueError("animation header out of range")
                    p += 2 + 18  # header + 9 int16 (frame, speed, bank, mx, my, cx, cy, scale, song)
                p += 2
            speakers.append(jas.speaker(speaker_obj))
    except (struct.error, ValueError):
        speakers += ["unknown"] * (count - len(speakers))
    return speakers


def read_lines(archive: QueenArchive) -> dict[str, list[Line]]:
    """clip name -> the lines whose segment it speaks (one when the format pairs it exactly)."""
    jas = _Jas(archive)
    lines: list[Line] = []
    for name in archive.names(".DOG"):
        lines += _dialogue_lines(archive, name)
    for name in archive.names(".CUT"):
        lines += _cutaway_lines(archive, name, jas)
    for k, text in enumerate(jas.joe_responses, 1):
        lines += _lines(f"JOE{k:04d}", text, "Joe", "QUEEN2.JAS")
    for k, text in enumerate(jas.descriptions, 1):
        lines += _lines(f"JOE{k + JOE_RESPONSE_MAX:04d}", text, "Joe", "QUEEN2.JAS")
    by_clip: dict[str, list[Line]] = {}
    for line in lines:
        if line not in by_clip.setdefault(line.clip, []):
            by_clip[line.clip].append(line)
    return by_clip

"""Reader of Beneath a Steel Sky's CD talkie data (`sky.dnr` + `sky.dsk`, Debian package
`beneath-a-steel-sky` 0.0372): the speech clips, the English text lines, and which line each clip speaks.
Torch-free.

Written from how ScummVM's `engines/sky` reads the game (disk.cpp, rnc_deco.cpp, text.cpp, sound.cpp);
the engine is never run. What the files hold:
- `sky.dnr`: a table of every file in `sky.dsk`: number (u16), offset (24 bits, the top bit: offset is
  in 16-byte units), size (22 bits) and two flags (bit 22: a packed file's 22-byte header is not part of
  it; bit 23: stored, not packed). A packed file starts with its 22-byte header (bit 7 of the first word
  says packed), then an RNC block (kdasr.data.games.rnc).
- text: files 60600 + section (English, sections 0-7), Huffman-coded with the game's fixed code
  (`_CODES`); a text number is section << 12 | block of 32 << 5 | line, found through the file's
  per-block bit offsets and per-line skips.
- speech: file 50000 + `SPEECH_BASE[section]` + (text number & 0xFFF) is the recording of that text
  line: unsigned 8-bit mono PCM at 11025 Hz after the 22-byte header. So a clip's line follows from
  the numbering alone; a clip past its section's last text line has no line in the format.
- who speaks a line is not in the text or the speech files. The game's scripts (files 60400-60406) name
  the speaker when they call the speech routine, but for most conversation lines through a script
  variable set at run time: a static reading of the calls named the speaker of 1,086 of the 3,428 lines
  (785 of them the hero's), too few voices to hold any out. `Line.speaker` says "unknown".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdasr.data.games.rnc import SIGNATURE, RncError, unpack
from kdasr.errors import KdasrError

DATA_DIR = "usr/share/scummvm/beneath-a-steel-sky"
SAMPLE_RATE = 11025
VERSIONS = {5097: "0.0372", 5099: "0.0368"}  # the CD talkies, told apart by their file count (disk.cpp)
TEXT_FILE, SECTIONS = 60600, 8  # English: language 0; each language has 8 sections
SPEECH_FILE = 50000
# first speech file (after SPEECH_FILE) of each section's text lines (sound.cpp); the next section's
# base bounds a section's clips
SPEECH_BASE = (0, 600, 1100, 2430, 3380, 4530, 5080, 5230)
SPEECH_END = SPEECH_BASE[-1] + 0x1000  # a section has at most 0x1000 text numbers
# text numbers of a section that have a speech file of their own (up to the next section's base)
_SPAN = tuple(b - a for a, b in zip(SPEECH_BASE, SPEECH_BASE[1:] + (SPEECH_END,)))
_HEADER = 22  # the data file header (struc.h DataFileHeader): 11 little-endian u16

# The game's fixed Huffman code for text (one tree, kept by ScummVM as _huffTree_00372): code bits
# (first bit read first) and the byte they stand for, hex; byte 0 ends a line.
_CODES = dict(
    (bits, int(byte, 16)) for bits, byte in (pair.split(":") for pair in (
    "000:20 0010:65 0011:61 0111:72 01000:6f 01001:73 01010:74 01011:6e 01100:2e 01101:69 10001:75 "
    "10010:6d 10011:41 10111:54 100000:0 100001:45 101000:6c 101001:49 101010:64 101011:52 101100:4e "
    "101101:53 110001:63 110010:44 110011:67 110111:4d 1100000:4f 1100001:68 1101000:4c 1101001:43 "
    "1101010:70 1101011:55 1101100:21 1101101:79 1110001:48 1110010:3f 1110011:62 1110101:2c 1110110:47 "
    "1110111:42 11100000:50 11100001:76 11101000:27 11101001:66 11110001:46 11110010:71 11110011:77 "
    "11110101:57 11110110:4a 11110111:2a 111100000:56 111100001:6b 111101000:4b 111101001:2d 111110000:7a "
    "111110001:59 111110010:6a 111110011:2b 111110101:29 111110111:3c 1111101000:51 1111101001:85 "
    "1111101100:5a 1111101101:8b 1111110001:8a 1111110010:87 1111110011:3a 1111110101:23 1111110111:91 "
    "11111100000:95 11111100001:7e 11111101000:7f 11111101001:5d 11111101100:78 11111101101:58 "
    "11111110001:32 11111110011:31 11111110101:3d 11111110110:86 11111110111:5e 111111100000:88 "
    "111111100001:60 111111100100:30 111111100101:83 111111101000:2f 111111101001:28 111111110000:33 "
    "111111110001:39 111111110010:98 111111110011:34 111111110101:5c 111111110110:22 111111110111:90 "
    "1111111101000:7d 1111111101001:38 1111111110000:26 1111111110001:8d 1111111110010:35 "
    "1111111110011:36 1111111110100:92 1111111110101:8f 1111111110110:8e 1111111110111:93 "
    "1111111111001:80 11111111110000:8c 11111111110001:37 11111111110100:81 11111111110101:99 "
    "11111111110110:24 11111111110111:40 11111111111001:5f 11111111111010:3e 11111111111011:96 "
    "11111111111101:9 111111111110000:5b 111111111110001:9a 111111111111000:82 111111111111001:25 "
    "111111111111100:9c 111111111111101:97 111111111111110:7b 1111111111111110:94 1111111111111111:21 "
    ).split())
)


@dataclass(frozen=True)
class Line:
    clip: str  # speech file number, e.g. "50007"
    text: str  # as written in the game (capitals mark stressed words)
    speaker: str  # who says it: "unknown" (not in the data files, see the module docstring)
    source: str  # "section S block B": 32 consecutive text numbers, a scene's neighbouring lines
    number: int  # the text number


class SkyDisk:
    """The file table of `sky.dnr` over `sky.dsk`; `read(number)` gives one file as the engine loads it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        dnr, dsk = self.folder / "sky.dnr", self.folder / "sky.dsk"
        try:
            table = dnr.read_bytes()
            self._data = dsk.read_bytes()
        except OSError as e:
            raise KdasrError(f"{e.filename}: cannot read the game data: {e.strerror}") from None
        count = struct.unpack_from("<I", table, 0)[0] if len(table) >= 4 else 0
        if count not in VERSIONS or len(table) < 4 + 8 * count:
            raise KdasrError(f"{dnr}: not the Beneath a Steel Sky CD talkie ({count} files in the table; "
                             f"expected {' or '.join(map(str, VERSIONS))})")
        self.version = VERSIONS[count]
        self.entries: dict[int, tuple[int, int, int]] = {}  # number -> (offset, size, flags)
        for i in range(count):
            p = 4 + 8 * i
            number = struct.unpack_from("<H", table, p)[0]
            where = int.from_bytes(table[p + 2:p + 5], "little")
            flags = int.from_bytes(table[p + 5:p + 8], "little")
            offset = (where & 0x7FFFFF) << 4 if where & 0x800000 else where & 0x7FFFFF
            size = flags & 0x3FFFFF
            if offset + size > len(self._data):
                raise KdasrError(f"{dsk}: file {number} runs past the end (truncated download?)")
            self.entries[number] = (offset, size, flags >> 22)

    def speech_files(self) -> list[int]:
        return sorted(n for n in self.entries if SPEECH_FILE <= n < SPEECH_FILE + SPEECH_END)

    def read(self, number: int) -> bytes:
        """The file's bytes, unpacked; with its 22-byte header unless the table says it has none.
        RncError when a packed file does not unpack (or fails its checksums)."""
        offset, size, flags = self.entries[number]
        raw = self._data[offset:offset + size]
        if flags & 2 or len(raw) < _HEADER or not raw[0] & 0x80 or raw[_HEADER:_HEADER + 4] != SIGNATURE:
            return raw  # stored as it is
        body = unpack(raw[_HEADER:])
        return body if flags & 1 else raw[:_HEADER] + body

    def speech(self, number: int) -> np.ndarray:
        """A speech file as float32 samples in [-1, 1) at SAMPLE_RATE (unsigned 8-bit PCM after the header)."""
        data = self.read(number)
        if len(data) <= _HEADER:
            raise RncError("no samples after the header")
        pcm = np.frombuffer(data, np.uint8, offset=_HEADER)
        return (pcm.astype(np.float32) - 128.0) / 128.0


def speech_file(text_number: int) -> int:
    """The speech file that speaks a text line (sound.cpp startSpeech)."""
    return SPEECH_FILE + SPEECH_BASE[text_number >> 12] + (text_number & 0xFFF)


def _decode(bits: str, start: int) -> str:
    out, code, i = [], "", start
    while i < len(bits):
        code += bits[i]
        i += 1
        byte = _CODES.get(code)
        if byte is None:
            if len(code) > 16:
                break
            continue
        if byte == 0:
            return "".join(out)
        out.append(chr(byte))
        code = ""
    raise ValueError("text runs past the end of its file")


def section_texts(disk: SkyDisk, section: int) -> dict[int, str]:
    """text number -> line of one section (text.cpp getText, for every number the file's tables cover)."""
    try:
        data = disk.read(TEXT_FILE + section)
    except (KeyError, RncError) as e:
        raise KdasrError(f"{disk.folder / 'sky.dsk'}: the text of section {section} (file {TEXT_FILE + section}) "
                         f"cannot be read: {e}") from None
    skips_at, bits_at = struct.unpack_from("<HH", data, 0)
    blocks = (skips_at - 4) // 2
    bits = "".join(f"{b:08b}" for b in data[bits_at:])
    texts, block_start = {}, 0
    for block in range(blocks):
        at = block_start
        for line in range(32):
            number = section << 12 | block << 5 | line
            try:
                texts[number] = _decode(bits, at * 2)  # offsets count 2-bit steps
            except ValueError:
                pass
            skip = data[skips_at + 32 * block + line]
            at += (skip & 0x7F) << 3 if skip & 0x80 else skip
        block_start += struct.unpack_from("<H", data, 4 + 2 * block)[0]
    return texts


def read_lines(disk: SkyDisk) -> dict[str, list[Line]]:
    """clip (speech file number) -> the line it speaks, for every English text line with a speech file."""
    speech = set(disk.speech_files())
    lines: dict[str, list[Line]] = {}
    for section in range(SECTIONS):
        for number, text in section_texts(disk, section).items():
            clip = speech_file(number)
            if clip in speech and (number & 0xFFF) < _SPAN[section]:
                lines[str(clip)] = [Line(str(clip), text, "unknown",
                                         f"section {section} block {(number & 0xFFF) >> 5}", number)]
    return lines

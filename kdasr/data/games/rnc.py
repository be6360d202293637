"""Rob Northen Compression (RNC "method 1"), the packing of Beneath a Steel Sky's disk files.
Pure Python; written from how ScummVM's engines/sky/rnc_deco.cpp unpacks it (the engine is never run).

A packed block: "RNC\\x01", unpacked and packed sizes (big-endian u32), CRC-16 of each (u16), a leeway
byte and a chunk count, then the stream. The stream interleaves two things: 16-bit little-endian words
read as an LSB-first bit stream, and runs of literal bytes copied as they are. Each chunk opens with
three Huffman tables (literal-run length, match distance, match length; each 5 bits of count then 4 bits
per symbol length) and a 16-bit count of (literal run, match) pairs; the last pair has no match.
A decoded symbol s >= 2 stands for 2**(s-1) plus s-1 further bits.
"""

from __future__ import annotations

import struct

SIGNATURE = b"RNC\x01"
HEADER = 18


class RncError(ValueError):
    pass


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/ARC (reflected polynomial 0xA001, start 0), the checksum in an RNC header."""
    crc, table = 0, _CRC
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


class _Stream:
    """Bits (LSB first, refilled a 16-bit word at a time) and literal bytes from one buffer. `pos` is the
    next byte not yet taken by either; bits are loaded only when a read needs them, so that literal runs
    start exactly after the last word the bit reader took."""

    __slots__ = ("data", "pos", "buf", "n")

    def __init__(self, data: bytes, pos: int):
        self.data, self.pos, self.buf, self.n = data, pos, 0, 0

    def _word(self, at: int) -> int:
        d = self.data
        return d[at] | (d[at + 1] << 8) if at + 1 < len(d) else (d[at] if at < len(d) else 0)

    def peek16(self) -> int:
        if self.n >= 16:
            return self.buf & 0xFFFF
        return (self.buf | (self._word(self.pos) << self.n)) & 0xFFFF

    def bits(self, k: int) -> int:
        while self.n < k:
            self.buf |= self._word(self.pos) << self.n
            self.pos += 2
            self.n += 16
        v = self.buf & ((1 << k) - 1)
        self.buf >>= k
        self.n -= k
        return v

    def literal(self, count: int) -> bytes:
        out = self.data[self.pos:self.pos + count]
        if len(out) != count:
            raise RncError("literal run past the end of the packed data")
        self.pos += count
        return out


def _table(s: _Stream) -> tuple[dict[int, tuple[int, int]], int]:
    """{LSB-first code: (symbol, code length)} for codes up to the table's longest, and that length.
    Codes are canonical: shortest first, then by symbol."""
    count = s.bits(5)
    lengths = [s.bits(4) for _ in range(count)]
    longest = max(lengths, default=0)
    lookup: dict[int, tuple[int, int]] = {}
    code = 0  # MSB-aligned in 16 bits
    for length in range(1, 17):
        for symbol, bits in enumerate(lengths):
            if bits != length:
                continue
            rev = int(f"{code >> (16 - length):0{length}b}"[::-1], 2)
            for fill in range(rev, 1 << longest, 1 << length):  # every longer bit pattern it prefixes
                lookup[fill] = (symbol, length)
            code += 1 << (16 - length)
    return lookup, longest


def _value(s: _Stream, table: tuple[dict[int, tuple[int, int]], int]) -> int:
    lookup, longest = table
    hit = lookup.get(s.peek16() & ((1 << longest) - 1))
    if hit is None:
        raise RncError("no Huffman code matches the stream")
    symbol, length = hit
    s.bits(length)
    if symbol < 2:
        return symbol
    return s.bits(symbol - 1) | (1 << (symbol - 1))


def unpack(data: bytes, check_crc: bool = True) -> bytes:
    """The unpacked bytes of an RNC method-1 block (`data` starts at its signature)."""
    if data[:4] != SIGNATURE or len(data) < HEADER:
        raise RncError("not an RNC method-1 block")
    unpacked_size, packed_size, unpacked_crc, packed_crc = struct.unpack_from(">IIHH", data, 4)
    chunks = data[17]
    if HEADER + packed_size > len(data):
        raise RncError(f"packed size {packed_size} runs past the end of the data")
    if check_crc and crc16(data[HEADER:HEADER + packed_size]) != packed_crc:
        raise RncError("packed data fails its CRC")
    s = _Stream(data[:HEADER + packed_size], HEADER)
    s.bits(2)  # lock and key flags, both unused here
    out = bytearray()
    for _ in range(chunks):
        raw, dist, length = _table(s), _table(s), _table(s)
        pairs = s.bits(16)
        for k in range(pairs, 0, -1):
            run = _value(s, raw)
            if run:
                out += s.literal(run)
            if k == 1:
                break
            back = _value(s, dist) + 1
            size = _value(s, length) + 2
            start = len(out) - back
            if start < 0:
                raise RncError("match reaches before the start of the output")
            if back >= size:
                out += out[start:start + size]
            else:  # the match overlaps what it writes: repeat the period
                period = out[start:]
                out += (period * (size // back + 1))[:size]
            if len(out) > unpacked_size:  # a damaged stream is stopped before it can fill memory
                raise RncError(f"unpacks past the {unpacked_size} bytes the header says")
    if len(out) != unpacked_size:
        raise RncError(f"unpacked {len(out)} bytes, header says {unpacked_size}")
    if check_crc and crc16(out) != unpacked_crc:
        raise RncError("unpacked data fails its CRC")
    return bytes(out)

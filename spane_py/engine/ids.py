"""Execution ids: UUIDv7, strictly increasing within a process."""

from __future__ import annotations

import secrets
import time

_last_id_ms = 0
_id_seq = 0


def new_execution_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so newest-first listing is id order.

    Ids minted by one process strictly increase: within one millisecond a counter fills
    the 12 bits after the version (the RFC's method 1); the other 62 bits are random.
    """
    global _last_id_ms, _id_seq
    ms = int(time.time() * 1000)
    if ms > _last_id_ms:
        _last_id_ms, _id_seq = ms, secrets.randbits(8)
    else:
        _id_seq += 1
        if _id_seq > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
            _last_id_ms, _id_seq = _last_id_ms + 1, 0
        ms = _last_id_ms
    value = (ms << 80) | (0x7 << 76) | (_id_seq << 64) | (0b10 << 62) | secrets.randbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

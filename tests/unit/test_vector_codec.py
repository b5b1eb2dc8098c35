"""The `item-vectors` value codec: IV2 (32-bit header length) written, IV1 still read."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from workers.replica import VectorRecord, decode_vector, encode_vector


def _vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


def _same(a: VectorRecord, b: VectorRecord) -> None:
    assert (a.title, a.categories, a.ts) == (b.title, b.categories, b.ts)
    assert b.vector.dtype == np.float32
    np.testing.assert_array_equal(a.vector, b.vector)


def test_round_trip() -> None:
    rec = VectorRecord("Café — the film", ("Drama", "Comédie"), 1_700_000_000.5, _vec(1))
    raw = encode_vector(rec)
    assert raw[:3] == b"IV2"
    _same(rec, decode_vector(raw))


def test_a_header_over_64_kib_round_trips() -> None:
    rec = VectorRecord("t" * 70_000, tuple(f"c{n}" * 50 for n in range(100)), 0.0, _vec(2))
    raw = encode_vector(rec)
    assert struct.unpack_from("<I", raw, 3)[0] > 65_535
    _same(rec, decode_vector(raw))


def test_an_iv1_record_written_the_old_way_still_decodes() -> None:
    rec = VectorRecord("Old", ("x",), 12.0, _vec(3))
    head = orjson.dumps({"title": "Old", "categories": ["x"], "ts": 12.0})
    raw = struct.pack("<3sH", b"IV1", len(head)) + head + rec.vector.astype("<f4").tobytes()
    _same(rec, decode_vector(raw))


def test_an_iv1_record_without_categories_decodes() -> None:
    head = orjson.dumps({"title": "Bare", "ts": 0})
    raw = struct.pack("<3sH", b"IV1", len(head)) + head + _vec(4).tobytes()
    assert decode_vector(raw).categories == ()


def _iv2(head: bytes, tail: bytes = b"") -> bytes:
    return struct.pack("<3sI", b"IV2", len(head)) + head + tail


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"IV",
        b"IV2\x01",
        b"XYZ\x00\x00\x00\x00",
        b'{"title": "json, not a vector record"}',
        struct.pack("<3sI", b"IV2", 1_000) + b"{}",  # header longer than the record
        _iv2(b'{"title": "t", "ts": 0}', b"\x00\x00\x00"),  # vector not whole float32s
        _iv2(b"{not json"),
        _iv2(b"[1, 2]"),
        _iv2(b'{"ts": 0}'),  # no title
        _iv2(b'{"title": "t", "ts": 0, "categories": 5}'),
    ],
)
def test_garbage_raises_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="item-vector"):
        decode_vector(raw)

"""A compact, checked byte format for the Engine's stream statistics (no pickle).

Each statistic (popularity, item stats, co-visitation, new-item marks) exports a `StatsPart`:
the item ids it knows, numpy arrays whose rows follow or index those ids, and a few scalars.
`pack` writes them as

    magic b"LLMRSTAT" | u16 version | u32 header length | header (JSON, utf-8)
    | payload: arrays, each 8-byte aligned, in header order | sha256 of everything before it

The header lists every array as [name, dtype, shape] and each part's array names and scalars;
a part's ids are two arrays, `<part>.id_len` (utf-8 byte lengths, u4) and `<part>.id_blob` (the
ids back to back, u1). `unpack` checks the digest before reading anything, then the dtypes,
shapes and sizes, and raises `SnapshotError`. Arrays are written straight from numpy's buffers
(one copy: the output); strings are encoded once per part, no Python object per array entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrec.exceptions import SnapshotError

__all__ = ["StatsPart", "check", "pack", "unpack"]

MAGIC = b"LLMRSTAT"
VERSION = 1
_PREFIX = struct.Struct("<8sHI")
_DIGEST = 32
_ALIGN = 8
# no object dtypes: arrays are plain numbers, read with np.frombuffer
_DTYPES = frozenset({"<f8", "<f4", "<i8", "<i4", "<u4", "|u1"})

Array = npt.NDArray[Any]


@dataclass(slots=True)
class StatsPart:
    """One statistic's contents: its item ids, arrays aligned with or indexing them, scalars."""

    ids: list[str]
    arrays: dict[str, Array] = field(default_factory=dict)
    scalars: dict[str, float | None] = field(default_factory=dict)

    def array(self, key: str, dtype: npt.DTypeLike, shape: tuple[int, ...]) -> Array:
        """The array `key`, checked to have `dtype` and `shape` (-1 in `shape`: any size)."""
        a = self.arrays.get(key)
        if (
            a is None
            or a.dtype != np.dtype(dtype)
            or a.ndim != len(shape)
            or any(want not in (-1, got) for want, got in zip(shape, a.shape, strict=True))
        ):
            got = "missing" if a is None else f"{a.dtype} {a.shape}"
            raise SnapshotError(f"damaged statistics snapshot: array {key!r} is {got}")
        return a

    def scalar(self, key: str) -> float:
        """The finite scalar `key`."""
        v = self.scalars.get(key)
        check(v is not None and math.isfinite(v), f"scalar {key!r} is {v!r}")
        return float(v or 0.0)


def check(ok: bool, what: str) -> None:
    """Raise SnapshotError saying `what` is wrong unless `ok`."""
    if not ok:
        raise SnapshotError(f"damaged statistics snapshot: {what}")


def pack(parts: Mapping[str, StatsPart]) -> bytes:
    """Serialise `parts` (name -> part) into one checked byte string."""
    arrays: list[tuple[str, Array]] = []
    header: dict[str, Any] = {"parts": {}}
    for name, part in parts.items():
        lengths, blob = _encode_ids(part.ids)
        arrays += [(f"{name}.id_len", lengths), (f"{name}.id_blob", blob)]
        arrays += [(f"{name}.{key}", np.ascontiguousarray(a)) for key, a in part.arrays.items()]
        header["parts"][name] = {"arrays": list(part.arrays), "scalars": part.scalars}
    for n, a in arrays:
        if a.dtype.str not in _DTYPES:
            raise TypeError(f"array {n} has dtype {a.dtype.str!r}, not one of {sorted(_DTYPES)}")
    header["arrays"] = [[n, a.dtype.str, list(a.shape)] for n, a in arrays]
    head = json.dumps(header, allow_nan=False).encode()
    chunks: list[bytes | memoryview] = [_PREFIX.pack(MAGIC, VERSION, len(head)), head]
    size = _PREFIX.size + len(head)
    for _, a in arrays:
        pad = -size % _ALIGN
        chunks += [b"\0" * pad, a.reshape(-1).view(np.uint8).data]  # no copy
        size += pad + a.nbytes
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return b"".join([*chunks, digest.digest()])


def unpack(data: bytes) -> dict[str, StatsPart]:
    """Inverse of `pack`; raises SnapshotError on foreign, truncated or damaged bytes."""
    view = memoryview(data)
    check(len(view) >= _PREFIX.size + _DIGEST, f"{len(view)} bytes is too short")
    magic, version, head_len = _PREFIX.unpack_from(view, 0)
    check(magic == MAGIC, f"not a statistics snapshot (magic {bytes(magic)!r})")
    check(version == VERSION, f"unknown version {version}")
    body = view[:-_DIGEST]
    check(hashlib.sha256(body).digest() == bytes(view[-_DIGEST:]), "checksum mismatch")
    try:
        header = json.loads(bytes(body[_PREFIX.size : _PREFIX.size + head_len]))
        arrays = _read_arrays(body, _PREFIX.size + head_len, header["arrays"])
        parts = {}
        for name, spec in header["parts"].items():
            ids = _decode_ids(arrays[f"{name}.id_len"], arrays[f"{name}.id_blob"], name)
            scalars = {str(k): None if v is None else float(v) for k, v in spec["scalars"].items()}
            parts[str(name)] = StatsPart(
                ids=ids,
                arrays={str(k): arrays[f"{name}.{k}"] for k in spec["arrays"]},
                scalars=scalars,
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # incl. bad utf-8
        raise SnapshotError(f"damaged statistics snapshot: {type(exc).__name__}: {exc}") from exc
    return parts


def _read_arrays(body: memoryview, pos: int, specs: list[Any]) -> dict[str, Array]:
    out: dict[str, Array] = {}
    for name, dtype, shape in specs:
        check(dtype in _DTYPES, f"array {name} has dtype {dtype!r}")
        check(all(isinstance(d, int) and d >= 0 for d in shape), f"array {name} shape {shape}")
        pos += -pos % _ALIGN
        dt = np.dtype(dtype)
        count = math.prod(shape)
        check(pos + count * dt.itemsize <= len(body), f"array {name} runs past the end")
        out[str(name)] = np.frombuffer(body, dtype=dt, count=count, offset=pos).reshape(shape)
        pos += count * dt.itemsize
    check(pos == len(body), f"{len(body) - pos} stray bytes after the arrays")
    return out


def _encode_ids(ids: list[str]) -> tuple[Array, Array]:
    """utf-8 byte lengths (u4) and the ids back to back (u1)."""
    text = "".join(ids)
    if text.isascii():  # the usual case: one encode, lengths in characters are in bytes
        raw = text.encode("ascii")
        lengths = np.fromiter(map(len, ids), np.uint32, len(ids))
    else:
        encoded = [i.encode("utf-8") for i in ids]
        raw = b"".join(encoded)
        lengths = np.fromiter(map(len, encoded), np.uint32, len(ids))
    return lengths, np.frombuffer(raw, dtype=np.uint8)


def _decode_ids(lengths: Array, blob: Array, part: str) -> list[str]:
    check(lengths.dtype == np.uint32 and blob.dtype == np.uint8, f"{part} id dtypes")
    check(lengths.ndim == 1 and blob.ndim == 1, f"{part} id shapes")
    ends = np.cumsum(lengths, dtype=np.int64)
    check(int(ends[-1]) == blob.size if ends.size else not blob.size, f"{part} id lengths")
    raw = blob.tobytes()
    starts = [0, *ends.tolist()][: ends.size]  # no ids: no bounds
    bounds = list(zip(starts, ends.tolist(), strict=True))
    if raw.isascii():  # the usual case: slice one decoded string
        text = raw.decode("ascii")
        return [text[a:b] for a, b in bounds]
    return [raw[a:b].decode("utf-8") for a, b in bounds]

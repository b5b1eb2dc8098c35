"""The item index: an HNSW graph (hnswlib) behind one wrapper that owns its hazards.

hnswlib forbids `add_items` while `knn_query` runs and `resize_index` while either runs; it
does not save `ef`; its labels are integers; it raises when it finds fewer than `k` neighbours
(small or partly deleted graphs). This wrapper owns the string-id <-> label map, capacity
growth, replace-on-upsert, deletes, the single-writer rule (one lock for every read and write,
and one that writes and `save` share: a snapshot shuts writes out but not searches, so a worker
goes on answering while its index is written to disk), and saving the graph together with its
id map and the caller's metadata (e.g. the Kafka offsets it reflects).
A snapshot is written to a temporary directory, fsynced, checksummed (sha256 of the graph file
and of the id map and metadata, kept in meta.json) and renamed into place; `load` verifies the
checksums before hnswlib reads a byte of the graph, so a torn or damaged snapshot is refused
with `ItemIndexError` instead of crashing the process.

It also keeps a dense float32 copy of the vectors by label (1.5 KB per item at 384 dims):
hnswlib's `get_items` costs ~40 us per vector, which dominated re-ranking that reads hundreds.
And it remembers its last search answers until its next write (`nearest_each`): a search is
deterministic for a given graph, and a user's unchanged topics ask it again at the next event.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import numpy.typing as npt
from cachetools import LRUCache

from llmrec.exceptions import ItemIndexError
from llmrec.files import fsync_dir
from llmrec.interests import id_hash
from llmrec.types import Vector, Vectors

__all__ = ["IndexConfig", "ItemIndex", "Labels"]

Labels = npt.NDArray[np.int64]
"""Integer item labels of the index (-1: none)."""

_GRAPH = "graph.bin"
_META = "meta.json"
# Format 2 adds "checksums" to meta.json; format 1 (no "format" key) has none and still loads,
# checked only as far as hnswlib checks a graph file.
_FORMAT = 2
_CHUNK = 1 << 20
DEFAULT_ANSWERS = 4096
"""Search answers an index remembers (`nearest_each`): about 1 KB each."""


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """HNSW parameters. Space is cosine: scores are cosine similarities in [-1, 1]."""

    m: int = 16
    ef_construction: int = 200
    ef_search: int = 128
    initial_capacity: int = 1024
    growth: float = 1.5


class ItemIndex:
    """A mutable cosine-similarity index of items keyed by string id; safe across threads."""

    def __init__(
        self, dim: int, config: IndexConfig | None = None, *, answers: int = DEFAULT_ANSWERS
    ) -> None:
        if dim <= 0:
            raise ItemIndexError(f"dimension must be positive, got {dim}")
        self.dim = dim
        self.config = config or IndexConfig()
        # The last `answers` searches' labels, by (query digest, ef): a search is
        # deterministic for a given graph, and a user's unchanged topics ask the same again
        # from one event to the next. Any write empties it.
        self._answers: LRUCache[tuple[bytes, int], Labels] | None = (
            LRUCache(answers) if answers > 0 else None
        )
        self.answer_hits = 0
        self.answer_misses = 0
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # held by writers and by `save`, always before `_lock`
        self._graph = hnswlib.Index(space="cosine", dim=dim)
        self._graph.init_index(
            max_elements=self.config.initial_capacity,
            ef_construction=self.config.ef_construction,
            M=self.config.m,
            allow_replace_deleted=True,
        )
        self._graph.set_ef(self.config.ef_search)
        self._matrix = np.zeros((self.config.initial_capacity, dim), dtype=np.float32)
        # id_hash of each label's item: what users' seen/disliked lists hold, compared as arrays
        self._hash = np.zeros(self.config.initial_capacity, dtype=np.int64)
        self._alive = np.zeros(self.config.initial_capacity, dtype=bool)  # label held now
        self._ids = np.zeros(self.config.initial_capacity, dtype=object)  # id of each label
        self._label_of: dict[str, int] = {}
        self._next_label = 0
        self._deletions = 0  # labels cached elsewhere are checked by it and by `labels_given`

    # -- reads -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._label_of)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._label_of

    @property
    def labels_given(self) -> int:
        """How many labels have been given: it grows whenever an id gains a label (a new or
        re-inserted item); a replaced item keeps its label."""
        return self._next_label

    @property
    def deletions(self) -> int:
        """How many deletes: it grows whenever an id loses its label. Ids never change labels
        otherwise, so a label looked up stays right until one of the two moves."""
        return self._deletions

    @property
    def capacity(self) -> int:
        return int(self._graph.get_max_elements())

    def ids(self) -> list[str]:
        return list(self._label_of)

    def vector(self, item_id: str) -> Vector | None:
        """The stored (normalised) vector of `item_id`, or None when absent."""
        with self._lock:
            label = self._label_of.get(item_id)
            if label is None:
                return None
            vec: Vector = self._matrix[label].copy()
            return vec

    def vectors(self, item_ids: Sequence[str]) -> Vectors:
        """Stored vectors of `item_ids` (all must be present), shape (n, dim)."""
        with self._lock:
            try:
                labels = [self._label_of[i] for i in item_ids]
            except KeyError as exc:
                raise ItemIndexError(f"unknown item {exc.args[0]!r}") from exc
            return self._matrix[np.asarray(labels, dtype=np.int64)]

    def labels(self, item_ids: Sequence[str]) -> Labels:
        """Label of each id, -1 where the index does not hold it."""
        get = self._label_of.get
        with self._lock:
            return np.fromiter((get(i, -1) for i in item_ids), np.int64, len(item_ids))

    def label_ids(self, start: int = 0) -> list[str]:
        """The id of each label from `start` up to the next one to be given. A label's id never
        changes: a deleted item keeps its old label, dead, and a re-inserted one gets a new one."""
        with self._lock:
            ids: list[str] = self._ids[start : self._next_label].tolist()
            return ids

    def hashes(self, labels: Labels) -> npt.NDArray[np.int64]:
        """`id_hash` of each label's item (labels must be valid)."""
        return self._hash[labels]

    def resolve(self, labels: Labels) -> tuple[Labels, list[str], Vectors]:
        """Of `labels`, those still held (an item may be deleted meanwhile), their ids and
        vectors, in one consistent read."""
        with self._lock:
            live = labels[self._alive[labels]]
            return live, self._ids[live].tolist(), np.take(self._matrix, live, axis=0)

    def nearest(self, queries: Vectors, want: int) -> list[Labels]:
        """For each query row, the labels of its `want` nearest items (fewer when the index
        holds fewer), best first: one hnswlib call for all rows; `search` is the one-row form
        by id."""
        return self.nearest_each(queries, [want] * len(queries))

    def nearest_each(self, queries: Vectors, wants: Sequence[int]) -> list[Labels]:
        """`nearest` with each row's own `want`, in as few hnswlib calls as there are distinct
        efs (usually one). hnswlib searches a row with ef = max(ef, want) and keeps the best
        `want` of what that search found, in order: so every row is asked for all `ef` its
        search finds (no more work than asking for fewer) and cut to its own `want`, the same
        labels as a call per row. Those answers are remembered until the next write: a row
        whose search was made already (a user's unchanged topic, whatever its want now) is
        cut from memory, unsearched (`answer_hits`)."""
        data = self._check(np.asarray(queries, dtype=np.float32).reshape(-1, self.dim))
        if len(wants) != data.shape[0]:
            raise ItemIndexError(f"{len(wants)} wants for {data.shape[0]} queries")
        out = [np.zeros(0, dtype=np.int64) for _ in range(data.shape[0])]
        with self._lock:
            live = len(self._label_of)
            cut = [min(w, live) for w in wants]
            keys: list[tuple[bytes, int] | None] = [None] * len(cut)
            by_ef: dict[int, list[int]] = {}
            for row, w in enumerate(cut):
                if w <= 0:
                    continue
                ef = max(self.config.ef_search, w)
                if self._answers is not None:
                    key = (hashlib.blake2b(data[row].tobytes(), digest_size=16).digest(), ef)
                    known = self._answers.get(key)
                    if known is not None:
                        out[row] = known[:w]
                        continue
                    keys[row] = key
                by_ef.setdefault(ef, []).append(row)
            for ef, rows in by_ef.items():
                self._graph.set_ef(ef)
                try:
                    found = self._graph.knn_query(data[rows], k=min(ef, live))[0]
                except RuntimeError:  # too few neighbours for some row: each row its own way
                    for r in rows:
                        out[r] = self._knn(data[r : r + 1], cut[r])[0].astype(np.int64)
                    continue
                for r, labels in zip(rows, found.astype(np.int64), strict=True):
                    out[r] = labels[: cut[r]]
                    asked = keys[r]
                    if asked is not None and self._answers is not None:
                        # a copy, read-only: a view would keep the whole call's answer alive
                        kept = labels.copy()
                        kept.setflags(write=False)
                        self._answers[asked] = kept
            searched = sum(len(rows) for rows in by_ef.values())
            self.answer_hits += sum(w > 0 for w in cut) - searched
            self.answer_misses += searched
        return out

    def search(
        self, vector: Vector, k: int, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """Up to `k` (item_id, cosine) pairs nearest to `vector`, best first, minus `exclude`."""
        if k <= 0:
            return []
        query = self._check(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        with self._lock:
            live = len(self._label_of)
            want = min(k + len(exclude), live)
            if want == 0:
                return []
            labels, dists = self._knn(query, want)
            hits = [
                (self._ids[int(lb)], 1.0 - float(d)) for lb, d in zip(labels, dists, strict=True)
            ]
        return [(i, s) for i, s in hits if i not in exclude][:k]

    def _knn(self, query: Vectors, want: int) -> tuple[Any, Any]:
        # hnswlib raises when the graph yields fewer than `want` results (possible with deletes);
        # widen ef first, then ask for fewer rather than fail the caller.
        self._graph.set_ef(max(self.config.ef_search, want))
        while True:
            try:
                labels, dists = self._graph.knn_query(query, k=want)
                return labels[0], dists[0]
            except RuntimeError:
                if want == 1:
                    return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
                want = max(1, want // 2)

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, item_ids: Sequence[str], vectors: Vectors) -> None:
        """Insert or replace items. A replaced item keeps its label; its vector is updated."""
        data = self._check(np.asarray(vectors, dtype=np.float32))
        if len(item_ids) != data.shape[0]:
            raise ItemIndexError(f"{len(item_ids)} ids for {data.shape[0]} vectors")
        if len(set(item_ids)) != len(item_ids):
            raise ItemIndexError("duplicate ids in one upsert batch")
        with self._writing, self._lock:
            self._forget_answers()
            labels = []
            fresh = 0
            for item_id in item_ids:
                label = self._label_of.get(item_id)
                if label is None:
                    label = self._next_label
                    self._next_label += 1
                    fresh += 1
                labels.append(label)
            self._ensure_capacity(fresh)
            # replace_deleted lets new items reuse slots of deleted ones, bounding growth. One
            # thread: a graph built by several depends on their timing, so the same items in
            # the same order would give another graph (and other neighbours) on every run.
            self._graph.add_items(
                data, np.asarray(labels, dtype=np.int64), num_threads=1, replace_deleted=True
            )
            self._store(labels, data)
            for item_id, label in zip(item_ids, labels, strict=True):
                self._label_of[item_id] = label
            self._hash[labels] = [id_hash(i) for i in item_ids]
            self._ids[labels] = item_ids
            self._alive[labels] = True

    def delete(self, item_id: str) -> bool:
        """Remove `item_id`; False when it was not there."""
        with self._writing, self._lock:
            label = self._label_of.pop(item_id, None)
            if label is None:
                return False
            self._forget_answers()
            self._alive[label] = False
            self._deletions += 1
            self._graph.mark_deleted(label)
            return True

    def remember(self, answers: int) -> None:
        """Keep the last `answers` search answers from now on (0: none); those held are
        dropped."""
        with self._lock:
            self._answers = LRUCache(answers) if answers > 0 else None

    def _forget_answers(self) -> None:
        if self._answers is not None:
            self._answers.clear()

    def _ensure_capacity(self, fresh: int) -> None:
        # Slots of deleted items are reused first (replace_deleted), so only the new items
        # beyond the deleted slots need room.
        count = int(self._graph.get_current_count())
        deleted = count - len(self._label_of)
        needed = count + max(0, fresh - deleted)
        capacity = self.capacity
        if needed > capacity:
            self._graph.resize_index(max(needed, int(capacity * self.config.growth) + 1))

    def _store(self, labels: list[int], data: Vectors) -> None:
        # Labels only grow (deleted ones are not reused as labels), so the copy grows with them.
        top = max(labels) + 1
        if top > self._matrix.shape[0]:
            grown = np.zeros((max(top, int(self._matrix.shape[0] * self.config.growth) + 1),
                              self.dim), dtype=np.float32)  # fmt: skip
            grown[: self._matrix.shape[0]] = self._matrix
            self._matrix = grown
            hashes = np.zeros(grown.shape[0], dtype=np.int64)
            hashes[: self._hash.shape[0]] = self._hash
            alive = np.zeros(grown.shape[0], dtype=bool)
            alive[: self._alive.shape[0]] = self._alive
            ids = np.zeros(grown.shape[0], dtype=object)
            ids[: self._ids.shape[0]] = self._ids
            self._hash, self._alive, self._ids = hashes, alive, ids
        norms = np.linalg.norm(data, axis=1, keepdims=True)
        self._matrix[np.asarray(labels, dtype=np.int64)] = data / np.maximum(norms, 1e-12)

    def _check(self, data: Vectors) -> Vectors:
        if data.ndim != 2 or data.shape[1] != self.dim:
            raise ItemIndexError(
                f"expected vectors of dimension {self.dim}, got shape {data.shape}"
            )
        if not np.isfinite(data).all():
            raise ItemIndexError("vectors contain NaN or infinity")
        return data

    # -- persistence -------------------------------------------------------------------------

    def save(self, directory: Path, meta: dict[str, Any] | None = None) -> None:
        """Write graph, id map, config and `meta` atomically (a crash leaves the old snapshot).

        Both files and the directories are fsynced around the renames, so after a power loss
        `directory` holds the old snapshot or the new one, whole; only a crash between the two
        renames leaves it absent, with the old snapshot in `<directory>.old`.
        """
        directory = Path(directory)
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # writers are shut out, searches are not: hnswlib's save only reads the graph, as a
        # search does, and it releases the GIL while it writes
        with self._writing:
            self._graph.save_index(str(tmp / _GRAPH))
            body = {
                "dim": self.dim,
                "config": asdict(self.config),
                "next_label": self._next_label,
                "ids": dict(self._label_of),  # a copy: upserts may run once the lock is free
                "meta": meta or {},
            }
        body = json.loads(json.dumps(body))  # what `load` will see (str keys, lists)
        doc = {
            "format": _FORMAT,
            "checksums": {_GRAPH: _sha256_file(tmp / _GRAPH, sync=True), "body": _digest(body)},
            **body,
        }
        with (tmp / _META).open("wb") as f:
            f.write(json.dumps(doc).encode())
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(tmp)
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.replace(old)
        tmp.replace(directory)
        fsync_dir(directory.parent)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> tuple[ItemIndex, dict[str, Any]]:
        """Read a snapshot written by `save`; returns the index and the caller's metadata.

        Raises ItemIndexError, and nothing else, when the snapshot is missing, torn or damaged.
        """
        directory = Path(directory)
        try:
            doc = json.loads((directory / _META).read_bytes())
        except (OSError, ValueError) as exc:
            raise ItemIndexError(f"no readable index snapshot in {directory}: {exc}") from exc
        if not isinstance(doc, dict):
            raise ItemIndexError(f"damaged index snapshot in {directory}: meta.json is no object")
        _verify(directory, doc)
        try:
            return cls._restore(directory, doc)
        except (
            KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
            MemoryError, RuntimeError,
        ) as exc:  # fmt: skip
            # a malformed document; or hnswlib on a truncated or inconsistent graph (possible
            # only in format 1, unchecked): RuntimeError, or MemoryError on a garbage size field
            raise ItemIndexError(
                f"damaged index snapshot in {directory}: {type(exc).__name__}: {exc}"
            ) from exc

    @classmethod
    def _restore(cls, directory: Path, doc: dict[str, Any]) -> tuple[ItemIndex, dict[str, Any]]:
        index = cls(int(doc["dim"]), IndexConfig(**doc["config"]))
        index._label_of = {str(k): int(v) for k, v in doc["ids"].items()}
        id_of = {v: k for k, v in index._label_of.items()}
        index._next_label = int(doc["next_label"])
        meta = dict(doc["meta"])
        labels = list(id_of)
        if len(id_of) != len(index._label_of) or not all(
            0 <= lb < index._next_label for lb in labels
        ):
            raise ValueError("id map has repeated or out-of-range labels")
        graph = directory / _GRAPH
        if not graph.is_file():
            raise ValueError(f"{_GRAPH} is missing")
        index._graph = hnswlib.Index(space="cosine", dim=index.dim)
        index._graph.load_index(str(graph), allow_replace_deleted=True)
        index._graph.set_ef(index.config.ef_search)  # ef is not saved by hnswlib
        index._matrix = np.zeros((max(index._next_label, 1), index.dim), dtype=np.float32)
        index._hash = np.zeros(index._matrix.shape[0], dtype=np.int64)
        index._alive = np.zeros(index._matrix.shape[0], dtype=bool)
        index._ids = np.zeros(index._matrix.shape[0], dtype=object)
        if labels:  # one bulk read at load time rebuilds the dense copy
            index._store(labels, np.asarray(index._graph.get_items(labels), dtype=np.float32))
            ids = [id_of[lb] for lb in labels]
            index._hash[labels] = [id_hash(i) for i in ids]
            index._ids[labels] = ids
            index._alive[labels] = True
        return index, meta


def _digest(body: dict[str, Any]) -> str:
    """sha256 of the document as json.dumps writes it (stable across a dumps/loads trip)."""
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


def _sha256_file(path: Path, *, sync: bool = False) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
        if sync:
            os.fsync(f.fileno())
    return h.hexdigest()


def _verify(directory: Path, doc: dict[str, Any]) -> None:
    """Check a format-2 snapshot's checksums; format 1 (no checksums) passes unchecked."""
    if "format" not in doc and "checksums" not in doc:
        return
    sums = doc.get("checksums")
    if doc.get("format") != _FORMAT or not isinstance(sums, dict):
        raise ItemIndexError(
            f"damaged index snapshot in {directory}: format {doc.get('format')!r} "
            f"with checksums {sums!r}"
        )
    body = {k: v for k, v in doc.items() if k not in ("format", "checksums")}
    if _digest(body) != sums.get("body"):
        raise ItemIndexError(f"damaged index snapshot in {directory}: meta.json checksum mismatch")
    try:
        graph_sum = _sha256_file(directory / _GRAPH)
    except OSError as exc:
        raise ItemIndexError(f"damaged index snapshot in {directory}: {exc}") from exc
    if graph_sum != sums.get(_GRAPH):
        raise ItemIndexError(f"damaged index snapshot in {directory}: {_GRAPH} checksum mismatch")

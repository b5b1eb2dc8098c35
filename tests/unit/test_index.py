"""ItemIndex: recall against exact search, upserts, deletes, growth, snapshots."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmrec.exceptions import ItemIndexError
from llmrec.index import IndexConfig, ItemIndex, Labels
from llmrec.interests import id_hash


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_recall_against_exact_search() -> None:
    rng = np.random.default_rng(0)
    data = _unit(rng, 3000, 32)
    ids = [f"i{n}" for n in range(len(data))]
    index = ItemIndex(32, IndexConfig(initial_capacity=100))
    index.upsert(ids, data)
    queries = _unit(rng, 50, 32)
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    hits = 0
    for q, truth in zip(queries, exact, strict=True):
        got = {i for i, _ in index.search(q, 10)}
        hits += len(got & {ids[t] for t in truth})
    assert hits / (50 * 10) >= 0.95
    assert index.capacity >= 3000


def test_scores_are_cosine_best_first() -> None:
    index = ItemIndex(3)
    index.upsert(["x", "y"], np.array([[1, 0, 0], [0.6, 0.8, 0]], dtype=np.float32))
    hits = index.search(np.array([1, 0, 0], dtype=np.float32), 2)
    assert [i for i, _ in hits] == ["x", "y"]
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert hits[1][1] == pytest.approx(0.6, abs=1e-5)


def test_upsert_replaces_and_delete_removes() -> None:
    index = ItemIndex(2)
    index.upsert(["a", "b"], np.array([[1, 0], [0, 1]], dtype=np.float32))
    index.upsert(["a"], np.array([[0, 1]], dtype=np.float32))
    assert len(index) == 2
    np.testing.assert_allclose(index.vector("a"), [0, 1], atol=1e-6)
    assert index.delete("b") is True
    assert index.delete("b") is False
    assert "b" not in index
    assert [i for i, _ in index.search(np.array([0, 1], dtype=np.float32), 5)] == ["a"]


def test_k_larger_than_index_and_exclusions() -> None:
    rng = np.random.default_rng(1)
    index = ItemIndex(8)
    index.upsert(["a", "b", "c"], _unit(rng, 3, 8))
    index.delete("c")
    assert {i for i, _ in index.search(_unit(rng, 1, 8)[0], 50)} == {"a", "b"}
    assert [i for i, _ in index.search(_unit(rng, 1, 8)[0], 50, exclude={"a"})] == ["b"]
    assert ItemIndex(8).search(_unit(rng, 1, 8)[0], 5) == []


def test_deleted_slots_are_reused() -> None:
    rng = np.random.default_rng(2)
    index = ItemIndex(8, IndexConfig(initial_capacity=10))
    index.upsert([f"a{n}" for n in range(10)], _unit(rng, 10, 8))
    for n in range(10):
        index.delete(f"a{n}")
    index.upsert([f"b{n}" for n in range(10)], _unit(rng, 10, 8))
    assert index.capacity == 10
    assert len(index) == 10


def test_bad_input_is_refused() -> None:
    index = ItemIndex(4)
    with pytest.raises(ItemIndexError, match="dimension 4"):
        index.upsert(["a"], np.ones((1, 3), dtype=np.float32))
    with pytest.raises(ItemIndexError, match="NaN"):
        index.upsert(["a"], np.full((1, 4), np.nan, dtype=np.float32))
    with pytest.raises(ItemIndexError, match="duplicate"):
        index.upsert(["a", "a"], np.ones((2, 4), dtype=np.float32))
    with pytest.raises(ItemIndexError, match="unknown item"):
        index.vectors(["nope"])


def test_snapshot_round_trip_keeps_ids_meta_and_ef(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    index = ItemIndex(16, IndexConfig(ef_search=77))
    data = _unit(rng, 200, 16)
    index.upsert([str(n) for n in range(200)], data)
    index.delete("5")
    index.save(tmp_path / "snap", {"offsets": {"0": 41}})
    index.save(tmp_path / "snap", {"offsets": {"0": 42}})  # overwrite is atomic
    loaded, meta = ItemIndex.load(tmp_path / "snap")
    assert meta == {"offsets": {"0": 42}}
    assert len(loaded) == 199
    assert "5" not in loaded
    assert loaded.config.ef_search == 77
    assert loaded.search(data[7], 1)[0][0] == "7"
    loaded.upsert(["new"], data[:1])
    assert len(loaded) == 200


def test_missing_snapshot_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ItemIndexError, match="no readable index snapshot"):
        ItemIndex.load(tmp_path)


def test_concurrent_writers_and_readers_do_not_crash() -> None:
    rng = np.random.default_rng(4)
    index = ItemIndex(16, IndexConfig(initial_capacity=16))
    data = _unit(rng, 2000, 16)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for n in range(0, 2000, 50):
                index.upsert([str(j) for j in range(n, n + 50)], data[n : n + 50])
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            for n in range(300):
                index.search(data[n], 10)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(index) == 2000


def test_vectors_are_normalised_copies_in_request_order() -> None:
    index = ItemIndex(2, IndexConfig(initial_capacity=2))
    index.upsert(["a", "b", "c"], np.array([[3, 4], [0, 2], [1, 0]], dtype=np.float32))
    np.testing.assert_allclose(index.vectors(["c", "a"]), [[1, 0], [0.6, 0.8]], atol=1e-6)
    assert index.vectors([]).shape == (0, 2)
    got = index.vector("b")
    assert got is not None
    got[:] = 9  # a copy: the index is unchanged
    np.testing.assert_allclose(index.vector("b"), [0, 1], atol=1e-6)


# -- damaged snapshots ---------------------------------------------------------------------


def _saved(tmp_path: Path) -> tuple[ItemIndex, np.ndarray, Path]:
    rng = np.random.default_rng(5)
    index = ItemIndex(16)
    data = _unit(rng, 300, 16)
    index.upsert([f"i{n}" for n in range(300)], data)
    index.delete("i3")
    snap = tmp_path / "snap"
    index.save(snap, {"offsets": {"0": 7}, "titles": {"i1": "Crème brûlée"}})
    return index, data, snap


def test_snapshot_round_trip_returns_the_same_neighbours(tmp_path: Path) -> None:
    index, data, snap = _saved(tmp_path)
    loaded, meta = ItemIndex.load(snap)
    assert meta == {"offsets": {"0": 7}, "titles": {"i1": "Crème brûlée"}}
    for q in data[::10]:
        assert loaded.search(q, 10) == index.search(q, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]  # no .tmp or .old left
    doc = json.loads((snap / "meta.json").read_bytes())
    assert doc["format"] == 2
    assert set(doc["checksums"]) == {"graph.bin", "body"}


def _flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x40
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: (s / "graph.bin").write_bytes((s / "graph.bin").read_bytes()[:5000]),
         "graph.bin checksum mismatch"),
        (lambda s: (s / "graph.bin").write_bytes(b""), "graph.bin checksum mismatch"),
        (lambda s: _flip(s / "graph.bin", 20_000), "graph.bin checksum mismatch"),
        (lambda s: _flip(s / "graph.bin", 10), "graph.bin checksum mismatch"),
        (lambda s: (s / "graph.bin").unlink(), "No such file"),
        (lambda s: (s / "meta.json").write_bytes((s / "meta.json").read_bytes()[:-40]),
         "no readable index snapshot"),
        (lambda s: (s / "meta.json").write_bytes(b"[1, 2]"), "no object"),
        (lambda s: (s / "meta.json").write_text(
            (s / "meta.json").read_text().replace('"i7": 7', '"i7": 8')),
         "meta.json checksum mismatch"),
        (lambda s: (s / "meta.json").write_text(
            (s / "meta.json").read_text().replace('"format": 2', '"format": 9')),
         "format 9"),
        (lambda s: (s / "meta.json").unlink(), "no readable index snapshot"),
    ],
)  # fmt: skip
def test_damaged_snapshot_is_refused_with_item_index_error(
    tmp_path: Path, damage: Any, message: str
) -> None:
    _, _, snap = _saved(tmp_path)
    damage(snap)
    with pytest.raises(ItemIndexError, match=message):
        ItemIndex.load(snap)


def _as_format_1(snap: Path) -> None:
    doc = json.loads((snap / "meta.json").read_bytes())
    del doc["format"], doc["checksums"]
    (snap / "meta.json").write_text(json.dumps(doc))


def test_snapshot_without_checksums_still_loads(tmp_path: Path) -> None:
    index, data, snap = _saved(tmp_path)
    _as_format_1(snap)
    loaded, meta = ItemIndex.load(snap)
    assert meta["offsets"] == {"0": 7}
    assert loaded.search(data[0], 5) == index.search(data[0], 5)


@pytest.mark.parametrize("keep", [0, 100, 5000, 30_000])
def test_truncated_graph_without_checksums_is_an_item_index_error(
    tmp_path: Path, keep: int
) -> None:
    """hnswlib raises RuntimeError on a truncated file: it must not escape `load`."""
    _, _, snap = _saved(tmp_path)
    _as_format_1(snap)
    graph = snap / "graph.bin"
    graph.write_bytes(graph.read_bytes()[:keep])
    with pytest.raises(ItemIndexError, match="damaged index snapshot"):
        ItemIndex.load(snap)


def test_id_map_inconsistent_with_graph_is_an_item_index_error(tmp_path: Path) -> None:
    _, _, snap = _saved(tmp_path)
    _as_format_1(snap)
    doc = json.loads((snap / "meta.json").read_bytes())
    doc["next_label"] = 400
    doc["ids"]["ghost"] = 350  # a label the graph does not hold
    (snap / "meta.json").write_text(json.dumps(doc))
    with pytest.raises(ItemIndexError, match="damaged index snapshot"):
        ItemIndex.load(snap)


def test_nearest_answers_many_queries_as_search_does_one_by_one() -> None:
    rng = np.random.default_rng(4)
    data = _unit(rng, 500, 16)
    ids = [f"i{n}" for n in range(len(data))]
    index = ItemIndex(16)
    index.upsert(ids, data)
    index.delete("i3")
    queries = _unit(rng, 20, 16)
    rows = index.nearest(queries, 30)
    by_id = [index.resolve(np.asarray(row, dtype=np.int64))[1] for row in rows]
    assert by_id == [[i for i, _ in index.search(q, 30)] for q in queries]
    assert "i3" not in {i for row in by_id for i in row}
    everything = index.nearest(queries[:2], 10_000)  # more than the index holds: all it holds
    assert [len(row) for row in everything] == [len(index)] * 2


def test_nearest_each_answers_every_row_as_its_own_nearest_call() -> None:
    # a coarse graph and a small ef: what a search finds depends on its ef = max(ef, want),
    # so rows may share a call only where that is the same
    rng = np.random.default_rng(7)
    data = _unit(rng, 2000, 32)
    index = ItemIndex(32, IndexConfig(m=4, ef_construction=20, ef_search=2))
    index.upsert([f"i{n}" for n in range(len(data))], data)
    queries = _unit(rng, 11, 32)
    wants = [3, 40, 8, 40, 1, 25, 3, 40, 8, 25, 0]
    each = index.nearest_each(queries, wants)
    alone = [index.nearest(q.reshape(1, -1), w)[0] for q, w in zip(queries, wants, strict=True)]
    assert [row.tolist() for row in each] == [row.tolist() for row in alone]
    assert [len(row) for row in each] == wants
    # the same queries again, each with another want (so another ef): memory must not answer
    # a search with another ef, and must answer one with the same ef at any want
    other = wants[3:] + wants[:3]
    again = index.nearest_each(queries, other)
    alone = [index.nearest(q.reshape(1, -1), w)[0] for q, w in zip(queries, other, strict=True)]
    assert [row.tolist() for row in again] == [row.tolist() for row in alone]
    with pytest.raises(ItemIndexError):
        index.nearest_each(queries, wants[:3])


def test_a_search_asked_again_is_answered_from_memory_until_the_next_write() -> None:
    rng = np.random.default_rng(11)
    data = _unit(rng, 300, 16)
    index = ItemIndex(16)
    index.upsert([f"i{n}" for n in range(len(data))], data)
    queries = _unit(rng, 6, 16)
    wants = [5, 5, 20, 5, 40, 5]
    first = index.nearest_each(queries, wants)
    assert (index.answer_hits, index.answer_misses) == (0, 6)
    again = index.nearest_each(queries[::-1], wants[::-1])
    assert (index.answer_hits, index.answer_misses) == (6, 6)
    assert [row.tolist() for row in again[::-1]] == [row.tolist() for row in first]
    with pytest.raises(ValueError):  # the remembered answer cannot be changed by a caller
        again[0][0] = -1
    # the same search (same ef) at other wants, fewer or more than asked before
    fewer, more = index.nearest_each(queries[2:4], [7, 60])
    assert fewer.tolist() == first[2][:7].tolist()
    assert index.answer_hits == 8
    twin = ItemIndex(16, answers=0)  # the same graph (built in one thread), no memory
    twin.upsert([f"i{n}" for n in range(len(data))], data)
    assert more.tolist() == twin.nearest(queries[3:4], 60)[0].tolist()
    assert len(more) == 60
    index.upsert(["new"], queries[:1])  # an item right at query 0: its best now
    assert index.resolve(index.nearest_each(queries[:2], wants[:2])[0][:1])[1] == ["new"]
    index.delete(index.resolve(first[1][:1])[1][0])  # query 1's best is gone
    assert first[1][0] not in index.nearest_each(queries[1:2], wants[1:2])[0].tolist()
    assert index.answer_misses == 9


def test_an_index_without_memory_searches_every_time() -> None:
    rng = np.random.default_rng(12)
    index = ItemIndex(8, answers=0)
    index.upsert([f"i{n}" for n in range(50)], _unit(rng, 50, 8))
    queries = _unit(rng, 3, 8)
    assert [r.tolist() for r in index.nearest_each(queries, [4, 4, 4])] == [
        r.tolist() for r in index.nearest_each(queries, [4, 4, 4])
    ]
    assert (index.answer_hits, index.answer_misses) == (0, 6)


def test_remember_bounds_the_answers_kept_and_zero_keeps_none() -> None:
    rng = np.random.default_rng(13)
    index = ItemIndex(8)
    index.upsert([f"i{n}" for n in range(60)], _unit(rng, 60, 8))
    queries = _unit(rng, 3, 8)
    index.remember(2)
    index.nearest_each(queries, [4, 4, 4])
    index.nearest_each(queries, [4, 4, 4])  # the first query's answer was the oldest: dropped
    assert (index.answer_hits, index.answer_misses) == (2, 4)
    index.remember(0)
    index.nearest_each(queries, [4, 4, 4])
    assert (index.answer_hits, index.answer_misses) == (2, 7)


def test_labels_hashes_and_resolve_are_one_view_of_the_items() -> None:
    index = ItemIndex(2)
    index.upsert(["a", "b", "c"], np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32))
    labels = index.labels(["c", "zz", "a"])
    assert labels[1] == -1
    assert index.hashes(labels[[0, 2]]).tolist() == [id_hash("c"), id_hash("a")]
    index.delete("c")
    live, ids, vecs = index.resolve(labels[[0, 2]])
    assert ids == ["a"]
    assert live.tolist() == [labels[2]]
    np.testing.assert_allclose(vecs, [[1, 0]], atol=1e-6)


def test_hashes_survive_growth_and_snapshots(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    index = ItemIndex(8, IndexConfig(initial_capacity=4))
    ids = [f"x{n}" for n in range(40)]
    index.upsert(ids, _unit(rng, 40, 8))  # grows past the initial capacity
    index.save(tmp_path / "snap")
    loaded, _ = ItemIndex.load(tmp_path / "snap")
    for idx in (index, loaded):
        assert idx.hashes(idx.labels(ids)).tolist() == [id_hash(i) for i in ids]


def test_the_same_items_build_the_same_graph() -> None:
    rng = np.random.default_rng(6)
    data = _unit(rng, 3000, 64)
    ids = [f"i{n}" for n in range(len(data))]
    queries = _unit(rng, 200, 64)
    answers = []  # reproducible evaluations need reproducible neighbours
    for _ in range(3):
        index = ItemIndex(64)
        index.upsert(ids, data)
        answers.append(np.stack(index.nearest(queries, 100)))
    assert np.array_equal(answers[0], answers[1])
    assert np.array_equal(answers[0], answers[2])


def test_labels_given_and_deletions_count_label_changes_and_ids_follow_reused_slots() -> None:
    index = ItemIndex(2, IndexConfig(initial_capacity=2))
    index.upsert(["a", "b"], np.array([[1, 0], [0, 1]], dtype=np.float32))
    assert (index.labels_given, index.deletions) == (2, 0)
    index.upsert(["b"], np.array([[1, 1]], dtype=np.float32))  # replaced: keeps its label
    assert (index.labels_given, index.deletions) == (2, 0)
    index.delete("a")
    assert (index.labels_given, index.deletions) == (2, 1)
    index.upsert(["c", "d", "e", "a"], np.array([[1, 1], [1, 0], [0, 1], [1, 0]], np.float32))
    assert (index.labels_given, index.deletions) == (6, 1)  # "a" again: a new label
    labels = index.labels(["b", "c", "d", "e", "a"])
    _, ids, _ = index.resolve(labels)
    assert ids == ["b", "c", "d", "e", "a"]


class _HeldSave:
    """Delegates to an hnswlib graph; its `save_index` waits until released."""

    def __init__(self, graph: Any) -> None:
        self._graph, self.saving, self.release = graph, threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._graph, name)

    def save_index(self, path: str) -> None:
        self.saving.set()
        assert self.release.wait(10)
        self._graph.save_index(path)


def test_a_snapshot_being_written_shuts_out_writes_but_not_searches(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    idx = ItemIndex(8)
    idx.upsert([f"i{n}" for n in range(50)], _unit(rng, 50, 8))
    held = _HeldSave(idx._graph)
    idx._graph = held
    saver = threading.Thread(target=idx.save, args=(tmp_path / "snap",))
    saver.start()
    assert held.saving.wait(10)
    searched: list[Labels] = []
    search = threading.Thread(target=lambda: searched.extend(idx.nearest(_unit(rng, 1, 8), 5)))
    search.start()
    search.join(10)
    assert len(searched) == 1  # answered while the graph is being written
    assert len(searched[0]) == 5
    writer = threading.Thread(target=idx.upsert, args=(["late"], _unit(rng, 1, 8)))
    writer.start()
    writer.join(0.2)
    assert writer.is_alive()  # the write waits for the snapshot
    held.release.set()
    saver.join(10)
    writer.join(10)
    assert not writer.is_alive()
    loaded, _ = ItemIndex.load(tmp_path / "snap")
    assert "late" not in loaded  # the snapshot holds what was there when it began
    assert "late" in idx

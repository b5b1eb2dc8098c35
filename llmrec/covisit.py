"""Item co-visitation counts, maintained incrementally from the event stream in bounded memory.

When a user engages with item b, every item a in their recent list gains weight for the pair
(a, b) in both directions, discounted by how far back a sits (`gap_decay ** distance`). Each
item keeps at most `max_neighbours` neighbours: when its list grows past twice that, the
weakest are pruned, so memory is O(items x max_neighbours). Scores are cosine-normalised by
the items' total engagement so that popular items do not dominate every neighbour list
(this is ItemKNN's similarity, computed from the stream).

Item ids are interned to dense integer keys once. Each item's neighbour list is a pair of
flat `array.array`s (neighbour keys, raw counts; a dict maps a neighbour to its slot), so the
counts are not millions of Python floats scattered over the heap: a snapshot reads each list's
buffer directly. Each list is also cached as numpy arrays, rebuilt lazily after it changes, and
each item's mass factor is kept in an array updated when its mass changes, so `top` scores a
user's recent items in a few vectorised passes.

`to_part` / `from_part` carry the graph across a restart (`llmrec.stats_snapshot`) as flat
arrays (CSR: sources, list lengths, neighbour keys, raw counts), list order kept, so a restored
graph gives the same `top`, bit for bit.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
import numpy.typing as npt

from llmrec.arrays import first_seen
from llmrec.stats_snapshot import StatsPart, check

__all__ = ["CoVisitConfig", "CoVisitation"]

# One item's neighbour list: neighbour id -> slot (a str-keyed dict is the compact kind), and by
# slot the neighbour keys (C int) and raw counts (double), in insertion order (count order after
# a prune).
_List = tuple[dict[str, int], "array[int]", "array[float]"]
_EMPTY: _List = ({}, array("i"), array("d"))
_INT = array("i").itemsize  # a C int, as numpy's intc


@dataclass(frozen=True, slots=True)
class CoVisitConfig:
    """Bounds and weighting of the co-visitation graph."""

    max_neighbours: int = 100
    window: int = 20
    gap_decay: float = 0.97
    normalise_alpha: float = 0.5


def _top_stable(values: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.intp]:
    """Positions of the `k` largest `values`, largest first, ties in position order: the first
    `k` of a stable sort by descending value. Only the values at least the k-th largest are
    sorted (all its ties among them), a few times fewer than all at a user's thousand."""
    if values.size > k > 0:
        kth = np.partition(values, values.size - k)[values.size - k]
        at = np.flatnonzero(values >= kth)
        return at[np.argsort(-values[at], kind="stable")[:k]]
    return np.argsort(-values, kind="stable")[:k]


class CoVisitation:
    """A bounded, incrementally maintained item-item co-visitation graph."""

    def __init__(self, config: CoVisitConfig | None = None) -> None:
        self.config = config or CoVisitConfig()
        self._lists: dict[int, _List] = {}
        self._mass: dict[str, float] = defaultdict(float)
        self._key: dict[str, int] = {}
        self._names: list[str] = []
        # right-hand normalisation factor max(mass, 1e-9) ** (1 - alpha) per interned key
        self._right: npt.NDArray[np.float64] = np.ones(1024, dtype=np.float64)
        self._arrays: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}

    def __len__(self) -> int:
        return len(self._lists)

    def add(self, item_id: str, recent: Sequence[str], weight: float = 1.0) -> None:
        """Count `item_id` as co-visited with `recent` (most recent last, excluding itself)."""
        if weight <= 0:
            return
        window = [r for r in recent if r != item_id][-self.config.window :]
        gap = self.config.gap_decay
        increments = [(other, weight * gap**dist) for dist, other in enumerate(reversed(window))]
        self.merge(item_id, self._mass[item_id] + weight, increments)

    def merge(self, item_id: str, mass: float, increments: Sequence[tuple[str, float]]) -> None:
        """Set `item_id`'s mass and add each (other, w) of `increments` to the pair's count,
        both directions, in order (`add` is this; so is a replicated `ItemStatsRecord`)."""
        self._mass[item_id] = mass
        alpha = self.config.normalise_alpha
        key = self._intern(item_id)  # first: interning may grow `_right`
        self._right[key] = max(mass, 1e-9) ** (1 - alpha)
        if not increments:
            return
        arrays, lists = self._arrays, self._lists
        arrays.pop(key, None)
        own = self._list(key)  # fetched once: every pair below adds to it
        for other, w in increments:
            k = self._intern(other)
            own = self._bump(key, own, other, k, w)
            arrays.pop(k, None)
            self._bump(k, lists.get(k) or self._list(k), item_id, key, w)

    def _intern(self, item_id: str) -> int:
        key = self._key.get(item_id)
        if key is None:
            key = self._key[item_id] = len(self._names)
            self._names.append(item_id)
            if key >= self._right.shape[0]:
                self._right = np.concatenate([self._right, np.ones_like(self._right)])
            alpha = self.config.normalise_alpha
            self._right[key] = max(self._mass.get(item_id, 1.0), 1e-9) ** (1 - alpha)
        return key

    def _list(self, a: int) -> _List:
        entry = self._lists.get(a)
        if entry is None:
            entry = self._lists[a] = ({}, array("i"), array("d"))
        return entry

    def _bump(self, a: int, entry: _List, b: str, key_b: int, w: float) -> _List:
        """Add `w` to (a, b) in `a`'s list `entry`; returns the list (a new one if pruned)."""
        slots, nbr, cnt = entry
        slot = slots.get(b)
        if slot is not None:
            cnt[slot] += w
            return entry
        slots[b] = len(nbr)
        nbr.append(key_b)
        cnt.append(0.0 + w)
        if len(nbr) <= 2 * self.config.max_neighbours:
            return entry
        # keep the strongest; sorted() is stable, so ties keep their order
        keep = sorted(range(len(cnt)), key=cnt.__getitem__, reverse=True)
        keep = keep[: self.config.max_neighbours]
        names = self._names
        entry = self._lists[a] = (
            {names[nbr[i]]: s for s, i in enumerate(keep)},
            array("i", [nbr[i] for i in keep]),
            array("d", [cnt[i] for i in keep]),
        )
        return entry

    def count(self, a: str, b: str) -> float:
        """The raw co-visitation weight of (a, b)."""
        entry = self._lists.get(self._key.get(a, -1))
        slot = entry[0].get(b) if entry is not None else None
        return entry[2][slot] if entry is not None and slot is not None else 0.0

    def _normalised(self, item_id: str) -> list[tuple[str, float]]:
        entry = self._lists.get(self._key.get(item_id, -1))
        if entry is None:
            return []
        alpha = self.config.normalise_alpha
        left = max(self._mass.get(item_id, 1.0), 1e-9) ** alpha
        mass, names = self._mass, self._names
        return [
            (names[b], c / (left * max(mass.get(names[b], 1.0), 1e-9) ** (1 - alpha)))
            for b, c in zip(entry[1], entry[2], strict=True)
        ]

    def _neighbour_arrays(
        self, item_id: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Neighbour keys and raw counts of `item_id`, in list order (cached until it changes)."""
        key = self._key.get(item_id, -1)
        cached = self._arrays.get(key)
        if cached is None:
            _, nbr, cnt = self._lists.get(key, _EMPTY)
            # copies (np.array), never views (frombuffer): a buffer still exported would make
            # a later append fail; the export lasts one C call, under the GIL
            cached = (np.array(nbr, dtype=np.int64), np.array(cnt, dtype=np.float64))
            if key >= 0:
                self._arrays[key] = cached
        return cached

    @property
    def names(self) -> Sequence[str]:
        """Item id of each key `top_keys` returns (the graph's interned ids; read, never change)."""
        return self._names

    def top(self, recent: Sequence[tuple[str, float]], k: int) -> list[tuple[str, float, str]]:
        """The `k` best of `score(recent)` as (item, score, main source), best first.

        Same numbers and order as sorting `score`'s items by descending score (ties keep first
        appearance), computed with arrays: sums accumulate in the same order, so bit for bit.
        """
        keys, scores, src = self.top_keys(recent, k)
        names = self._names
        return [
            (names[c], score, recent[pos][0])
            for c, score, pos in zip(keys.tolist(), scores.tolist(), src.tolist(), strict=True)
        ]

    def top_keys(
        self, recent: Sequence[tuple[str, float]], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """`top` as arrays: each item's key (its id is `names[key]`), its score, and the
        position in `recent` of its main source."""
        alpha = self.config.normalise_alpha
        nbr_keys, counts, used, lefts, weights, sizes = [], [], [], [], [], []
        for pos, (src, w) in enumerate(recent):
            if w <= 0:
                continue
            nbr, cnt = self._neighbour_arrays(src)
            if nbr.size:
                nbr_keys.append(nbr)
                counts.append(cnt)
                used.append(pos)
                lefts.append(max(self._mass.get(src, 1.0), 1e-9) ** alpha)
                weights.append(w)
                sizes.append(nbr.size)
        if not nbr_keys or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
        key = np.concatenate(nbr_keys)
        # elementwise w * (c / (left * right)): the same float operations as `score`
        contrib = np.repeat(weights, sizes) * (
            np.concatenate(counts) / (np.repeat(lefts, sizes) * self._right[key])
        )
        if len(used) == 1:  # one list: its keys are distinct, each sum is its one term
            best = _top_stable(contrib, k)
            return key[best], contrib[best], np.full(len(best), used[0], dtype=np.int64)
        n, size = len(self._names), key.size
        # adds in appearance order; float64 already with weights (asarray only types it)
        total = np.asarray(np.bincount(key, weights=contrib, minlength=n), dtype=np.float64)
        largest = np.zeros(n)
        np.maximum.at(largest, key, contrib)
        # the earliest source giving each item its largest contribution
        at_max = np.flatnonzero(contrib == largest[key])
        first_max = np.full(n, size)
        np.minimum.at(first_max, key[at_max], at_max)
        appearance = first_seen(key, n)  # each item once, as it first appears
        chosen = appearance[_top_stable(total[appearance], k)]
        src_pos = np.repeat(used, sizes)[first_max[chosen]]
        return chosen.astype(np.int64), total[chosen], src_pos.astype(np.int64)

    def neighbours(self, item_id: str, k: int | None = None) -> list[tuple[str, float]]:
        """Neighbours of `item_id` by normalised similarity, best first."""
        scored = sorted(self._normalised(item_id), key=lambda kv: kv[1], reverse=True)
        return scored[:k] if k is not None else scored

    def score(self, recent: Iterable[tuple[str, float]]) -> dict[str, tuple[float, str]]:
        """Neighbour similarities summed over weighted `recent`: item -> (score, main source)."""
        total: dict[str, float] = {}
        best: dict[str, tuple[float, str]] = {}
        for src, w in recent:
            if w <= 0:
                continue
            for b, s in self._normalised(src):
                contrib = w * s
                total[b] = total.get(b, 0.0) + contrib
                if contrib > best.get(b, (0.0, ""))[0]:
                    best[b] = (contrib, src)
        return {b: (t, best[b][1]) for b, t in total.items()}

    def to_part(self) -> StatsPart:
        """The graph, for `llmrec.stats_snapshot`: interned ids, each one's mass (NaN: none),
        and the neighbour lists as CSR arrays of interned keys and raw counts."""
        key, lists = self._key, self._lists
        mass = np.full(len(self._names), np.nan)
        mass[np.fromiter(map(key.__getitem__, self._mass), np.int64, len(self._mass))] = (
            np.fromiter(self._mass.values(), np.float64, len(self._mass))
        )
        # every list's buffer copied once, by bytes.join (no Python object per pair)
        nbr = np.frombuffer(b"".join([e[1] for e in lists.values()]), dtype=np.intc)
        arrays = {
            "mass": mass,
            "src": np.fromiter(lists, np.int32, len(lists)),
            "length": np.fromiter((len(e[1]) for e in lists.values()), np.int32, len(lists)),
            "nbr": nbr.astype(np.int32, copy=False),
            "count": np.frombuffer(b"".join([e[2] for e in lists.values()]), dtype=np.float64),
        }
        return StatsPart(list(self._names), arrays)

    @classmethod
    def from_part(cls, part: StatsPart, config: CoVisitConfig | None = None) -> CoVisitation:
        """The graph as `to_part` exported it; SnapshotError when the part is inconsistent."""
        names = part.ids
        n = len(names)
        mass = part.array("mass", np.float64, (n,))
        src = part.array("src", np.int32, (-1,))
        length = part.array("length", np.int32, src.shape)
        nbr = part.array("nbr", np.int32, (-1,))
        count = part.array("count", np.float64, nbr.shape)
        check(len(set(names)) == n, "repeated co-visitation ids")
        check(bool(np.all((src >= 0) & (src < n))), "co-visitation sources out of range")
        check(np.unique(src).size == src.size, "repeated co-visitation sources")
        check(bool(np.all((nbr >= 0) & (nbr < n))), "co-visitation neighbours out of range")
        check(
            bool((length >= 0).all()) and int(length.sum(dtype=np.int64)) == nbr.size,
            "co-visitation lists",
        )
        has_mass = ~np.isnan(mass)
        check(bool(np.isfinite(mass[has_mass]).all()), "co-visitation mass")
        out = cls(config)
        out._names = list(names)
        out._key = {name: k for k, name in enumerate(names)}
        out._mass = defaultdict(
            float,
            zip(
                [names[k] for k in np.flatnonzero(has_mass).tolist()],
                mass[has_mass].tolist(),
                strict=True,
            ),
        )
        # the same float operations as `_intern` and `add`, in Python floats: bit-identical
        exp = 1 - out.config.normalise_alpha
        out._right = np.ones(max(n, out._right.shape[0]), dtype=np.float64)
        out._right[:n] = [max(m, 1e-9) ** exp for m in np.where(has_mass, mass, 1.0).tolist()]
        nbr_names = map(out._names.__getitem__, nbr.tolist())  # the shared str objects
        nbr_raw, count_raw = nbr.astype(np.intc).tobytes(), count.tobytes()
        lo = 0
        for s, size in zip(src.tolist(), length.tolist(), strict=True):
            slots = dict(zip(islice(nbr_names, size), range(size), strict=True))
            check(len(slots) == size, "repeated neighbours in a co-visitation list")
            hi = lo + size
            out._lists[s] = (slots, array("i", nbr_raw[_INT * lo : _INT * hi]),
                             array("d", count_raw[8 * lo : 8 * hi]))  # fmt: skip
            lo = hi
        return out

    def memory_items(self) -> int:
        """Number of stored (item, neighbour) pairs: the memory bound's unit."""
        return sum(len(e[1]) for e in self._lists.values())

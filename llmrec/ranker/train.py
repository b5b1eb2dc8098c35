"""Training data for the ranker from a replayed stream, and its LightGBM LambdaMART fit.

While a stream is replayed, `GroupSampler.before` looks at a sample of positive first-time
engagements *before* they are folded in: the candidates the engine would have retrieved for that
user at that moment form one query group, labelled 1 on the item the user then engaged with.
A group whose engaged item was not retrieved teaches nothing and is dropped (its share is the
retrieval miss rate, reported). Negatives are subsampled per group, uniformly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from llmrec.candidates import Candidates
from llmrec.events import Event
from llmrec.interests import UserState
from llmrec.ranker.features import FEATURES, feature_matrix
from llmrec.ranker.model import Ranker

if TYPE_CHECKING:
    from llmrec.engine import Engine

__all__ = [
    "FitConfig",
    "Group",
    "GroupSampler",
    "SampleConfig",
    "fit_ranker",
    "make_group",
    "train_on_stream",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Group:
    """One query: a user's candidates (feature rows) and which one was engaged with."""

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int8]
    ts: float


@dataclass(frozen=True, slots=True)
class SampleConfig:
    """How many groups to collect and how many negatives each keeps."""

    max_groups: int = 5_000
    # Negatives kept per query; None keeps every retrieved candidate, which is what the ranker
    # will face (uniform subsamples measured worse: random negatives are too easy to learn from).
    negatives: int | None = None
    min_history: int = 1
    seed: int = 0


@dataclass(frozen=True, slots=True)
class FitConfig:
    """LightGBM settings; each grid row is tried and the best on validation kept."""

    # From heavily regularised (small streams) to expressive (large ones); validation picks.
    grid: tuple[Mapping[str, Any], ...] = (
        {"num_leaves": 7, "min_data_in_leaf": 100, "lambda_l2": 10.0},
        {"num_leaves": 15, "min_data_in_leaf": 50},
        {"num_leaves": 63, "min_data_in_leaf": 20},
    )
    learning_rate: float = 0.05
    max_rounds: int = 500
    early_stopping: int = 50
    # One thread by default: OpenMP's spin-waiting collapses (100x measured) when the cores are
    # shared with other work; 0 means LightGBM's default (every core).
    threads: int = 1
    seed: int = 0


def make_group(
    st: UserState, c: Candidates, engine: Engine, now: float, target: str, *,
    negatives: int | None, rng: np.random.Generator,
) -> Group | None:  # fmt: skip
    """The group of `c` labelled by `target`, negatives subsampled; None if `target` is absent."""
    try:
        pos = c.ids.index(target)
    except ValueError:
        return None
    x = feature_matrix(st, c, engine.items, now)
    keep = np.arange(len(c.ids))
    if negatives is not None and len(c.ids) - 1 > negatives:
        # Uniform negatives: picking "hard" ones by the fusion score would teach the ranker that
        # a high fusion score means "not engaged" (they were chosen for it).
        others = keep[keep != pos]
        keep = np.sort(np.append(rng.choice(others, size=negatives, replace=False), pos))
    y = (keep == pos).astype(np.int8)
    return Group(x[keep], y, now)


@dataclass(slots=True)
class GroupSampler:
    """Collects ranker training groups during a replay (call `before` ahead of `observe`)."""

    engine: Engine
    expected_events: int
    config: SampleConfig = field(default_factory=SampleConfig)
    groups: list[Group] = field(default_factory=list)
    missed: int = 0
    _rng: np.random.Generator = field(init=False)
    _p: float = field(init=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.config.seed)
        self._p = min(1.0, 1.5 * self.config.max_groups / max(self.expected_events, 1))

    def before(self, state: bytes | None, event: Event) -> None:
        """Maybe make a group from `event`, against the state and statistics before it."""
        cfg = self.config
        if state is None or len(self.groups) >= cfg.max_groups or self._rng.random() > self._p:
            return
        if self.engine.event_weight(event) <= 0 or not self.engine.knows_item(event.item_id):
            return
        # Check the user's history before paying for retrieval.
        seen = UserState.from_bytes(state)
        if len(seen.seen) < cfg.min_history or seen.has_seen(event.item_id):
            return
        st, c = self.engine.candidates(state, event.ts)
        g = None if c is None else make_group(
            st, c, self.engine, event.ts, event.item_id, negatives=cfg.negatives, rng=self._rng
        )  # fmt: skip
        if g is None:
            self.missed += 1
        else:
            self.groups.append(g)


def _dataset(groups: Sequence[Group], cols: npt.NDArray[np.int64]) -> lgb.Dataset:
    x = np.concatenate([g.x[:, cols] for g in groups])
    y = np.concatenate([g.y for g in groups])
    # feature_pre_filter off: the grid changes min_data_in_leaf on the same Dataset, which
    # LightGBM otherwise refuses ("Reducing `min_data_in_leaf` with feature_pre_filter=true").
    return lgb.Dataset(
        x, y, group=[len(g.y) for g in groups], free_raw_data=False,
        params={"feature_pre_filter": False},
    )  # fmt: skip


def fit_ranker(
    train: Sequence[Group], val: Sequence[Group], features: Sequence[str] = FEATURES,
    fit: FitConfig | None = None, **info: Any,
) -> Ranker:  # fmt: skip
    """Fit LambdaMART on `train`, early-stopped and grid-picked by NDCG@10 on `val`."""
    cfg = fit or FitConfig()
    if not train or not val:
        raise ValueError(f"need training and validation groups (got {len(train)}, {len(val)})")
    cols = np.array([FEATURES.index(f) for f in features], dtype=np.int64)
    dtrain, dval = _dataset(train, cols), _dataset(val, cols)
    best: tuple[float, lgb.Booster, Mapping[str, Any]] | None = None
    tried = []
    for row in cfg.grid:
        params = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [10],
            "learning_rate": cfg.learning_rate,
            "feature_fraction": 0.9,
            "verbosity": -1,
            "deterministic": True,
            "seed": cfg.seed,
            **({"num_threads": cfg.threads} if cfg.threads else {}),
            **row,
        }
        booster = lgb.train(
            params, dtrain, num_boost_round=cfg.max_rounds, valid_sets=[dval],
            callbacks=[lgb.early_stopping(cfg.early_stopping, verbose=False)],
        )  # fmt: skip
        score = float(booster.best_score["valid_0"]["ndcg@10"])
        tried.append({**row, "rounds": booster.best_iteration, "val_ndcg@10": score})
        log.debug("ranker %s -> val ndcg@10 %.4f at %d rounds", row, score, booster.best_iteration)
        if best is None or score > best[0]:
            best = (score, booster, row)
    assert best is not None, "FitConfig.grid is empty"
    score, booster, row = best
    # Keep only the early-stopped rounds in the saved model.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    return Ranker.from_booster(
        booster, list(features),
        params=dict(row), rounds=booster.current_iteration(), val_ndcg_at_10=score,
        train_groups=len(train), val_groups=len(val), tried=tried, **info,
    )  # fmt: skip


def train_on_stream(
    engine: Engine, events: Sequence[Event], *, sample: SampleConfig | None = None,
    fit: FitConfig | None = None, val_fraction: float = 0.2,
    progress: Callable[[int], None] | None = None, **info: Any,
) -> Ranker:  # fmt: skip
    """Replay `events` (time order) through `engine`, sampling groups; fit on the earlier
    groups, early-stop on the latest `val_fraction` (as it will be used: on what comes next)."""
    ordered = sorted(events, key=lambda e: e.ts)
    sampler = GroupSampler(engine, len(ordered), sample or SampleConfig())
    engine.replay(ordered, {}, before=sampler.before, progress=progress)
    groups = sampler.groups
    cut = int(len(groups) * (1.0 - val_fraction))
    sampled = len(groups) + sampler.missed
    return fit_ranker(
        groups[:cut], groups[cut:], fit=fit, events=len(ordered),
        target_retrieved=len(groups) / max(sampled, 1), **info,
    )  # fmt: skip

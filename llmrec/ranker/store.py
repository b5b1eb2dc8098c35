"""Where trained rankers live and how a running worker picks up a newer one without a restart.

Layout: `<root>/<version>/model.txt` + `manifest.json`, and `<root>/current -> <version>`,
switched atomically after the files are complete. `RankerWatcher.poll` is cheap (one readlink),
so a worker may call it every few seconds and swap the engine's ranker when it changes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from llmrec.exceptions import RankerArtifactError
from llmrec.ranker.model import Ranker
from llmrec.versions import current_version, set_current

__all__ = ["RankerWatcher", "load_current", "publish"]

log = logging.getLogger(__name__)


def publish(ranker: Ranker, root: Path) -> Path:
    """Save `ranker` as `<root>/<version>` and make it current; returns its folder."""
    folder = root / ranker.version
    ranker.save(folder)
    set_current(root, ranker.version)
    return folder


def load_current(root: Path) -> Ranker | None:
    """The current ranker under `root`, or None when none was published."""
    version = current_version(root)
    return None if version is None else Ranker.load(root / version)


class RankerWatcher:
    """Tracks `<root>/current`; `poll` returns a newly published ranker once, else None."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version: str | None = None

    def poll(self) -> Ranker | None:
        version = current_version(self.root)
        if version is None or version == self.version:
            return None
        try:
            ranker = Ranker.load(self.root / version)
        except RankerArtifactError:
            # A broken file must not take the worker down: keep the ranker it has, say so once.
            log.exception("ranker %s cannot be loaded; keeping the one in use", version)
            self.version = version
            return None
        self.version = version
        return ranker

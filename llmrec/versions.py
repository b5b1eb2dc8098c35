"""Versioned artifact folders under a root, with a `current` symlink switched atomically.

Used by the encoder export and the ranker store: `<root>/<version>/...` plus `<root>/current`,
so a reader either sees the old version or the new one, never a half-written folder.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CURRENT_LINK", "current_version", "set_current"]

CURRENT_LINK = "current"


def set_current(root: Path, version: str) -> None:
    """Point `root/current` at `version` by renaming a fresh symlink over the old one."""
    link = root / CURRENT_LINK
    if link.is_symlink() and str(link.readlink()) == version:
        return
    tmp = root / f".{CURRENT_LINK}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(version, target_is_directory=True)
    tmp.replace(link)


def current_version(root: Path) -> str | None:
    """The version `root/current` points at, or None when there is none."""
    link = root / CURRENT_LINK
    return str(link.readlink()) if link.is_symlink() else None

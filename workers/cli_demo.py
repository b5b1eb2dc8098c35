"""`llmrec demo`: broker up, a worker, a MovieLens replay, live recommendations, all down."""

from __future__ import annotations

import typer

__all__ = ["demo"]


def demo(limit: int = typer.Option(3000, help="Events to replay.")) -> None:
    """Run the whole pipeline locally for a few minutes and print recommendations."""
    raise typer.Exit(1)

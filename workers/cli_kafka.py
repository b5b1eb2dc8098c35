"""`llmrec kafka up | down | status`: the local single-node KRaft broker."""

from __future__ import annotations

import typer
from rich.console import Console

from llmrec.exceptions import BrokerError
from workers.kafka_local import BrokerConfig, LocalBroker
from workers.settings import get_settings

__all__ = ["app"]

app = typer.Typer(help="The local Kafka broker (KRaft, single node).", no_args_is_help=True)
console = Console(stderr=True)


def _broker() -> LocalBroker:
    return LocalBroker(BrokerConfig.from_settings(get_settings()))


@app.command()
def up(
    timeout: float = typer.Option(90.0, help="Seconds to wait for the broker to answer."),
) -> None:
    """Start the broker (idempotent) and print its bootstrap address once it answers."""
    broker = _broker()
    try:
        status = broker.up(timeout=timeout)
    except BrokerError as exc:
        console.print(f"[red]kafka up failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(status.describe())
    typer.echo(status.bootstrap)


@app.command()
def down(
    timeout: float = typer.Option(30.0, help="Seconds to wait after SIGTERM before SIGKILL."),
) -> None:
    """Stop the broker (idempotent); its data stays for the next `up`."""
    stopped = _broker().down(timeout=timeout)
    console.print("broker stopped" if stopped else "broker was not running")


@app.command()
def status() -> None:
    """Say whether the broker runs and answers; exit 1 when it does not answer."""
    st = _broker().status()
    console.print(st.describe())
    if not st.answering:
        raise typer.Exit(1)

"""`backfill`: the whole program. The headless commands of `core.cli`, with the dashboard on top:
`backfill tui`, and `backfill` alone. Here the UI meets the command line, so `core` never imports
the UI (`python -m core` is the same program without the dashboard)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from core.cli import cli as headless
from core.cli import config_option, load_for_command, run_cli


@click.group(invoke_without_command=True)
@click.version_option(package_name="backfill")
@click.pass_context
def cli(ctx: click.Context) -> int:
    """Supervise long, multi-phase, date-partitioned data backfills."""
    if ctx.invoked_subcommand is None:
        code: int = ctx.invoke(tui)
        return code
    return 0


@cli.command()
@config_option
@click.option("--read-only", is_flag=True, help="Disable every control that changes anything.")
def tui(config_path: Path, read_only: bool) -> int:
    """Open the dashboard on the pipeline."""
    config = load_for_command(config_path)
    # Textual loads only for the dashboard: a headless command starts in a third of the time.
    from tui.app import run_dashboard

    return run_dashboard(config, read_only=read_only)


for name, command in headless.commands.items():
    cli.add_command(command, name)


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run_cli(cli.main, argv))

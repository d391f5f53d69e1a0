"""verify: recompute every block checksum of a store and name any corrupted block."""

from __future__ import annotations

import click

from plankton_store.store import StoreFormatError, verify_blocks


@click.command("verify")
@click.argument("store")
def verify_command(store: str) -> None:
    """Check STORE against the checksums recorded when each block was written.

    Exits with status 1 and names every block that was never written, cannot be read or
    does not match its checksum.
    """
    try:
        problems = verify_blocks(store)
    except StoreFormatError as exc:
        raise click.ClickException(str(exc)) from None
    if not problems:
        click.echo(f"{store}: every block matches its checksum")
        return
    for index, problem in sorted(problems.items()):
        click.echo(f"block {index}: {problem}", err=True)
    raise click.ClickException(f"{len(problems)} corrupted or missing blocks in {store}")

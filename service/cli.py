"""The ``groundqa`` command line: settings are built here and passed down."""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from index.errors import GroundQAError
from service.settings import Settings

app = typer.Typer(
    name="groundqa",
    help="Grounded question answering over a folder of documents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    corpus_dir: Annotated[
        Path | None, typer.Option(help="Documents folder [GROUNDQA_CORPUS_DIR].")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Index state folder [GROUNDQA_DATA_DIR].")
    ] = None,
    collection: Annotated[
        str | None, typer.Option(help="Chroma collection [GROUNDQA_COLLECTION].")
    ] = None,
    chroma_url: Annotated[
        str | None, typer.Option(help="Chroma server URL [GROUNDQA_CHROMA_URL].")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "corpus_dir": corpus_dir,
            "data_dir": data_dir,
            "collection": collection,
            "chroma_url": chroma_url,
        }.items()
        if v is not None
    }
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        ctx.obj = Settings(**overrides)
    except ValidationError as exc:
        typer.echo(f"error: invalid settings:\n{exc}", err=True)
        raise typer.Exit(2) from None


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root command built."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def _register_all() -> None:
    from index.cli import register as register_index
    from service.commands import register as register_service

    register_index(app, settings_of)
    register_service(app, settings_of)
    # Packages above `service` (evals) contribute commands through entry points,
    # so this module never imports them.
    for ep in entry_points(group="groundqa.commands"):
        ep.load()(app, settings_of)


def main() -> None:
    _register_all()
    try:
        app()
    except GroundQAError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)

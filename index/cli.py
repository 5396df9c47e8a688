"""``groundqa ingest | sources | search``: the index's commands on the root CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from index.settings import IndexSettings

CollectionOpt = Annotated[
    str | None,
    typer.Option(
        "--collection", help="The collection to use [default: GROUNDQA_COLLECTION, 'groundqa']."
    ),
]


def for_collection(settings: IndexSettings, name: str | None, *, create: bool = False) -> Any:
    """``settings`` pointed at collection ``name`` (unchanged when None). Only ingest creates a
    collection by naming it; elsewhere an unknown name is an error, not a new empty collection."""
    from index.collections import CollectionNotFound, Collections, collection_settings

    if name is None or name == settings.collection:
        return settings
    if not create and not Collections(settings).exists(name):
        raise CollectionNotFound(name)
    return collection_settings(settings, name)


def register(app: typer.Typer, settings_of: Callable[[typer.Context], IndexSettings]) -> None:
    """Add the index commands to ``app``; ``settings_of(ctx)`` gives the root's settings."""

    @app.command()
    def ingest(
        ctx: typer.Context,
        path: Annotated[
            Path | None, typer.Argument(help="Folder (or file) to ingest [default: corpus dir].")
        ] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        collection: CollectionOpt = None,
    ) -> None:
        """Index a folder of documents incrementally (unchanged files are not re-embedded).

        With --collection NAME the collection is created when missing; without a path, a
        non-default collection ingests its own folder (DATA_DIR/corpora/NAME, where uploads go).
        """
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from index import Index
        from index.malloc import fix_mmap_threshold

        settings = for_collection(settings_of(ctx), collection, create=True)
        # Before the models load, so that every tensor's allocation follows it.
        fix_mmap_threshold(settings.ingest_mmap_threshold_kib)
        index = Index(settings)
        err = Console(stderr=True)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=json_out or not err.is_terminal,
        ) as bar:
            task = bar.add_task("ingesting", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = index.ingest(path, progress=progress)
        if json_out:
            typer.echo(json.dumps(asdict(report), indent=2))
            return
        out = Console()
        out.print(
            f"added {len(report.added)}, updated {len(report.updated)}, "
            f"unchanged {len(report.unchanged)}, removed {len(report.removed)}, "
            f"skipped {len(report.skipped)}; chunks embedded {report.chunks_embedded}, "
            f"total {report.chunks_total}; {report.seconds:.1f} s"
            + (" (rebuilt for a new embedding model)" if report.rebuilt else ""),
            highlight=False,
            soft_wrap=True,  # one line per fact, whatever the terminal width (or a pipe's 80)
        )
        for source, reason in sorted(report.skipped.items()):
            out.print(f"skipped {source}: {reason}", highlight=False, markup=False, soft_wrap=True)

    @app.command()
    def sources(
        ctx: typer.Context,
        json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        collection: CollectionOpt = None,
    ) -> None:
        """List the indexed documents."""
        from index import Index

        infos = Index(for_collection(settings_of(ctx), collection)).sources()
        if json_out:
            typer.echo(json.dumps([asdict(s) for s in infos], indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("id", "source", "title", "chunks", "pages")
        for s in infos:
            table.add_row(s.id, s.source, s.title, str(s.chunks), str(s.pages or ""))
        Console().print(table)

    @app.command()
    def search(
        ctx: typer.Context,
        query: Annotated[str, typer.Argument(help="What to look for.")],
        k: Annotated[int, typer.Option("-k", "--k", min=1, max=200, help="Hits to show.")] = 5,
        json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
        collection: CollectionOpt = None,
        doc: Annotated[
            list[str] | None,
            typer.Option("--doc", help="Limit to this document (source or id); repeatable."),
        ] = None,
        glob: Annotated[
            str | None, typer.Option(help="Limit to documents whose source or title matches.")
        ] = None,
    ) -> None:
        """Show the top chunks for a query (hybrid dense + BM25 retrieval)."""
        from index import Index

        index = Index(for_collection(settings_of(ctx), collection))
        hits = index.search(query, k, sources=scope_sources(index, doc, glob))
        if json_out:
            typer.echo(json.dumps([asdict(h) for h in hits], indent=2, ensure_ascii=False))
            return
        for n, h in enumerate(hits, 1):
            c = h.chunk
            where = f"{c.source}[{c.start}:{c.end}]" + (f" p.{c.page}" if c.page else "")
            dense = f"{h.dense_score:.3f}" if h.dense_score is not None else "-"
            kw = f"{h.keyword_score:.2f}" if h.keyword_score is not None else "-"
            typer.echo(f"{n}. {where}  score {h.score:.4f}  dense {dense}  bm25 {kw}")
            typer.echo("   " + " ".join(c.text.split())[:300])

    collections = typer.Typer(
        name="collections", help="List, create and delete collections.", no_args_is_help=True
    )
    app.add_typer(collections)

    @collections.command("list")
    def list_collections(
        ctx: typer.Context,
        json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Every collection, the default first, with its documents and chunks."""
        from index.collections import Collections

        cols = Collections(settings_of(ctx))
        infos = [cols.info(n) for n in cols.names()]
        if json_out:
            typer.echo(json.dumps([asdict(i) for i in infos], indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("name", "documents", "chunks", "default")
        for i in infos:
            table.add_row(i.name, str(i.documents), str(i.chunks), "yes" if i.default else "")
        Console().print(table)

    @collections.command("create")
    def create_collection(
        ctx: typer.Context, name: Annotated[str, typer.Argument(help="3-42 characters.")]
    ) -> None:
        """Create an empty collection (then: groundqa ingest --collection NAME FOLDER)."""
        from index.collections import Collections

        created = Collections(settings_of(ctx)).create(name)
        typer.echo(f"created {name}" if created else f"{name} already exists")

    @collections.command("delete")
    def delete_collection(
        ctx: typer.Context,
        name: Annotated[str, typer.Argument(help="The collection to delete.")],
        yes: Annotated[
            bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
        ] = False,
    ) -> None:
        """Delete a collection: its chunks, manifest, keyword index and uploaded files."""
        from index.collections import Collections

        cols = Collections(settings_of(ctx))
        info = cols.info(name)  # a missing name fails here, before any question
        if not yes and not typer.confirm(
            f"delete collection {name!r} ({info.documents} documents, {info.chunks} chunks)?"
        ):
            typer.echo("not deleted", err=True)
            raise typer.Exit(1)
        gone = cols.delete(name)
        typer.echo(f"deleted {gone.name}: {gone.chunks} chunks")


def scope_sources(index: Any, docs: list[str] | None, glob: str | None) -> list[str] | None:
    """The sources a --doc/--glob scope names (None: no scope)."""
    from index.collections import Scope

    scope = Scope(tuple(docs or ()), glob)
    return None if scope.empty else scope.resolve(index.sources())

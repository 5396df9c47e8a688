"""``groundqa ingest | sources | search``: the index's commands on the root CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from index.settings import IndexSettings


def register(app: typer.Typer, settings_of: Callable[[typer.Context], IndexSettings]) -> None:
    """Add the index commands to ``app``; ``settings_of(ctx)`` gives the root's settings."""

    @app.command()
    def ingest(
        ctx: typer.Context,
        path: Annotated[
            Path | None, typer.Argument(help="Folder (or file) to ingest [default: corpus dir].")
        ] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """Index a folder of documents incrementally (unchanged files are not re-embedded)."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from index import Index

        settings = settings_of(ctx)
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
    ) -> None:
        """List the indexed documents."""
        from index import Index

        infos = Index(settings_of(ctx)).sources()
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
    ) -> None:
        """Show the top chunks for a query (hybrid dense + BM25 retrieval)."""
        from index import Index

        hits = Index(settings_of(ctx)).search(query, k)
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

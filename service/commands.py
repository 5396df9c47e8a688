"""CLI commands of the answering service: ``ask``, ``chat`` and ``serve``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from index.errors import ConfigError, GroundQAError
from service.result import Answer, Mode, Turn

if TYPE_CHECKING:
    from service.qa import QA
    from service.settings import Settings


def _qa(settings: Settings, collection: str | None = None) -> QA:
    from index.cli import for_collection
    from service.qa import QA

    return QA(for_collection(settings, collection))


CollectionOpt = Annotated[
    str | None,
    typer.Option(
        "--collection", help="The collection to ask [default: GROUNDQA_COLLECTION, 'groundqa']."
    ),
]
DocOpt = Annotated[
    list[str] | None,
    typer.Option("--doc", help="Limit the question to this document (source or id); repeatable."),
]
GlobOpt = Annotated[
    str | None, typer.Option(help="Limit the question to documents whose source or title matches.")
]


def _show(answer: Answer) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(soft_wrap=True)
    style = "yellow" if answer.abstained else "bold"
    console.print(escape(answer.answer), style=style)
    if answer.short_answer:
        console.print(f"[dim]short answer:[/dim] {escape(answer.short_answer)}")
    if answer.abstained:
        console.print(f"[dim]abstained ({answer.reason}); confidence {answer.confidence:.2f}[/dim]")
        for p in answer.related:
            console.print(f"[dim]  related: {escape(p.source)} — {escape(p.title)}[/dim]")
        return
    console.print(f"[dim]confidence {answer.confidence:.2f}[/dim]")
    for c in answer.citations:
        console.print(
            f"[cyan][{c.n}][/cyan] {escape(c.title)} "
            f"[dim]({escape(c.source)}, chars {c.start}-{c.end})[/dim]"
        )
        console.print(f"    “{escape(c.quote)}”", style="green")


def _json_line(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _batch(
    qa: QA, source: str, mode: Mode | None, top_k: int | None, sources: list[str] | None = None
) -> int:
    """Answer JSONL questions (``{"id", "question", "history"?}``), one JSON result per line."""
    stream = sys.stdin if source == "-" else Path(source).open(encoding="utf-8")  # noqa: SIM115
    failures = 0
    try:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            item_id: Any = None
            try:
                item = json.loads(line)
                if not isinstance(item, dict):
                    raise ValueError("each line must be a JSON object")
                item_id = item.get("id", lineno)
                question = item.get("question")
                if not isinstance(question, str) or not question.strip():
                    raise ValueError("'question' must be a non-empty string")
                history = [Turn.model_validate(t) for t in item.get("history") or []]
                answer = qa.ask(question, history, mode=mode, top_k=top_k, sources=sources)
                _json_line({"id": item_id, **answer.model_dump(mode="json")})
            except (ValueError, ValidationError, ConfigError) as exc:
                failures += 1
                _json_line({"id": item_id if item_id is not None else lineno, "error": str(exc)})
    finally:
        if stream is not sys.stdin:
            stream.close()
    return failures


def register(app: typer.Typer, settings_of: Callable[[typer.Context], Settings]) -> None:
    """Add ``ask``, ``chat`` and ``serve`` to the ``groundqa`` command."""

    @app.command()
    def ask(
        ctx: typer.Context,
        question: Annotated[str | None, typer.Argument(help="The question.")] = None,
        mode: Annotated[
            str | None, typer.Option(help="extractive (default) or generative [GROUNDQA_MODE].")
        ] = None,
        top_k: Annotated[
            int | None, typer.Option("--top-k", min=1, max=50, help="Passages to draw on.")
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the full result as JSON.")
        ] = False,
        batch: Annotated[
            str | None,
            typer.Option(
                help="JSONL of {id, question, history?} ('-' = stdin); one JSON result per line."
            ),
        ] = None,
        collection: CollectionOpt = None,
        doc: DocOpt = None,
        glob: GlobOpt = None,
    ) -> None:
        """Answer a question from the corpus, with numbered citations (or abstain)."""
        from index.cli import scope_sources

        settings = settings_of(ctx)
        if mode not in (None, "extractive", "generative"):
            typer.echo("error: --mode must be 'extractive' or 'generative'", err=True)
            raise typer.Exit(2)
        qa = _qa(settings, collection)
        sources = scope_sources(qa.index, doc, glob)
        if batch is not None:
            if question is not None:
                typer.echo("error: give a question or --batch, not both", err=True)
                raise typer.Exit(2)
            failures = _batch(qa, batch, mode, top_k, sources)  # type: ignore[arg-type]
            raise typer.Exit(1 if failures else 0)
        if not question:
            typer.echo("error: missing question (or --batch FILE)", err=True)
            raise typer.Exit(2)
        try:
            answer = qa.ask(question, mode=mode, top_k=top_k, sources=sources)  # type: ignore[arg-type]
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(answer.model_dump_json(indent=2))
        else:
            _show(answer)

    @app.command()
    def chat(
        ctx: typer.Context,
        mode: Annotated[
            str | None, typer.Option(help="extractive (default) or generative.")
        ] = None,
        top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=50)] = None,
        collection: CollectionOpt = None,
        doc: DocOpt = None,
        glob: GlobOpt = None,
    ) -> None:
        """Ask questions in a loop; follow-ups are read against the conversation so far.

        Reads one question per line until end of input or "exit"; works when piped.
        """
        from index.cli import scope_sources

        settings = settings_of(ctx)
        qa = _qa(settings, collection)
        sources = scope_sources(qa.index, doc, glob)
        qa.warmup()
        history: list[Turn] = []
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                typer.echo("? ", nl=False)
            line = sys.stdin.readline()
            if not line:
                break
            question = line.strip()
            if not question:
                continue
            if question.lower() in ("exit", "quit"):
                break
            try:
                answer = qa.ask(question, history, mode=mode, top_k=top_k, sources=sources)  # type: ignore[arg-type]
            except ConfigError as exc:
                typer.echo(f"error: {exc}", err=True)
                continue
            except GroundQAError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from None
            if answer.standalone_question != question:
                typer.echo(f"(searching for: {answer.standalone_question})")
            _show(answer)
            typer.echo("")
            history += [
                Turn(role="user", content=question),
                Turn(role="assistant", content=answer.answer),
            ]

    @app.command()
    def serve(
        ctx: typer.Context,
        host: Annotated[str | None, typer.Option(help="Bind address [GROUNDQA_HOST].")] = None,
        port: Annotated[int | None, typer.Option(help="Port [GROUNDQA_PORT].")] = None,
        collection: Annotated[
            str | None,
            typer.Option(
                "--collection",
                help="The default collection: asked when a request names none, and the one "
                "whose folder is the corpus dir [GROUNDQA_COLLECTION].",
            ),
        ] = None,
    ) -> None:
        """Serve the HTTP API and the web UI (every collection; see /v1/collections)."""
        from service.settings import Settings

        settings = settings_of(ctx)
        updates = {
            k: v
            for k, v in {"host": host, "port": port, "collection": collection}.items()
            if v is not None
        }
        if updates:
            # model_copy skips validation; re-validate so unsafe binds are still refused.
            try:
                settings = Settings.model_validate({**settings.model_dump(), **updates})
            except ValidationError as exc:
                typer.echo(f"error: invalid settings:\n{exc}", err=True)
                raise typer.Exit(2) from None
        from service.app import serve as run

        run(settings)

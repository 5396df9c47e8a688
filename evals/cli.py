"""``groundqa eval``: run an eval set (or SQuAD) through QA, report, and gate regressions."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, cast, get_args

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evals import gate as gates
from evals import report
from evals.dataset import DEFAULT_SET, load_set
from evals.runner import meta, run_items, summarize
from service.result import Mode
from service.settings import Settings


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _mode(value: str | None) -> Mode | None:
    if value is not None and value not in get_args(Mode):
        raise typer.BadParameter(f"must be one of {', '.join(get_args(Mode))}", param_hint="--mode")
    return cast(Mode | None, value)


def _qa(settings: Settings) -> Any:
    from service.qa import QA  # heavy: imported only when a command runs

    return QA(settings)


def run_set(
    settings: Settings,
    set_path: Path,
    mode: Mode | None,
    console: Console,
    qa: Any = None,
    *,
    ingest: bool = True,
) -> dict[str, Any]:
    """Ingest the configured corpus (incremental; unless ``ingest`` is False, which asks the
    collection as it stands), ask every item, and summarise."""
    items = load_set(set_path)
    # Recorded before the run: the code that answers is the code checked out now.
    about = meta(set_path, len(items), settings, mode or settings.mode)
    qa = qa or _qa(settings)
    with _progress(console) as bar:
        task = bar.add_task("ingesting corpus", total=None)

        def ingested(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if ingest:
            qa.index.ingest(progress=ingested)
        bar.update(task, description="warming up", total=None, completed=0)
        qa.warmup()
        bar.update(task, description="asking", total=len(items), completed=0)
        judge = None
        try:
            from evals.faithful import verifier_judge

            judge = verifier_judge(qa.index.embedder, settings.min_support, qa.support)
        except ImportError as exc:
            console.print(f"[yellow]faithfulness not measured: {exc}[/yellow]")
        results = run_items(
            qa,
            items,
            min_support=settings.min_support,
            judge=judge,
            mode=mode,
            on_item=lambda _: bar.advance(task),
        )
    summary = summarize(results, faithfulness=judge is not None)
    return {"meta": about, **summary}


def register(app: typer.Typer, settings_of: Callable[[typer.Context], Settings]) -> None:
    """Add ``groundqa eval`` to the root command."""

    @app.command("eval")
    def eval_command(
        ctx: typer.Context,
        set_path: Annotated[
            Path, typer.Option("--set", help="Eval set (JSONL, see evals/README.md).")
        ] = DEFAULT_SET,
        mode: Annotated[
            str | None, typer.Option(help="Answer mode: extractive or generative.")
        ] = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Write the JSON report.")
        ] = None,
        report_out: Annotated[
            Path | None, typer.Option("--report", help="Write the Markdown report.")
        ] = None,
        gate: Annotated[
            bool, typer.Option("--gate", help="Fail on thresholds or baseline regressions.")
        ] = False,
        update_baseline: Annotated[
            bool, typer.Option("--update-baseline", help="Record this run as the baseline.")
        ] = False,
        thresholds: Annotated[Path, typer.Option(help="Gate thresholds.")] = gates.THRESHOLDS,
        baseline: Annotated[Path, typer.Option(help="Gate baseline.")] = gates.BASELINE,
        squad: Annotated[
            Path | None, typer.Option(help="Run a SQuAD v2.0 JSON file instead of the eval set.")
        ] = None,
        limit: Annotated[
            int | None, typer.Option(min=1, help="SQuAD: ask a seeded sample of N questions.")
        ] = None,
        seed: Annotated[int, typer.Option(help="SQuAD: sample seed.")] = 0,
        predictions: Annotated[
            Path | None, typer.Option(help="SQuAD: write the official prediction file.")
        ] = None,
        collection: Annotated[
            str | None,
            typer.Option(
                "--collection",
                help="Ask this collection as it stands (it is not re-ingested first); "
                "citations from outside it are counted as citations.outside_collection.",
            ),
        ] = None,
    ) -> None:
        """Run the eval set against the configured corpus, print metrics, optionally gate."""
        from index.cli import for_collection

        settings = settings_of(ctx)
        ingest = collection is None or collection == settings.collection
        settings = for_collection(settings, collection)
        chosen = _mode(mode)
        # Piped output (CI logs, files) gets a width that fits the metrics table.
        console = Console() if sys.stdout.isatty() else Console(width=200)
        err = Console(stderr=True)
        data_dir = settings.data_dir
        if squad is not None:
            _squad(settings, squad, chosen, limit, seed, predictions, json_out, report_out, err)
            return

        if (
            update_baseline
            and set_path.resolve() != DEFAULT_SET.resolve()
            and baseline.resolve() == gates.BASELINE.resolve()
        ):
            # The committed baseline belongs to the default set; keep other sets' apart.
            raise typer.BadParameter(
                "give --baseline FILE to record a baseline for another eval set",
                param_hint="--update-baseline",
            )
        summary = run_set(settings, set_path, chosen, err, ingest=ingest)
        if update_baseline:
            report.write_json(baseline, summary)
        verdict = None
        if gate:
            verdict = gates.check(
                summary, gates.load_thresholds(thresholds), gates.load_baseline(baseline)
            )
        report.print_summary(summary, console)
        json_out = json_out or data_dir / "eval" / "report.json"
        report_out = report_out or data_dir / "eval" / "report.md"
        report.write_json(json_out, summary)
        report.write_text(report_out, report.markdown(summary, verdict))
        console.print(f"reports: {json_out}, {report_out}", highlight=False)
        if update_baseline:
            console.print(f"baseline recorded in {baseline}", highlight=False)
        if verdict is not None:
            report.print_verdict(verdict, console)
            if not verdict.passed:
                raise typer.Exit(1)


def _squad(
    settings: Settings,
    path: Path,
    mode: Mode | None,
    limit: int | None,
    seed: int,
    predictions: Path | None,
    json_out: Path | None,
    report_out: Path | None,
    err: Console,
) -> None:
    from evals import benchmark

    console = Console() if sys.stdout.isatty() else Console(width=200)
    with _progress(err) as bar:
        task = bar.add_task("ingesting SQuAD paragraphs", total=None)

        def ingested(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def asked(done: int, total: int) -> None:
            bar.update(task, description="asking", completed=done, total=total)
            if not err.is_terminal and (done % 100 == 0 or done == total):
                # A background run (nohup) has no live bar: leave a trace in its log.
                err.print(f"asked {done}/{total}", highlight=False)

        results = benchmark.run(
            _qa,
            settings,
            path,
            limit=limit,
            seed=seed,
            mode=mode,
            on_ingest=ingested,
            on_item=asked,
        )
    md = benchmark.markdown(results)
    console.print(md, highlight=False, markup=False)
    out_dir = settings.data_dir / "eval"
    report.write_json(json_out or out_dir / "squad.json", results)
    report.write_text(report_out or out_dir / "squad.md", md)
    if predictions is not None:
        predictions.parent.mkdir(parents=True, exist_ok=True)
        predictions.write_text(json.dumps(benchmark.predictions(results), indent=1) + "\n")
        console.print(f"predictions: {predictions}", highlight=False)

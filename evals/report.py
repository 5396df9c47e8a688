"""Rendering a run: a rich table for the terminal, Markdown and JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from evals.gate import Verdict

# (metric key, column title) shown per category.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("items", "n"),
    ("retrieval.hit@1", "hit@1"),
    ("retrieval.hit@5", "hit@5"),
    ("retrieval.mrr", "MRR"),
    ("answer.containment", "contain"),
    ("answer.exact_match", "EM"),
    ("answer.f1", "F1"),
    ("citations.precision", "cite P"),
    ("citations.recall", "cite R"),
    ("faithfulness", "faithful"),
    ("verifier.removed_sentences", "removed"),
    ("citations.outside_collection", "cite outside"),
    ("abstention.rate_unanswerable", "abstain (unans)"),
    ("abstention.false_rate_answerable", "abstain (ans)"),
    ("score", "score"),
    ("latency.median_ms", "p50 ms"),
    ("latency.p95_ms", "p95 ms"),
)


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}"
    return str(value)


def fmt_metric(key: str, value: Any) -> str:
    if key.endswith("_ms") and isinstance(value, float):
        return f"{value:.0f}"
    return fmt(value)


def _rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [*summary["categories"].items(), ("overall", summary["overall"])]


def failure_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in summary["items"] if i["score"] < 1]


def _got(item: dict[str, Any]) -> str:
    if item["error"]:
        return str(item["error"])
    if item["abstained"]:
        return f"(abstained: {item.get('reason') or 'no reason given'})"
    return str(item["got"])


def _cites(item: dict[str, Any]) -> str:
    return ", ".join(f"[{c['n']}] {c['source']} ({c['support']:.2f})" for c in item["citations"])


def print_summary(summary: dict[str, Any], console: Console, *, max_failures: int = 40) -> None:
    table = Table(title=f"groundqa eval: {summary['meta']['set']}", show_lines=False)
    table.add_column("category")
    for _, title in COLUMNS:
        table.add_column(title, justify="right")
    for name, metrics in _rows(summary):
        style = "bold" if name == "overall" else None
        table.add_row(name, *(fmt_metric(k, metrics.get(k)) for k, _ in COLUMNS), style=style)
    console.print(table)
    fails = failure_rows(summary)
    if not fails:
        return
    ft = Table(title=f"failures ({len(fails)})", show_lines=True)
    for col in ("id", "outcome", "question", "expected", "got", "citations"):
        ft.add_column(col, overflow="fold")
    for item in fails[:max_failures]:
        ft.add_row(
            item["id"],
            item["outcome"],
            item["question"],
            item["expected"],
            _got(item)[:300],
            _cites(item),
        )
    console.print(ft)
    if len(fails) > max_failures:
        console.print(f"... and {len(fails) - max_failures} more (see the Markdown report)")


def print_verdict(verdict: Verdict, console: Console) -> None:
    for flip in verdict.flips:
        mark = "[red]worse[/red]" if flip.worse else "[green]better/changed[/green]"
        console.print(f"flipped: {flip} {mark}", highlight=False)
    if verdict.passed:
        console.print("[green]gate passed[/green]")
        return
    console.print(f"[red]gate FAILED[/red] ({len(verdict.failures)} regressed metric(s)):")
    for f in verdict.failures:
        console.print(f"  - {f}", highlight=False, markup=False)


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(summary: dict[str, Any], verdict: Verdict | None = None) -> str:
    meta = summary["meta"]
    lines = [
        "# groundqa eval report",
        "",
        f"- set: `{meta['set']}` ({meta['items']} items, sha256 `{meta['set_sha256'][:12]}`)",
        f"- mode: {meta['mode']}; commit: `{meta.get('commit') or 'unknown'}`; "
        f"date: {meta['date']}",
        f"- corpus: `{meta['corpus_dir']}`, collection `{meta['collection']}`",
        "",
        "| category | " + " | ".join(t for _, t in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name, metrics in _rows(summary):
        cells = [fmt_metric(k, metrics.get(k)) for k, _ in COLUMNS]
        label = f"**{name}**" if name == "overall" else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if verdict is not None:
        lines += ["", "## Gate", "", "passed" if verdict.passed else "**FAILED**", ""]
        lines += [f"- {_md_cell(f)}" for f in verdict.failures]
        if verdict.flips:
            lines += ["", "Flipped items:", ""]
            lines += [f"- {f}{' (worse)' if f.worse else ''}" for f in verdict.flips]
    fails = failure_rows(summary)
    lines += ["", f"## Failures ({len(fails)})", ""]
    if fails:
        lines += [
            "| id | category | outcome | question | expected | got | citations |",
            "|---|---|---|---|---|---|---|",
        ]
        for i in fails:
            got = _got(i)
            row = [i["id"], i["category"], i["outcome"], i["question"], i["expected"]]
            row += [got, _cites(i)]
            lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    return "\n".join(lines) + "\n"


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")

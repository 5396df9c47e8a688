"""The regression gate: absolute thresholds plus tolerances against a committed baseline."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.errors import ConfigError

THRESHOLDS = Path(__file__).with_name("thresholds.toml")
BASELINE = Path(__file__).with_name("baseline.json")

# Everything else is better when higher.
LOWER_IS_BETTER = frozenset(
    {"abstention.false_rate_answerable", "errors", "latency.median_ms", "latency.p95_ms"}
)
RIGHT = frozenset({"correct"})  # plus "abstained" on unanswerable items


@dataclass(frozen=True, slots=True)
class Flip:
    id: str
    category: str
    before: str
    after: str
    worse: bool

    def __str__(self) -> str:
        return f"{self.id} ({self.category}): {self.before} -> {self.after}"


@dataclass(slots=True)
class Verdict:
    failures: list[str] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def load_thresholds(path: Path = THRESHOLDS) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read thresholds {path}: {exc}") from exc


def load_baseline(path: Path = BASELINE) -> dict[str, Any] | None:
    if not Path(path).exists():
        return None
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read baseline {path}: {exc}") from exc
    return data


def _right(item: dict[str, Any]) -> bool:
    return item["outcome"] == "correct" or (
        not item["answerable"] and item["outcome"] == "abstained"
    )


def flips(before: dict[str, Any], after: dict[str, Any]) -> list[Flip]:
    """Items whose outcome changed between two runs; ``worse`` when a right outcome was lost."""
    old = {i["id"]: i for i in before.get("items", [])}
    out: list[Flip] = []
    for item in after.get("items", []):
        prev = old.get(item["id"])
        if prev is None or prev["outcome"] == item["outcome"]:
            continue
        worse = (_right(prev) and not _right(item)) or (
            prev["outcome"] == "abstained" and item["outcome"] == "wrong"
        )
        out.append(Flip(item["id"], item["category"], prev["outcome"], item["outcome"], worse))
    return out


def _fmt(v: float) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _bounds(
    scope: str, metrics: dict[str, Any], table: dict[str, Any], failures: list[str]
) -> None:
    for key, bound in table.get("min", {}).items():
        value = metrics.get(key)
        if value is None:
            failures.append(f"{scope}{key}: not measured (minimum {bound})")
        elif value < bound:
            failures.append(f"{scope}{key} = {_fmt(value)} is below the minimum {bound}")
    for key, bound in table.get("max", {}).items():
        value = metrics.get(key)
        if value is None:
            failures.append(f"{scope}{key}: not measured (maximum {bound})")
        elif value > bound:
            failures.append(f"{scope}{key} = {_fmt(value)} is above the maximum {bound}")


def check(
    summary: dict[str, Any], thresholds: dict[str, Any], baseline: dict[str, Any] | None
) -> Verdict:
    """Compare a run's summary (``runner.summarize`` plus ``meta``) with thresholds and baseline."""
    verdict = Verdict()
    _bounds("", summary["overall"], thresholds, verdict.failures)
    for name, table in thresholds.get("categories", {}).items():
        metrics = summary["categories"].get(name)
        if metrics is None:
            verdict.failures.append(f"category {name!r} has no items in this eval set")
            continue
        _bounds(f"[{name}] ", metrics, table, verdict.failures)

    tolerances: dict[str, float] = thresholds.get("tolerance", {})
    if baseline is None:
        if tolerances:
            verdict.failures.append(
                "no baseline: record one with `groundqa eval --update-baseline`"
            )
        return verdict
    for key in ("set_sha256", "mode"):
        mine, theirs = summary["meta"].get(key), baseline.get("meta", {}).get(key)
        if mine != theirs:
            verdict.failures.append(
                f"baseline was recorded with {key}={theirs!r}, this run has {mine!r}; "
                "re-record it with `groundqa eval --update-baseline` if the change is deliberate"
            )
            return verdict
    for key, tol in tolerances.items():
        now, then = summary["overall"].get(key), baseline["overall"].get(key)
        if then is None:
            continue
        if now is None:
            verdict.failures.append(f"{key}: not measured (baseline {_fmt(then)})")
            continue
        drop = now - then if key in LOWER_IS_BETTER else then - now
        if drop > tol:
            verdict.failures.append(
                f"{key} = {_fmt(now)} is worse than the baseline {_fmt(then)} by more than {tol}"
            )
    verdict.flips = flips(baseline, summary)
    return verdict

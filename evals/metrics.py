"""Model-free answer, retrieval and abstention metrics.

``normalize_answer``, ``exact_match`` and ``f1`` follow the official SQuAD v2.0 evaluation
script exactly, so figures are comparable with published ones.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_MARKER = re.compile(r"\s*\[\d+\]")
_POSSESSIVE = re.compile(r"(?<=\w)['’]s\b")


def normalize_answer(s: str) -> str:
    """Lower-case, drop ASCII punctuation and articles, squeeze whitespace (official SQuAD)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def exact_match(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1(gold: str, prediction: str) -> float:
    gold_toks, pred_toks = _tokens(gold), _tokens(prediction)
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    same = sum((Counter(gold_toks) & Counter(pred_toks)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def gold_or_empty(answers: Iterable[str]) -> list[str]:
    """The official script's gold list: non-empty answers, or ``[""]`` for a no-answer question."""
    kept = [a for a in answers if normalize_answer(a)]
    return kept or [""]


def max_exact(answers: Iterable[str], prediction: str) -> int:
    return max(exact_match(g, prediction) for g in gold_or_empty(answers))


def max_f1(answers: Iterable[str], prediction: str) -> float:
    return max(f1(g, prediction) for g in gold_or_empty(answers))


def strip_markers(text: str) -> str:
    """Answer text without its ``[n]`` citation markers."""
    return " ".join(_MARKER.sub("", text).split())


def _containment_tokens(s: str) -> list[str]:
    # Beyond SQuAD's ASCII-only rule: typographic quotes and dashes are punctuation too, and a
    # possessive must not hide its noun ("Russia’s" contains "Russia").
    s = _POSSESSIVE.sub("", s)
    s = "".join(" " if ord(ch) > 127 and unicodedata.category(ch)[0] == "P" else ch for ch in s)
    return _tokens(s)


def _has_run(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == list(needle) for i in range(len(haystack) - n + 1))


def contains(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` as a whole run of normalised tokens."""
    return _has_run(_containment_tokens(text), _containment_tokens(phrase))


def contains_any(text: str, phrases: Iterable[str]) -> bool:
    return any(contains(text, p) for p in phrases)


def contains_all(text: str, groups: Iterable[Iterable[str]]) -> bool:
    """Every group has at least one alternative in ``text`` (the list-answer rule)."""
    return all(contains_any(text, g) for g in groups)


def first_gold_rank(ranked_sources: Sequence[str], gold: Iterable[str]) -> int | None:
    """1-based rank of the first retrieved item from a gold source, or None."""
    wanted = set(gold)
    for rank, source in enumerate(ranked_sources, 1):
        if source in wanted:
            return rank
    return None


def hit_at_k(rank: int | None, k: int) -> float:
    return float(rank is not None and rank <= k)


def reciprocal_rank(rank: int | None) -> float:
    return 0.0 if rank is None else 1.0 / rank


def outcome(answerable: bool, abstained: bool, correct: bool) -> str:
    """``correct``/``wrong``/``abstained``; unanswerable: ``abstained``/``answered``."""
    if abstained:
        return "abstained"
    if not answerable:
        return "answered"
    return "correct" if correct else "wrong"


def score(answerable: bool, abstained: bool, correct: bool) -> int:
    """+1 a right outcome (right answer, or abstaining when there is none), 0 abstaining when
    there is one, -1 any wrong answer."""
    if abstained:
        return 1 if not answerable else 0
    return 1 if answerable and correct else -1


def mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return sum(vals) / len(vals) if vals else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), ``q`` in [0, 100]."""
    vals = sorted(values)
    if not vals:
        return None
    pos = (len(vals) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)

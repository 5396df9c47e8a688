"""Step 1: turn a follow-up into a standalone question (only when there is history), and
drop a question's references to the corpus itself.

Without an LLM, :class:`HeuristicCondenser` detects follow-ups (pronouns, "that", ellipsis
such as "And what did Russia want?", questions too short to stand alone) and carries the
names and key terms of the recent turns into the question, which is what retrieval needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from service import text as tx
from service.result import ABSTAIN_ANSWER, Turn

_REFERRING = re.compile(
    r"\b(?:it|its|it's|they|them|their|theirs|he|him|his|she|her|hers|this|that|these|those|"
    r"there|then|such|the same|the former|the latter|both|either|neither|one)\b",
    re.IGNORECASE,
)
_ELLIPTIC_START = re.compile(
    r"^\s*(?:and|but|also|so|or|then|what about|how about|and what about|why|why not|how come|"
    r"what else|anything else|any other|more|same)\b",
    re.IGNORECASE,
)
MAX_CARRIED = 6

# "... named in the sources?", "According to the documents, ...": words that point at the
# corpus name no topic, yet they pull the question's embedding away from every passage. The
# issue's example of a needless refusal, "Which Quds Force commander is named in the
# sources?", scored 0.43 with them and 0.57 without. Only a generic reference that closes its
# clause goes: "in the Syrian Observer article" names a source, and in "errors in the text of
# the treaty" the text is the topic. No question of the SQuAD 2.0 dev split has one.
_CORPUS_REFERENCE = re.compile(
    r",?\s*\b(?:according to|in|from|by|across|within|based on)\s+"
    r"(?:the|these|those|this|your|our|my)\s+(?:(?:provided|given|available|indexed|above)\s+)?"
    r"(?:sources?|documents?|docs|texts?|articles?|coverage|corpus|passages?|materials?|files?"
    r"|context|collection|paragraphs?)\b(?=\s*(?:[?.!,;]|$))",
    re.IGNORECASE,
)


def without_corpus_references(question: str) -> str:
    """``question`` without generic references to the corpus ("in the sources"), unless
    nothing would be left to ask."""
    out = _CORPUS_REFERENCE.sub("", question).strip()
    out = re.sub(r"^[,;]\s*", "", out)
    if not tx.content_stems(out):
        return question
    return out[:1].upper() + out[1:] if question[:1].isupper() else out


def is_follow_up(question: str) -> bool:
    """Whether ``question`` leans on earlier turns to be understood."""
    if _ELLIPTIC_START.search(question) or _REFERRING.search(question):
        return True
    return len(tx.content_stems(question)) <= 1


def _names(text: str) -> list[str]:
    out = []
    for s, e in tx.candidate_spans(text, "entity"):
        name = text[s:e].strip()
        name = re.sub(r"['’]s$", "", name)
        if name and name.lower() not in tx.STOPWORDS:
            out.append(name)
    return out


def carried_terms(question: str, history: Sequence[Turn]) -> list[str]:
    """Names, then key words, of the latest turns that the question does not already mention."""
    have = set(tx.content_stems(question))
    have_names = [w for i, (w, _, _) in enumerate(tx.words(question)) if w[:1].isupper() and i > 0]
    names: list[str] = []
    keywords: list[str] = []
    replied: list[str] = []
    # The latest user turn first: what the user asked about is what "it" refers to; the
    # assistant's reply contributes names only, after the user's words.
    for turn in reversed(history):
        text = tx.strip_citations(turn.content)
        if turn.role == "assistant":
            if text.strip() != ABSTAIN_ANSWER and not names:
                replied.extend(_names(text)[:2])
            continue
        names.extend(_names(text))
        for w, _, _ in tx.words(text):
            lw = w.lower()
            if lw in tx.STOPWORDS or len(lw) < 3 or w[:1].isupper():
                continue
            keywords.append(w)
        if len(names) + len(keywords) >= MAX_CARRIED:
            break
    if have_names and not _REFERRING.search(question) and names:
        # "And what did Russia want?": the new name replaces the previous subject (its first name).
        names = names[1:]
        replied = []
    out: list[str] = []
    seen = set(have)
    for term in [*names, *keywords, *replied]:
        stems = tx.content_stems(term)
        if not stems or all(s in seen for s in stems):
            continue
        if term[:1].isupper() and any(tx.entity_match(term, h) for h in have_names):
            continue
        seen.update(stems)
        out.append(term)
        if len(out) >= MAX_CARRIED:
            break
    return out


class HeuristicCondenser:
    """The model-free :class:`~service.protocols.Condenser`."""

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        question = question.strip()
        if not history or not is_follow_up(question):
            return question
        terms = carried_terms(question, history)
        if not terms:
            return question
        body = question.rstrip(" ?.!")
        body = re.sub(r"^(?:and|but|also|so|or|then)\s+", "", body, flags=re.IGNORECASE)
        body = body[:1].upper() + body[1:]
        return f"{body} ({', '.join(terms)})?"

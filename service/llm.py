"""The LLM backend: any OpenAI-compatible chat endpoint, driven through LangChain.

``GenerativeDrafter`` writes a cited draft from numbered passages, ``LLMCondenser`` turns a
follow-up into a standalone question, ``llm_health`` probes the endpoint. Every endpoint
failure surfaces as :class:`index.errors.ModelUnavailable`; nothing connects at import.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from index.errors import ModelUnavailable
from service.result import ABSTAIN_ANSWER, Passage, Turn

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from service.settings import Settings

log = logging.getLogger(__name__)

# Local servers (llama.cpp, vLLM, Ollama) ignore the key, but the OpenAI client insists on one.
_NO_KEY = "not-needed"
# Retries multiply the wait behind a dead endpoint; one covers a dropped keep-alive connection.
_MAX_RETRIES = 1
# The condense prompt only needs the gist of the conversation, not every answer in full.
_HISTORY_TURNS = 6
_TURN_CHARS = 600
_CONDENSE_TOKENS = 96

DRAFT_SYSTEM = """\
You answer questions using ONLY the numbered sources below. Never use outside knowledge.
Rules:
- Every sentence of your answer must end with the number of the source it comes from, \
like [1] or [2][3].
- Copy names, numbers and dates exactly as the sources write them; never invent a figure.
- If the sources do not contain the answer, reply exactly with this sentence and nothing \
else: {abstain}
- Be brief: at most three sentences.

Sources:
{context}"""

CONDENSE_SYSTEM = """\
Rewrite the last question of the conversation as a standalone question. Replace pronouns \
and vague words with the names and topics they refer to in the conversation. Do not answer \
the question. Output only the question."""

CONDENSE_HUMAN = "{chat_history}\nHuman: {question}\n\nStandalone question:"


def format_passages(passages: Sequence[Passage], budget_chars: int) -> str:
    """Number passages ``[1]..[n]`` in order, dropping the tail once ``budget_chars`` is spent.

    Dropping only from the tail keeps ``[n]`` pointing at ``passages[n - 1]``.
    """
    blocks: list[str] = []
    used = 0
    for n, p in enumerate(passages, start=1):
        text = " ".join(p.text.split())
        block = f"[{n}] ({p.title}) {text}" if p.title else f"[{n}] {text}"
        if blocks and used + len(block) > budget_chars:
            break
        # The first passage always goes in, trimmed if it alone exceeds the budget.
        block = block[:budget_chars]
        blocks.append(block)
        used += len(block) + 2
    return "\n\n".join(blocks)


def format_history(history: Sequence[Turn]) -> str:
    lines = []
    for turn in list(history)[-_HISTORY_TURNS:]:
        content = " ".join(turn.content.split())
        if len(content) > _TURN_CHARS:
            content = content[:_TURN_CHARS] + " ..."
        lines.append(f"{'Human' if turn.role == 'user' else 'Assistant'}: {content}")
    return "\n".join(lines)


def _chat_model(settings: Settings, max_tokens: int | None = None) -> Any:
    if not settings.llm_base_url:
        raise ModelUnavailable("no LLM endpoint configured; set GROUNDQA_LLM_BASE_URL")
    try:
        from langchain_openai import ChatOpenAI
        from langchain_openai.chat_models.base import BaseChatOpenAI
    except ImportError as exc:
        raise ModelUnavailable(
            "the generative mode needs langchain-openai: pip install 'langchain-openai>=1,<2'"
        ) from exc
    # ChatOpenAI sends the cap as `max_completion_tokens`, which OpenAI wants but llama.cpp,
    # older vLLM and other compatible servers ignore (they generate until the context is full);
    # the base class sends the `max_tokens` they all understand.
    host = httpx.URL(settings.llm_base_url).host
    cls = ChatOpenAI if host == "api.openai.com" else BaseChatOpenAI
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else _NO_KEY
    params: dict[str, Any] = {
        "base_url": settings.llm_base_url,
        "api_key": SecretStr(key),
        "model": settings.llm_model,
        "temperature": settings.llm_temperature,
        "timeout": settings.llm_timeout_s,
        "max_tokens": min(settings.llm_max_tokens, max_tokens or settings.llm_max_tokens),
        "max_retries": _MAX_RETRIES,
    }
    return cls(**params)


def _unavailable(exc: Exception, settings: Settings, *, midway: bool = False) -> ModelUnavailable:
    """Translate an OpenAI-client failure into the one error the API maps to 503."""
    import openai

    where = f"LLM endpoint {settings.llm_base_url}"
    if midway and not isinstance(exc, openai.APIStatusError):
        msg = f"{where} broke off mid-answer ({_root_cause(exc)})"
    elif isinstance(exc, openai.APITimeoutError):
        msg = f"{where} did not answer within {settings.llm_timeout_s:g}s"
    elif isinstance(exc, openai.APIConnectionError):
        msg = f"{where} cannot be reached ({_root_cause(exc)})"
    elif isinstance(exc, openai.APIStatusError):
        detail = " ".join(str(exc.message).split())[:200]
        msg = f"{where} answered HTTP {exc.status_code}: {detail}"
    else:
        msg = f"{where} failed: {type(exc).__name__}: {_root_cause(exc)}"
    return ModelUnavailable(msg)


def _endpoint_errors() -> tuple[type[Exception], ...]:
    import openai

    # Transport errors can escape the OpenAI client mid-stream (a connection dropped while
    # reading); openai 3 reads through httpx2, older releases through httpx.
    errors: list[type[Exception]] = [openai.APIError, httpx.HTTPError]
    try:
        import httpx2

        errors.append(httpx2.HTTPError)
    except ImportError:
        pass
    return tuple(errors)


def _root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


# Where a sentence (or a line) of the draft is complete: end punctuation, or a citation marker.
_SENTENCE_END = re.compile(r"(?:[.!?][\"'”’)]*|\])\s+|\n")


def _complete(text: str) -> int:
    """Length of the prefix of ``text`` made of complete sentences."""
    last = 0
    for m in _SENTENCE_END.finditer(text):
        last = m.end()
    return last


class GenerativeDrafter:
    """Drafts a cited answer with an LLM; the verifier decides what of it survives.

    Deltas are whole sentences: a draft cut off by the token cap ends mid-sentence, and that
    fragment ("... an ally of President Bashar al-Ass") is dropped rather than verified.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._chain: Runnable[dict[str, Any], Any] | None = None

    def _runnable(self) -> Runnable[dict[str, Any], Any]:
        if self._chain is None:
            from langchain_core.prompts import ChatPromptTemplate

            prompt = ChatPromptTemplate.from_messages(
                [("system", DRAFT_SYSTEM), ("human", "{question}")]
            ).partial(abstain=ABSTAIN_ANSWER)
            # Message chunks rather than a StrOutputParser: the last chunk's finish_reason
            # tells whether the draft was cut off.
            self._chain = prompt | _chat_model(self._settings)
        return self._chain

    def draft(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        """Yield the draft sentence by sentence; ``ModelUnavailable`` if the endpoint fails."""
        if not passages:
            yield ABSTAIN_ANSWER
            return
        chain = self._runnable()
        context = format_passages(passages, self._settings.llm_context_chars)
        pending = ""
        finish: str | None = None
        received = False
        try:
            for chunk in chain.stream({"question": question, "context": context}):
                received = True
                pending += chunk.text
                finish = chunk.response_metadata.get("finish_reason") or finish
                cut = _complete(pending)
                if cut:
                    yield pending[:cut]
                    pending = pending[cut:]
        except _endpoint_errors() as exc:
            raise _unavailable(exc, self._settings, midway=received) from exc
        if finish == "length":
            log.debug(
                "draft hit the %d-token cap; dropped %r", self._settings.llm_max_tokens, pending
            )
        elif pending:
            yield pending


_PREFIX = re.compile(r"^\s*(standalone\s+question|question)\s*:\s*", re.IGNORECASE)


class LLMCondenser:
    """Rewrites a follow-up into a standalone question (called only when there is history)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._chain: Runnable[dict[str, Any], str] | None = None

    def _runnable(self) -> Runnable[dict[str, Any], str]:
        if self._chain is None:
            from langchain_core.output_parsers import StrOutputParser
            from langchain_core.prompts import ChatPromptTemplate

            prompt = ChatPromptTemplate.from_messages(
                [("system", CONDENSE_SYSTEM), ("human", CONDENSE_HUMAN)]
            )
            # A question needs few tokens; a low cap also stops a model that starts answering.
            model = _chat_model(self._settings, max_tokens=_CONDENSE_TOKENS)
            self._chain = prompt | model | StrOutputParser()
        return self._chain

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """The standalone question; the heuristic rewrite if the model's reply holds none."""
        if not history:
            return question
        chain = self._runnable()
        try:
            raw = chain.invoke({"question": question, "chat_history": format_history(history)})
        except _endpoint_errors() as exc:
            raise _unavailable(exc, self._settings) from exc
        standalone = clean_condensed(raw)
        if not standalone:
            # Small models often answer instead of rewriting; the model-free rewrite still
            # carries the history's names into the query.
            from service.condense import HeuristicCondenser

            log.info("condense: no question in the LLM's reply %r; using the heuristic", raw[:200])
            return HeuristicCondenser().condense(question, history)
        return standalone


def clean_condensed(raw: str) -> str:
    """The first line of the model's reply that is a question, without a label or quotes.

    Small models often answer instead of rewriting; an answer must not become the retrieval
    query, so a reply without a question yields "".
    """
    for line in raw.strip().splitlines():
        line = _PREFIX.sub("", line).strip().strip("\"'“”").strip()
        if line.endswith("?"):
            return line
    return ""


def llm_health(settings: Settings) -> None:
    """Raise ``ModelUnavailable`` unless ``GET {llm_base_url}/models`` answers 2xx."""
    if not settings.llm_base_url:
        raise ModelUnavailable("no LLM endpoint configured; set GROUNDQA_LLM_BASE_URL")
    url = f"{settings.llm_base_url}/models"
    headers = {}
    if settings.llm_api_key:
        headers["Authorization"] = f"Bearer {settings.llm_api_key.get_secret_value()}"
    try:
        resp = httpx.get(url, headers=headers, timeout=min(5.0, settings.llm_timeout_s))
    except httpx.HTTPError as exc:
        raise ModelUnavailable(f"LLM endpoint {url} cannot be reached ({exc})") from exc
    if resp.status_code >= 300:
        raise ModelUnavailable(f"LLM endpoint {url} answered HTTP {resp.status_code}")

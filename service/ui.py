"""The Gradio chat UI, mounted at /ui; it calls the same QA and Corpus objects as the API.

Citations: each ``[n]`` in an answer is a link to a ``<details>`` element holding the cited
passage with the quote highlighted; a small document-level script (``HEAD``) opens it on
click. All document and answer text is HTML-escaped here before it reaches the page.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from index.errors import GroundQAError
from index.loaders import SUFFIXES
from service.api.deps import check_question
from service.api.errors import ApiError
from service.api.schemas import ScopeFilter
from service.api.security import RateLimiter
from service.result import Answer, Citation, Passage, Turn

if TYPE_CHECKING:
    from service.api.deps import Services

log = logging.getLogger("groundqa.ui")

_CONTEXT_CHARS = 280
_CITE = re.compile(r"\[(\d{1,3})\]")

HEAD = """
<script>
(() => {
  if (window.__groundqaCitations) return;
  window.__groundqaCitations = true;
  // Capture phase: runs before the chat's own link handling opens a new tab.
  document.addEventListener("click", (ev) => {
    const link = ev.target instanceof Element ? ev.target.closest("a.gqa-cite") : null;
    if (!link) return;
    ev.preventDefault();
    ev.stopPropagation();
    const key = (link.getAttribute("href") || "").replace(/^#/, "");
    const scope = link.closest(".gqa-answer") || document;
    // The chat's sanitizer keeps ids (not data attributes); ids are unique per answer.
    const target = scope.querySelector(`details[id="${key}"]`) || document.getElementById(key);
    if (!target) return;
    target.open = true;
    target.classList.add("gqa-active");
    setTimeout(() => target.classList.remove("gqa-active"), 1600);
    target.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }, true);
})();
</script>
"""

CSS = """
.gqa-answer .gqa-label, .gqa-abstain .gqa-label {
  display: inline-block; font-size: 0.75em; font-weight: 600; letter-spacing: 0.03em;
  text-transform: uppercase; padding: 1px 8px; border-radius: 10px; margin-bottom: 6px;
}
.gqa-answer .gqa-label { background: #dcfce7; color: #166534; }
.gqa-abstain { border-left: 4px solid #f59e0b; padding-left: 10px; }
.gqa-abstain .gqa-label { background: #fef3c7; color: #92400e; }
.gqa-abstain .gqa-text { font-style: italic; }
.gqa-reason { color: #6b7280; font-size: 0.85em; }
.gqa-short { font-size: 1.2em; font-weight: 600; margin: 0.2em 0 0.4em; }
a.gqa-cite {
  font-weight: 600; text-decoration: none; cursor: pointer; padding: 0 1px;
  color: var(--color-accent, #2563eb);
}
a.gqa-cite:hover { text-decoration: underline; }
.gqa-sources { margin-top: 8px; }
.gqa-sources-h { font-size: 0.8em; font-weight: 600; color: #6b7280; margin: 6px 0 2px; }
details.gqa-passage {
  border: 1px solid #e5e7eb; border-radius: 6px; padding: 4px 8px; margin: 4px 0;
}
details.gqa-passage summary { cursor: pointer; }
details.gqa-passage.gqa-active { box-shadow: 0 0 0 3px #93c5fd; }
.gqa-loc { color: #6b7280; font-size: 0.8em; }
.gqa-context { margin-top: 6px; line-height: 1.5; }
.gqa-context mark { background: #fde68a; padding: 0 1px; }
.gqa-error { color: #b91c1c; }
.gqa-where { color: #6b7280; font-size: 0.8em; margin: 0 0 4px; }
"""


def _esc(text: str) -> str:
    # No raw newlines: the chat renders markdown, and a blank line would end the HTML block.
    return html.escape(text, quote=True).replace("\r", "").replace("\n", "<br>")


def _loc(source: str, start: int, end: int, page: int | None) -> str:
    page_part = f" · page {page}" if page is not None else ""
    return f"{_esc(source)} · chars {start}–{end}{page_part}"


class Renderer:
    """Turns an Answer into the chat message's HTML, reading context from the index."""

    def __init__(self, document_text: Any) -> None:
        self._document_text = document_text

    def _context(self, source: str, start: int, end: int, quote: str) -> str:
        try:
            doc = self._document_text(source)
        except (KeyError, GroundQAError):
            doc = None
        if not doc or doc[start:end] != quote:
            return f"<mark>{_esc(quote)}</mark>"
        lo = max(0, start - _CONTEXT_CHARS)
        hi = min(len(doc), end + _CONTEXT_CHARS)
        # Cut the context at whitespace so it does not start or end mid-word.
        if lo > 0:
            lo = doc.find(" ", lo, start) + 1 or lo
        if hi < len(doc):
            hi = doc.rfind(" ", end, hi) if doc.rfind(" ", end, hi) > end else hi
        before = ("…" if lo > 0 else "") + doc[lo:start]
        after = doc[end:hi] + ("…" if hi < len(doc) else "")
        return f"{_esc(before)}<mark>{_esc(doc[start:end])}</mark>{_esc(after)}"

    def _citation(self, uid: str, c: Citation) -> str:
        key = f"gqa-{uid}-{c.n}"
        return (
            f'<details class="gqa-passage" id="{key}">'
            f'<summary><b>[{c.n}]</b> {_esc(c.title)} <span class="gqa-loc">'
            f"{_loc(c.source, c.start, c.end, c.page)}</span></summary>"
            f'<div class="gqa-context">{self._context(c.source, c.start, c.end, c.quote)}</div>'
            "</details>"
        )

    @staticmethod
    def _passage(p: Passage) -> str:
        return (
            '<details class="gqa-passage">'
            f"<summary>{_esc(p.title)} "
            f'<span class="gqa-loc">{_loc(p.source, p.start, p.end, p.page)}</span></summary>'
            f'<div class="gqa-context">{_esc(p.text)}</div></details>'
        )

    @staticmethod
    def _text(uid: str, text: str, cited: set[int]) -> str:
        def link(m: re.Match[str]) -> str:
            n = int(m.group(1))
            if n not in cited:
                return m.group(0)
            return f'<a class="gqa-cite" href="#gqa-{uid}-{n}" title="Show source [{n}]">[{n}]</a>'

        return _CITE.sub(link, _esc(text))

    @staticmethod
    def _where(answer: Answer) -> str:
        """Which collection was asked and which documents the question was limited to."""
        if answer.collection is None and answer.scope is None:
            return ""
        parts = [f"Collection: <b>{_esc(answer.collection or '')}</b>"]
        if answer.scope is not None:
            shown = ", ".join(_esc(s) for s in answer.scope[:5])
            more = f" and {len(answer.scope) - 5} more" if len(answer.scope) > 5 else ""
            parts.append(f"limited to: {shown or 'no documents'}{more}")
        else:
            parts.append("all documents")
        return f'<div class="gqa-where">{" · ".join(parts)}</div>'

    def render(self, answer: Answer) -> str:
        uid = uuid.uuid4().hex[:10]
        where = self._where(answer)
        if answer.abstained:
            related = "".join(self._passage(p) for p in answer.related)
            reason = (
                f'<div class="gqa-reason">Reason: {_esc(answer.reason.replace("_", " "))}</div>'
                if answer.reason
                else ""
            )
            related_block = (
                '<div class="gqa-sources"><div class="gqa-sources-h">Related passages</div>'
                f"{related}</div>"
                if related
                else ""
            )
            return (
                '<div class="gqa-abstain"><span class="gqa-label">No answer in the sources</span>'
                f'{where}<div class="gqa-text">{_esc(answer.answer)}</div>{reason}{related_block}'
                "</div>"
            )
        citations = sorted(answer.citations, key=lambda c: c.n)
        sources = "".join(self._citation(uid, c) for c in citations)
        sources_block = (
            f'<div class="gqa-sources"><div class="gqa-sources-h">Sources</div>{sources}</div>'
            if sources
            else ""
        )
        label = f"Answer · confidence {answer.confidence:.2f}"
        text = self._text(uid, answer.answer, {c.n for c in citations})
        # The reader's span first, the quoted sentence that holds it under it.
        short = (
            f'<div class="gqa-short">{_esc(answer.short_answer)}</div>'
            if answer.short_answer
            else ""
        )
        return (
            f'<div class="gqa-answer"><span class="gqa-label">{label}</span>{where}'
            f'{short}<div class="gqa-text">{text}</div>{sources_block}</div>'
        )


def _principal(request: gr.Request | None, keyed: bool) -> str:
    # The API's buckets: per client address without keys; per signed-in user with keys.
    if keyed and request is not None and request.username:
        return f"ui:{request.username}"
    host = request.client.host if request is not None and request.client else "unknown"
    return f"ip:{host}"


class Logins:
    """Which API key each UI user name signed in with, so the UI applies that key's
    collections. A name stays bound to its first key for the process's life: signing in
    under a name already bound to another key is refused, so no one borrows a wider key."""

    def __init__(self, keys: Any) -> None:
        self._keys = keys
        self._bound: dict[str, str] = {}
        self._lock = threading.Lock()

    def check(self, user: str, password: str) -> bool:
        principal = self._keys.check(password)
        if principal is None:
            return False
        with self._lock:
            return self._bound.setdefault(user, principal) == principal

    def principal(self, request: gr.Request | None) -> str:
        if request is not None and request.username:
            bound = self._bound.get(request.username)
            if bound is not None:
                return bound
        return _principal(request, False)


def build(services: Services) -> gr.Blocks:
    """The Blocks app; mount it with the ``HEAD`` script and ``CSS`` (see service.app)."""
    settings = services.settings
    qa = services.qa
    catalog = services.catalog
    assert catalog is not None
    logins: Logins = services.extra.setdefault("ui_logins", Logins(services.keys))  # type: ignore[assignment]
    modes = ["extractive", "generative"] if settings.llm_base_url else ["extractive"]

    def corpus(collection: str | None, request: gr.Request | None) -> Any:
        assert catalog is not None
        return catalog.corpus(logins.principal(request), collection or None)

    def doc_rows(collection: str | None, request: gr.Request | None) -> list[list[Any]]:
        return [[s.title, s.source, s.chunks] for s in corpus(collection, request).documents()]

    def doc_choices(collection: str | None, request: gr.Request | None) -> list[tuple[str, str]]:
        docs = corpus(collection, request).documents()
        return [(f"{s.title} ({s.source})", s.id) for s in docs]

    def respond(
        message: str,
        messages: list[dict[str, Any]],
        turns: list[dict[str, str]],
        mode: str,
        top_k: float,
        collection: str | None,
        scope: list[str] | None,
        request: gr.Request,
    ) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, str]], str]]:
        question = (message or "").strip()
        wait = services.limiter.acquire(_principal(request, services.keys.enabled))
        if wait > 0:
            gr.Warning(f"Too many questions; retry in {RateLimiter.retry_after(wait)} s.")
            yield messages, turns, message
            return
        history = (
            [Turn.model_validate(t) for t in turns][-settings.max_history_turns :]
            if settings.max_history_turns
            else []
        )
        try:
            check_question(question, 0, settings)
        except ApiError as exc:
            gr.Warning(exc.message)
            yield messages, turns, message
            return
        messages = [
            *messages,
            {"role": "user", "content": _esc(question)},
            {"role": "assistant", "content": "…"},
        ]
        yield messages, turns, ""
        streamed = ""
        try:
            assert catalog is not None
            target = catalog.target(
                logins.principal(request),
                collection or None,
                ScopeFilter(documents=list(scope or [])),
            )
            renderer = Renderer(target.index.document_text)
            events = qa.stream(
                question,
                history,
                mode=mode,  # type: ignore[arg-type]
                top_k=int(top_k),
                index=target.index,
                sources=target.sources,
            )
            for event in events:
                if event.type == "delta" and event.delta:
                    streamed += event.delta
                    messages[-1] = {"role": "assistant", "content": _esc(streamed)}
                    yield messages, turns, ""
                elif event.type == "final" and event.result is not None:
                    answer = event.result
                    services.metrics.observe_answer(answer, "ui")
                    messages[-1] = {"role": "assistant", "content": renderer.render(answer)}
                    turns = [
                        *turns,
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": answer.answer},
                    ]
                    yield messages, turns, ""
        except GroundQAError as exc:
            log.warning("ui answer failed: %s", exc)
            messages[-1] = {
                "role": "assistant",
                "content": f'<span class="gqa-error">{_esc(str(exc))}</span>',
            }
            yield messages, turns, ""

    def upload(
        paths: list[str] | None, collection: str | None, request: gr.Request
    ) -> tuple[str, list[list[Any]], Any, None, Any]:
        rows = doc_rows(collection, request)
        if not paths:
            return "Choose files first.", rows, gr.update(), None, gr.update()
        try:
            with ExitStack() as stack:
                files = [(Path(p).name, stack.enter_context(Path(p).open("rb"))) for p in paths]
                report = corpus(collection, request).add(files)
        except ApiError as exc:
            return f"Upload refused: {exc.message}", rows, gr.update(), None, gr.update()
        except GroundQAError as exc:
            return f"Upload failed: {exc}", rows, gr.update(), None, gr.update()
        parts = [
            f"{len(v)} {k}"
            for k, v in (
                ("added", report.added),
                ("updated", report.updated),
                ("unchanged", report.unchanged),
            )
            if v
        ]
        skipped = "".join(f"\n- skipped {k}: {v}" for k, v in report.skipped.items())
        status = (
            f"Ingested: {', '.join(parts) or 'nothing'} "
            f"({report.chunks_embedded} chunks embedded).{skipped}"
        )
        choices = doc_choices(collection, request)
        return (
            status,
            doc_rows(collection, request),
            gr.update(choices=choices, value=None),
            None,
            gr.update(choices=choices),
        )

    def delete(
        doc_id: str | None, collection: str | None, request: gr.Request
    ) -> tuple[str, list[list[Any]], Any, Any]:
        if not doc_id:
            return (
                "Choose a document to delete.",
                doc_rows(collection, request),
                gr.update(),
                gr.update(),
            )
        try:
            info = corpus(collection, request).remove(doc_id)
            status = f"Deleted {info.source}."
        except (ApiError, GroundQAError) as exc:
            status = f"Delete failed: {getattr(exc, 'message', str(exc))}"
        choices = doc_choices(collection, request)
        return (
            status,
            doc_rows(collection, request),
            gr.update(choices=choices, value=None),
            gr.update(choices=choices, value=[]),
        )

    def refresh(collection: str | None, request: gr.Request) -> tuple[list[list[Any]], Any, Any]:
        """The documents of the picked collection: table, delete choices, scope choices."""
        try:
            choices = doc_choices(collection, request)
            return (
                doc_rows(collection, request),
                gr.update(choices=choices),
                gr.update(choices=choices),
            )
        except GroundQAError as exc:
            gr.Warning(f"Cannot list documents: {exc}")
            return [], gr.update(), gr.update()

    def switch(collection: str | None, request: gr.Request) -> tuple[list[list[Any]], Any, Any]:
        # Another collection: its documents, and a scope that starts empty.
        try:
            choices = doc_choices(collection, request)
            rows = doc_rows(collection, request)
        except GroundQAError as exc:
            gr.Warning(f"Cannot list documents: {exc}")
            choices, rows = [], []
        return (
            rows,
            gr.update(choices=choices, value=None),
            gr.update(choices=choices, value=[]),
        )

    def load(request: gr.Request) -> tuple[Any, list[list[Any]], Any, Any]:
        assert catalog is not None
        try:
            names = catalog.visible(logins.principal(request))
        except GroundQAError as exc:
            gr.Warning(f"Cannot list collections: {exc}")
            names = []
        first = catalog.default_name if catalog.default_name in names else next(iter(names), None)
        rows, pick, choices = refresh(first, request) if first else ([], gr.update(), gr.update())
        return gr.update(choices=names, value=first), rows, pick, choices

    with gr.Blocks(title="groundqa", analytics_enabled=False) as blocks:
        gr.Markdown(
            "## groundqa\nAnswers only from the indexed documents, with clickable citations."
        )
        turns = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Chat",
                    elem_id="gqa-chat",
                    height=560,
                    feedback_options=None,
                    line_breaks=False,
                    placeholder="Ask a question about the documents.",
                )
                with gr.Row():
                    box = gr.Textbox(
                        placeholder="Ask a question…",
                        show_label=False,
                        scale=5,
                        max_length=settings.max_question_chars,
                        elem_id="gqa-question",
                        submit_btn=False,
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="gqa-ask")
                clear = gr.Button("New conversation", size="sm")
            with gr.Column(scale=2):
                collection = gr.Dropdown(
                    label="Collection",
                    choices=[],
                    value=None,
                    elem_id="gqa-collection",
                    interactive=True,
                    info="The knowledge base questions are asked against.",
                )
                scope = gr.Dropdown(
                    label="Limit questions to these documents",
                    choices=[],
                    value=[],
                    multiselect=True,
                    elem_id="gqa-scope",
                    interactive=True,
                    info="Empty: the whole collection.",
                )
                with gr.Accordion("Settings", open=False):
                    mode = gr.Radio(
                        modes,
                        value=settings.mode if settings.mode in modes else modes[0],
                        label="Mode",
                        info=None if len(modes) > 1 else "generative needs GROUNDQA_LLM_BASE_URL",
                    )
                    top_k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Passages (top-k)")
                with gr.Accordion("Documents", open=True):
                    docs = gr.Dataframe(
                        headers=["title", "source", "chunks"],
                        datatype=["str", "str", "number"],
                        column_widths=["45%", "40%", "15%"],
                        interactive=False,
                        wrap=True,
                        elem_id="gqa-docs",
                    )
                    reload = gr.Button("Refresh", size="sm")
                    files = gr.File(
                        label="Add documents",
                        file_count="multiple",
                        file_types=sorted(SUFFIXES),
                        type="filepath",
                        elem_id="gqa-files",
                    )
                    add = gr.Button("Upload and ingest", size="sm", elem_id="gqa-upload")
                    doc_pick = gr.Dropdown(label="Delete a document", choices=[], value=None)
                    remove = gr.Button("Delete", size="sm", variant="stop")
                    status = gr.Markdown(elem_id="gqa-status")

        inputs = [box, chatbot, turns, mode, top_k, collection, scope]
        outputs = [chatbot, turns, box]
        box.submit(respond, inputs, outputs)
        send.click(respond, inputs, outputs)
        clear.click(lambda: ([], [], ""), None, outputs)
        add.click(upload, [files, collection], [status, docs, doc_pick, files, scope])
        remove.click(delete, [doc_pick, collection], [status, docs, doc_pick, scope])
        reload.click(refresh, [collection], [docs, doc_pick, scope])
        # A new collection starts a new conversation: earlier turns were about other documents.
        collection.input(switch, [collection], [docs, doc_pick, scope]).then(
            lambda: ([], []), None, [chatbot, turns]
        )
        blocks.load(load, None, [collection, docs, doc_pick, scope])
    return blocks


def theme() -> gr.themes.Base:
    return gr.themes.Soft()

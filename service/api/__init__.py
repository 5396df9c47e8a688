"""The HTTP API of ``groundqa serve`` (built by :func:`service.app.create_app`).

Decisions worth knowing:

- Authentication: with ``GROUNDQA_API_KEYS`` set, every route except ``/healthz`` and
  ``/readyz`` (including ``/docs``, ``/openapi.json`` and ``/metrics``) needs
  ``Authorization: Bearer <key>``; a failure is always the same 401 body. The UI at ``/ui``
  asks for a key as its login password, so it is no way around the keys.
- Rate limiting: a token bucket per API key (per client address without keys) of
  ``GROUNDQA_RATE_LIMIT_PER_MINUTE`` tokens, refilled continuously. It lives in the process,
  so each replica counts on its own; the probes and the UI are not limited.
- Limits: request bodies over ``max_body_bytes`` (uploads: ``max_upload_bytes`` per file,
  ``max_upload_files`` files) get 413, declared or streamed; questions over
  ``max_question_chars`` and ``/v1/ask`` histories over ``max_history_turns`` get 422
  (OpenAI-style chat clients resend whole conversations, so ``/v1/chat/completions`` keeps
  the latest turns instead).
- Uploads keep their own name inside ``corpus_dir``: a name with a directory part, a
  leading dot or an unusual character is refused (400), an unsupported type is 415, and an
  existing file of the same name is replaced (the upload is its new version).
- Errors are ``{"error": {"type", "message", "request_id"}}`` with the right status; 503s
  (Chroma down, model endpoint down, empty index) carry ``Retry-After``.
"""

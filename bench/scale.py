"""Scaling: groundqa at 1k, 10k, 100k chunks, against a plain LangChain pipeline, and under load.

Run: ``.venv/bin/python -m bench.scale [--sizes 1000,10000] [--load-seconds 60]
[--soak-minutes 10]``; writes ``bench/results/scale.json`` (and ``build/scale/`` for the data).

Corpora are SQuAD v1.1 training articles (``../shared/training/squad-train.json.gz``), one file
per article, added until the chunk count reaches the size; past its 18,896 paragraphs the
articles repeat with a marker line so every copy is new text. Each step runs in its own
process so that its peak RSS is its own:

- ingest: seconds, model tokens/s, peak RSS; re-ingest of the unchanged corpus; adding one
  article (the keyword-index update it triggers is reported by the index itself);
- index size on disk (Chroma, keyword index);
- serve: ``groundqa serve`` over HTTP, one client: answer p50/p95 (client side and the
  pipeline's ``timings.total``), with the reader on; peak RSS of the server;
- load: 1, 8 and 32 concurrent clients for ``--load-seconds`` each, distinct questions
  (SQuAD training questions of the ingested articles): throughput, p50/p95, errors;
- soak (``--soak-minutes``): 32 clients, RSS of the server sampled each minute;
- admission slots (``--compare-active``): 32 clients against servers computing 1, 2, 4
  answers at once, to choose the default;
- replica catch-up (``--replica-size`` chunks): two replicas on one ``chroma run`` server, a
  document uploaded to one, seconds until the other cites it;
- threads against processes (``--replica-load`` chunks): on one ``chroma run`` server, one
  server process with both cores' threads, then two one-thread replicas with the clients split
  across them; 1 and 32 clients each.

Baselines in the same run, on the same corpus and model:
(a) raw ``SentenceTransformer.encode`` fp32 over the same chunk texts (tokens/s);
(b) plain LangChain: ``Chroma`` dense retriever over the same chunks plus a stuff step
    (the top 4 passages joined; no LLM): its ingest tokens/s on the first 1,000 chunks and
    its answer p50/p95 at every size.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
SQUAD_TRAIN = ROOT.parent / "shared" / "training" / "squad-train.json.gz"
OUT = ROOT / "bench" / "results" / "scale.json"
WORK = ROOT / "build" / "scale"
BIN = Path(sys.executable).parent
COLLECTION = "groundqa"


def proc_rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A process's ``field`` of ``/proc/PID/status`` (resident set by default), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def proc_cpu_seconds(pid: int) -> float:
    """A process's user plus system CPU time so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- corpora -------------------------------------------------------------------------------


def build_corpus(size: int, corpus: Path) -> tuple[int, list[str], list[str]]:
    """Write articles into ``corpus`` until they hold ``size`` chunks; returns the chunk count,
    their questions (shuffled) and one article kept back for the add-one-document step."""
    from index.chunking import Chunker
    from index.loaders import parse
    from index.settings import IndexSettings

    settings = IndexSettings()
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    with gzip.open(SQUAD_TRAIN) as f:
        data = json.loads(f.read())["data"]
    if corpus.exists():
        shutil.rmtree(corpus)
    corpus.mkdir(parents=True)
    chunks, copy = 0, 0
    questions: list[str] = []
    texts: list[str] = []
    while chunks < size:
        for art in data:
            title = art["title"].replace("_", " ")
            marker = f" (copy {copy})" if copy else ""
            text = f"{title}{marker}\n\n" + "\n\n".join(p["context"] for p in art["paragraphs"])
            name = f"{copy:02d}-{art['title'][:60]}.txt"
            n = len(chunker.split(parse(text.encode(), name, "x")))
            (corpus / name).write_text(text, encoding="utf-8")
            texts.append(text)
            chunks += n
            for p in art["paragraphs"]:
                questions.extend(q["question"] for q in p["qas"])
            if chunks >= size:
                break
        copy += 1
    extra = data[-1]
    extra_text = "Held back\n\n" + "\n\n".join(p["context"] for p in extra["paragraphs"][:5])
    random.Random(0).shuffle(questions)
    return chunks, list(dict.fromkeys(questions)), [extra_text]


def chunk_texts(corpus: Path) -> list[str]:
    from index.chunking import Chunker
    from index.loaders import parse
    from index.settings import IndexSettings

    settings = IndexSettings()
    chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
    out: list[str] = []
    for path in sorted(corpus.glob("*.txt")):
        out.extend(c.text for c in chunker.split(parse(path.read_bytes(), path.name, "x")))
    return out


def token_count(texts: list[str]) -> int:
    from index.embedding import get_embedder
    from index.settings import IndexSettings

    emb = get_embedder(IndexSettings())
    tok = emb.tokenizer
    n = 0
    for i in range(0, len(texts), 1000):
        enc = tok(texts[i : i + 1000], truncation=True, max_length=emb.max_tokens)
        n += sum(len(ids) for ids in enc["input_ids"])
    return n


# --- child processes ---------------------------------------------------------------------


def _child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``python -m bench.scale --child ...`` and return the JSON line it prints."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--child", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_main(argv: list[str]) -> None:
    """In a child: ``ingest PATH`` or ``raw N`` (raw sentence-transformers over N chunks)."""
    from index.core import Index
    from index.settings import IndexSettings

    what = argv[0]
    out: dict[str, Any] = {}
    if what == "ingest":
        from index.malloc import fix_mmap_threshold

        settings = IndexSettings()
        fix_mmap_threshold(settings.ingest_mmap_threshold_kib)  # as `groundqa ingest` does
        t0 = time.perf_counter()
        report = Index(settings).ingest(Path(argv[1]))
        out = {
            "seconds": round(time.perf_counter() - t0, 2),
            "chunks_embedded": report.chunks_embedded,
            "chunks_total": report.chunks_total,
            "added": len(report.added),
            "unchanged": len(report.unchanged),
        }
    elif what == "raw":
        from sentence_transformers import SentenceTransformer

        from index.embedding import model_path

        texts = chunk_texts(Path(argv[1]))[: int(argv[2])]
        model = SentenceTransformer(str(model_path(IndexSettings().embedding_model)))
        model.encode(texts[:64], batch_size=64)
        t0 = time.perf_counter()
        model.encode(texts, batch_size=64, show_progress_bar=False)
        out = {"seconds": round(time.perf_counter() - t0, 2), "chunks": len(texts)}
        out["tokens"] = token_count(texts)
    elif what == "langchain":
        out = _langchain(Path(argv[1]), int(argv[2]), argv[3:])
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


def _langchain(data_dir: Path, ingest_chunks: int, questions: list[str]) -> dict[str, Any]:
    """The plain LangChain pipeline: ingest rate on a fresh store, then answers over ours."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_huggingface import HuggingFaceEmbeddings

    from index.embedding import model_path
    from index.settings import IndexSettings

    path = str(model_path(IndexSettings().embedding_model))
    emb = HuggingFaceEmbeddings(model_name=path, encode_kwargs={"normalize_embeddings": True})
    texts = chunk_texts(Path(os.environ["GROUNDQA_CORPUS_DIR"]))[:ingest_chunks]
    emb.embed_documents(texts[:32])
    fresh = data_dir.parent / "langchain-store"
    shutil.rmtree(fresh, ignore_errors=True)
    t0 = time.perf_counter()
    Chroma.from_texts(
        texts,
        emb,
        collection_name="langchain-baseline",
        persist_directory=str(fresh),
        client_settings=ChromaSettings(anonymized_telemetry=False),
    )
    ingest_s = time.perf_counter() - t0
    shutil.rmtree(fresh, ignore_errors=True)
    # Answers: the same chunks groundqa indexed (its physical collection), dense top 4, stuffed.
    client = chromadb.PersistentClient(
        path=str(data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    physical = next(
        c.name if not isinstance(c, str) else c
        for c in client.list_collections()
        if (c if isinstance(c, str) else c.name).startswith(COLLECTION + "-")
        and not (c if isinstance(c, str) else c.name).endswith("-registry")
    )
    store = Chroma(client=client, collection_name=physical, embedding_function=emb)
    store.similarity_search(questions[0], k=4)
    lat = []
    for q in questions:
        t0 = time.perf_counter()
        docs = store.similarity_search(q, k=4)
        _stuffed = "\n\n".join(d.page_content for d in docs)  # the stuff step
        lat.append((time.perf_counter() - t0) * 1000)
    return {
        "ingest_seconds": round(ingest_s, 2),
        "ingest_chunks": len(texts),
        "ingest_tokens": token_count(texts),
        "answer_ms": summary(lat),
    }


# --- serving ---------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    s = sorted(values)
    return {
        "n": len(s),
        "p50_ms": round(statistics.median(s), 1),
        "p95_ms": round(s[min(len(s) - 1, int(0.95 * len(s)))], 1),
    }


class Server:
    """``groundqa serve`` on a data dir, as a user runs it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        from tests.conftest import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc = subprocess.Popen(
            [str(BIN / "groundqa"), "serve", "--port", str(self.port)],
            cwd=ROOT,
            env={
                **os.environ,
                **env,
                "GROUNDQA_UI": "false",
                "GROUNDQA_RATE_LIMIT_PER_MINUTE": "0",
            },
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> Server:
        from tests.procs import wait_http

        wait_http(f"{self.url}/readyz", self.proc, timeout=300, log=self.log)
        return self

    def __exit__(self, *exc: Any) -> None:
        from tests.procs import stop

        stop(self.proc)

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server so far."""
        return proc_cpu_seconds(self.proc.pid)

    def rss_mb(self, field: str = "VmRSS") -> float:
        return proc_rss_mb(self.proc.pid, field)


def ask_sequential(url: str, questions: list[str]) -> dict[str, Any]:
    import httpx

    client_ms, pipeline_ms, errors = [], [], 0
    with httpx.Client(base_url=url, timeout=120) as c:
        for q in questions:
            t0 = time.perf_counter()
            r = c.post("/v1/ask", json={"question": q})
            client_ms.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                errors += 1
                continue
            pipeline_ms.append(float(r.json().get("timings", {}).get("total", 0.0)))
    return {"client": summary(client_ms), "pipeline": summary(pipeline_ms), "errors": errors}


def load(
    url: str | list[str], questions: list[str], clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` closed-loop clients for ``seconds``, each question asked once; given several
    URLs (replicas), client ``i`` asks the ``i``-th of them in turn."""
    import httpx

    urls = [url] if isinstance(url, str) else url

    pool = iter(questions)
    lock = threading.Lock()
    lat: list[float] = []
    statuses: dict[str, int] = {}
    stop_at = time.monotonic() + seconds

    def worker(url: str) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            while time.monotonic() < stop_at:
                with lock:
                    q = next(pool, None)
                if q is None:
                    return
                t0 = time.perf_counter()
                try:
                    code = str(c.post("/v1/ask", json={"question": q}).status_code)
                except Exception as exc:
                    code = type(exc).__name__
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
                    if code == "200":
                        lat.append(ms)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(urls[i % len(urls)],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    ok = statuses.get("200", 0)
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "answered": ok,
        "throughput_rps": round(ok / wall, 2),
        "latency": summary(lat),
        "statuses": statuses,
        "errors": sum(v for k, v in statuses.items() if k != "200"),
    }


def server_load(srv: Server, questions: list[str], clients: int, seconds: float) -> dict[str, Any]:
    """``load`` against ``srv``, plus the cores the server kept busy meanwhile: whether one
    client already uses both is what bounds the gain from more clients."""
    cpu0 = srv.cpu_seconds()
    run = load(srv.url, questions, clients, seconds)
    run["server_cores_busy"] = round((srv.cpu_seconds() - cpu0) / run["seconds"], 2)
    return run


def du_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


# --- one size ----------------------------------------------------------------------------


def run_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    work = WORK / str(size)
    corpus, data = work / "corpus", work / "data"
    chunks, questions, extra = build_corpus(size, corpus)
    shutil.rmtree(data, ignore_errors=True)
    env = {"GROUNDQA_CORPUS_DIR": str(corpus), "GROUNDQA_DATA_DIR": str(data)}
    texts = chunk_texts(corpus)
    tokens = token_count(texts)
    out: dict[str, Any] = {
        "chunks": chunks,
        "tokens": tokens,
        "documents": len(list(corpus.iterdir())),
    }
    log(f"{size}: corpus of {chunks} chunks, {tokens} tokens")

    ing = _child(["ingest", str(corpus)], env)
    ing["tokens_per_s"] = round(tokens / ing["seconds"], 1)
    out["ingest"] = ing
    log(f"{size}: ingest {ing}")
    out["reingest_unchanged"] = _child(["ingest", str(corpus)], env)
    extra_path = corpus / "zz-held-back.txt"
    extra_path.write_text(extra[0], encoding="utf-8")
    out["add_one_document"] = _child(["ingest", str(extra_path)], env)
    out["disk_mb"] = {
        "total": du_mb(data),
        "chroma": du_mb(data / "chroma"),
        "keyword": du_mb(data / "keyword") if (data / "keyword").exists() else 0.0,
    }
    raw_n = min(len(texts), args.raw_chunks)
    raw = _child(["raw", str(corpus), str(raw_n)], env)
    raw["tokens_per_s"] = round(raw["tokens"] / raw["seconds"], 1)
    out["baseline_raw_sentence_transformers"] = raw
    out["ingest_vs_raw_tokens_per_s"] = round(ing["tokens_per_s"] / raw["tokens_per_s"], 3)
    log(f"{size}: raw {raw}")

    seq_q, load_q = questions[: args.questions], questions[args.questions :]
    with Server(env, work / "serve.log") as srv:
        out["serve_idle_rss_mb"] = srv.rss_mb()
        ask_sequential(srv.url, seq_q[:5])  # first-use costs (caches, page cache) out of the way
        out["answer"] = ask_sequential(srv.url, seq_q)
        log(f"{size}: answer {out['answer']}")
        runs = []
        for clients in args.clients:
            runs.append(server_load(srv, load_q, clients, args.load_seconds))
            load_q = load_q[runs[-1]["answered"] + runs[-1]["errors"] :]
            log(f"{size}: load {runs[-1]}")
        out["load"] = runs
        if args.soak_minutes and size == args.sizes[0]:
            out["soak"] = soak(srv, load_q, args.soak_minutes)
        out["serve_peak_rss_mb"] = srv.rss_mb("VmHWM")
    if args.compare_active and size == args.sizes[0]:
        # How many answers to compute at once: the same 32-client load per setting.
        out["admission_slots_at_32_clients"] = {}
        for active in args.compare_active:
            slots_env = {**env, "GROUNDQA_MAX_CONCURRENT_ANSWERS": str(active)}
            with Server(slots_env, work / f"serve-active{active}.log") as srv:
                ask_sequential(srv.url, seq_q[:5])
                run = load(srv.url, load_q, 32, args.load_seconds / 2)
                run["serve_peak_rss_mb"] = srv.rss_mb("VmHWM")
                load_q = load_q[run["answered"] + run["errors"] :]
            out["admission_slots_at_32_clients"][str(active)] = run
            log(f"{size}: {active} slots: {run}")
    out["baseline_langchain"] = _child(
        ["langchain", str(data), str(min(1000, len(texts))), *seq_q], env
    )
    log(f"{size}: langchain {out['baseline_langchain']}")
    return out


def replica_catch_up(size: int) -> dict[str, Any]:
    """Two ``groundqa serve`` replicas on one ``chroma run`` server: a document uploaded to
    one, and the seconds until the other cites it (it polls the version stamp every 2 s)."""
    import httpx

    import tests.conftest  # noqa: F401  (tests.procs needs it imported first)
    from tests.procs import ChromaServer

    work = WORK / f"replicas-{size}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    corpus = work / "corpus"
    chunks, _, _ = build_corpus(size, corpus)
    with ChromaServer(work) as chroma:
        env_of = {
            name: {
                "GROUNDQA_CORPUS_DIR": str(corpus),
                "GROUNDQA_DATA_DIR": str(work / f"data-{name}"),
                "GROUNDQA_CHROMA_URL": chroma.url,
            }
            for name in ("a", "b")
        }
        ing = _child(["ingest", str(corpus)], env_of["a"])
        with Server(env_of["a"], work / "a.log") as a, Server(env_of["b"], work / "b.log") as b:
            text = (
                "Zebrafinch Orchard\n\nThe zebrafinch orchard keeper is Marisol Quennell, "
                "who planted its first tree in 1911."
            )
            question = "Who keeps the zebrafinch orchard?"
            with httpx.Client(timeout=120) as c:
                t0 = time.perf_counter()
                r = c.post(
                    f"{a.url}/v1/documents",
                    files=[("files", ("zebrafinch.txt", text.encode(), "text/plain"))],
                )
                r.raise_for_status()
                uploaded = time.perf_counter() - t0
                seen = None
                while time.perf_counter() - t0 < 300:
                    body = c.post(f"{b.url}/v1/ask", json={"question": question}).json()
                    if any(x["source"] == "zebrafinch.txt" for x in body.get("citations", [])):
                        seen = time.perf_counter() - t0
                        break
                    time.sleep(0.2)
    return {
        "chunks": chunks,
        "ingest_seconds_via_server": ing["seconds"],
        "upload_seconds": round(uploaded, 2),
        "other_replica_cites_it_after_s": round(seen, 2) if seen is not None else None,
    }


def replica_load(size: int, seconds: float) -> dict[str, Any]:
    """Threads against processes on the same cores: one ``groundqa serve`` with both cores'
    threads, then two replicas with one thread each (``OMP_NUM_THREADS=1``), all on one
    ``chroma run`` server; one client, then 32 clients split evenly across the replicas. Cores
    busy counts the replicas and the Chroma server."""
    import tests.conftest  # noqa: F401  (tests.procs needs it imported first)
    from tests.procs import ChromaServer

    work = WORK / f"replica-load-{size}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    corpus = work / "corpus"
    chunks, questions, _ = build_corpus(size, corpus)
    out: dict[str, Any] = {"chunks": chunks}
    with ChromaServer(work) as chroma:

        def env(name: str, threads: int | None) -> dict[str, str]:
            e = {
                "GROUNDQA_CORPUS_DIR": str(corpus),
                "GROUNDQA_DATA_DIR": str(work / f"data-{name}"),
                "GROUNDQA_CHROMA_URL": chroma.url,
            }
            return {**e, "OMP_NUM_THREADS": str(threads)} if threads else e

        out["ingest_via_server"] = _child(["ingest", str(corpus)], env("a", None))
        log(f"replica load {size}: ingest {out['ingest_via_server']}")

        def cpu(servers: list[Server]) -> float:
            return proc_cpu_seconds(chroma.proc.pid) + sum(x.cpu_seconds() for x in servers)

        def measured(servers: list[Server], qs: list[str], clients: int) -> dict[str, Any]:
            c0 = cpu(servers)
            urls = [x.url for x in servers][:clients]
            run = load(urls, qs, clients, seconds)
            run["cores_busy_with_chroma"] = round((cpu(servers) - c0) / run["seconds"], 2)
            return run

        setups: dict[str, list[tuple[str, int | None]]] = {
            "one_process_threads": [("a", None)],
            "two_replicas_one_thread_each": [("a", 1), ("b", 1)],
        }
        for label, members in setups.items():
            with contextlib.ExitStack() as stack:
                servers = [
                    stack.enter_context(Server(env(n, t), work / f"{label}-{n}.log"))
                    for n, t in members
                ]
                for x in servers:
                    ask_sequential(x.url, questions[:5])
                    questions = questions[5:]
                runs = []
                for clients in (1, 32):
                    runs.append(measured(servers, questions, clients))
                    questions = questions[runs[-1]["answered"] + runs[-1]["errors"] :]
                    log(f"replica load {size}: {label}: {runs[-1]}")
                out[label] = {
                    "load": runs,
                    "ratio_32_to_1": round(
                        runs[1]["throughput_rps"] / max(runs[0]["throughput_rps"], 1e-9), 3
                    ),
                    "peak_rss_mb": [x.rss_mb("VmHWM") for x in servers],
                }
    return out


def soak(srv: Server, questions: list[str], minutes: int) -> dict[str, Any]:
    samples, runs = [], []
    for m in range(minutes):
        runs.append(server_load(srv, questions, 32, 60))
        questions = questions[runs[-1]["answered"] + runs[-1]["errors"] :]
        samples.append(srv.rss_mb())
        log(f"soak minute {m + 1}: rss {samples[-1]} MB, {runs[-1]['throughput_rps']} rps")
    return {
        "rss_mb_each_minute": samples,
        "errors": sum(r["errors"] for r in runs),
        "throughput_rps_each_minute": [r["throughput_rps"] for r in runs],
        "rss_growth_after_first_minute": round(samples[-1] / samples[0] - 1, 3)
        if samples
        else None,
    }


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def goals(results: dict[str, Any]) -> dict[str, Any]:
    sizes = sorted(int(s) for s in results)
    small, big = str(sizes[0]), str(sizes[-1])
    g: dict[str, Any] = {}
    p_small = results[small]["answer"]["pipeline"]["p50_ms"]
    p_big = results[big]["answer"]["pipeline"]["p50_ms"]
    g["answer_p50_ratio_largest_over_smallest"] = round(p_big / p_small, 2)
    g["serve_peak_rss_mb_largest"] = results[big]["serve_peak_rss_mb"]
    g["ingest_peak_rss_mb_by_size"] = {s: results[s]["ingest"]["peak_rss_mb"] for s in results}
    g["reingest_unchanged_s_largest"] = results[big]["reingest_unchanged"]["seconds"]
    one = next((r for r in results[big]["load"] if r["clients"] == 1), None)
    many = next((r for r in results[big]["load"] if r["clients"] == 32), None)
    if one and many:
        g["throughput_32_over_1"] = round(many["throughput_rps"] / one["throughput_rps"], 2)
        fair = 32 / max(many["throughput_rps"], 1e-9) * 1.5 * 1000
        g["p95_32_clients_ms"] = many["latency"].get("p95_ms")
        g["p95_fair_bound_ms"] = round(fair, 1)
        g["errors_32_clients"] = many["errors"]
        g["server_cores_busy_1_and_32_clients"] = [
            one.get("server_cores_busy"),
            many.get("server_cores_busy"),
        ]
    g["ingest_vs_raw_tokens_per_s"] = {s: results[s]["ingest_vs_raw_tokens_per_s"] for s in results}
    return g


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--questions", type=int, default=40, help="sequential answers per size")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument("--soak-minutes", type=int, default=0)
    parser.add_argument("--raw-chunks", type=int, default=2000)
    parser.add_argument(
        "--compare-active",
        default="1,2,4",
        help="admission slot counts compared at 32 clients on the first size ('' to skip)",
    )
    parser.add_argument(
        "--replica-size", type=int, default=1000, help="chunks for the replica step (0: skip)"
    )
    parser.add_argument(
        "--replica-load",
        type=int,
        default=0,
        help="chunks for the threads-versus-replicas load comparison on a Chroma server (0: skip)",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.clients = [int(c) for c in args.clients.split(",")]
    args.compare_active = [int(a) for a in args.compare_active.split(",") if a]
    results: dict[str, Any] = {}
    for size in args.sizes:
        results[str(size)] = run_size(size, args)
        write(args, results)
    if args.replica_load:
        results[f"replica_load_{args.replica_load}"] = replica_load(
            args.replica_load, args.load_seconds
        )
        write(args, results)
    if args.replica_size:
        results[str(args.sizes[0])]["replica_catch_up"] = replica_catch_up(args.replica_size)
        log(f"replicas: {results[str(args.sizes[0])]['replica_catch_up']}")
    write(args, results)


def write(args: argparse.Namespace, results: dict[str, Any]) -> None:
    doc = {
        "bench": "scale",
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": {
            "sizes": args.sizes,
            "clients": args.clients,
            "load_seconds": args.load_seconds,
            "soak_minutes": args.soak_minutes,
            "replica_load": args.replica_load,
        },
        "results": results,
        # the goals compare corpus sizes; the replica-load step is its own comparison
        "goals": goals(by_size)
        if (by_size := {k: v for k, v in results.items() if k.isdigit()})
        else {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

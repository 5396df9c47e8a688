"""docker-compose.yml: valid, and its topology run without Docker.

The `api` and `ingest` services are started as processes configured exactly as the compose
file configures them (environment, command, healthchecks), with the in-network addresses
remapped to loopback: `chroma:8000` -> a real `chroma run`, `/corpus` and `/data` -> temp dirs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import CORPUS, ROOT, VENV_BIN, free_port
from tests.procs import ChromaServer, stop, wait_http
from tests.service.conftest import QUESTION

COMPOSE = ROOT / "docker-compose.yml"
CONTAINER_PORT = "8000"
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$\$")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and $$ substitution, over nested YAML values."""
    if isinstance(value, str):
        return _VAR.sub(
            lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1)) or m.group(2) or "", value
        )
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # No GROUNDQA_* from the caller's shell: the file's defaults are what is tested.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDQA_")}
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env)  # type: ignore[no-any-return]


def test_compose_config_is_valid() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        print("skipping: docker-compose is not installed (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDQA_")}
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr


def test_compose_wiring(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"chroma", "ingest", "api", "llm"} <= set(services)
    chroma = services["chroma"]
    assert re.fullmatch(r"chromadb/chroma:1\.5\.\d+", chroma["image"])
    assert any(v.endswith(":/data") for v in chroma["volumes"])
    assert "/api/v2/heartbeat" in " ".join(chroma["healthcheck"]["test"])
    api, ingest = services["api"], services["ingest"]
    assert api["depends_on"] == {
        "chroma": {"condition": "service_healthy"},
        "ingest": {"condition": "service_completed_successfully"},
    }
    assert ingest["depends_on"] == {"chroma": {"condition": "service_healthy"}}
    assert api["environment"]["GROUNDQA_CHROMA_URL"] == "http://chroma:8000"
    assert ingest["image"] == api["image"] and ingest["build"] == api["build"] == "."
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert services["llm"]["profiles"] == ["llm"]
    # The API is published on the host's loopback only (it may run without keys).
    assert all(p.startswith("127.0.0.1:") for p in api["ports"])


def _mounts(service: dict[str, Any], local: dict[str, Path]) -> dict[str, Path]:
    """Container path -> local path for the service's bind mounts we provide."""
    out = {}
    for volume in service.get("volumes", []):
        target = volume.split(":")[1]
        if target in local:
            out[target] = local[target]
    return out


def _local_env(
    service: dict[str, Any], chroma_url: str, paths: dict[str, Path], port: int
) -> dict[str, str]:
    env = {k: str(v) for k, v in service["environment"].items()}
    for key, value in env.items():
        value = value.replace("http://chroma:8000", chroma_url)
        if value in paths:
            value = str(paths[value])
        env[key] = value
    if env.get("GROUNDQA_HOST") == "0.0.0.0":
        env["GROUNDQA_HOST"] = "127.0.0.1"
    if env.get("GROUNDQA_PORT") == CONTAINER_PORT:
        env["GROUNDQA_PORT"] = str(port)
    return env


def _local_command(command: list[str], port: int) -> list[str]:
    args = [str(VENV_BIN / "groundqa") if command[0] == "groundqa" else command[0]]
    for arg in command[1:]:
        args.append({"0.0.0.0": "127.0.0.1", CONTAINER_PORT: str(port)}.get(arg, arg))
    return args


def _run_env(service_env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDQA_")}
    # The image's own environment (Dockerfile ENV) that the compose file relies on.
    base.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        GRADIO_ANALYTICS_ENABLED="False",
    )
    return {**base, **service_env}


@pytest.fixture
def topology(tmp_path: Path, compose: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Path]]:
    """chroma, then the one-shot ingest, then `groundqa serve` as compose's `api` runs them."""
    services = compose["services"]
    chroma = ChromaServer(tmp_path)
    shutil.copytree(CORPUS, tmp_path / "corpus")
    proc = None
    try:
        # The chroma service's own healthcheck, pointed at the local server.
        check = [
            a.replace("/dev/tcp/127.0.0.1/8000", f"/dev/tcp/127.0.0.1/{chroma.port}")
            for a in services["chroma"]["healthcheck"]["test"][1:]
        ]
        assert subprocess.run(check, timeout=10).returncode == 0

        port = free_port()
        for name in ("ingest", "api"):
            (tmp_path / f"data-{name}").mkdir()
        ingest = services["ingest"]
        mounts = _mounts(ingest, {"/corpus": tmp_path / "corpus"}) | {
            "/data": tmp_path / "data-ingest"
        }
        done = subprocess.run(
            _local_command(ingest["command"], port),
            env=_run_env(_local_env(ingest, chroma.url, mounts, port)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr  # service_completed_successfully

        api = services["api"]
        mounts = _mounts(api, {"/corpus": tmp_path / "corpus"}) | {"/data": tmp_path / "data-api"}
        log = (tmp_path / "api.log").open("wb")
        proc = subprocess.Popen(
            _local_command(api["command"], port),
            env=_run_env(_local_env(api, chroma.url, mounts, port)),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/readyz", proc, timeout=300, log=tmp_path / "api.log")
        yield url, api, tmp_path / "api.log"
    finally:
        if proc is not None:
            stop(proc, timeout=20)
        chroma.stop()


def test_compose_topology_without_docker(topology: tuple[str, dict[str, Any], Path]) -> None:
    url, api, log = topology
    # The api service's healthcheck command, pointed at the local port, passes.
    test = api["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    port = url.rsplit(":", 1)[1]
    args = [a.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for a in test[2:]]
    assert subprocess.run([sys.executable, *args], timeout=30).returncode == 0

    with httpx.Client(base_url=url, timeout=120) as c:
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready" and ready["checks"]["chroma"] == "reachable"
        answer = c.post("/v1/ask", json={"question": QUESTION}).json()
        assert "Wadi Barada" in answer["answer"] and answer["citations"]
        docs = c.get("/v1/documents").json()["documents"]
        assert {d["source"] for d in docs} == {p.name for p in CORPUS.iterdir() if p.is_file()}
        assert c.get("/ui/").status_code == 200
        rid = c.get("/healthz", headers={"X-Request-ID": "compose-check-1"}).headers["x-request-id"]
        assert rid == "compose-check-1"

    # Structured logs: every line on stderr is a JSON object; the access line carries the id.
    # It is written just after the response is sent, so wait for it to reach the file.
    deadline = time.monotonic() + 30
    while "compose-check-1" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    complete = log.read_text().split("\n")[:-1]  # a last line without newline may be partial
    records = [json.loads(line) for line in complete if line.strip()]
    access = [r for r in records if r.get("logger") == "groundqa.access"]
    hit = next(r for r in access if r.get("request_id") == "compose-check-1")
    assert hit["route"] == "/healthz" and hit["status"] == 200 and hit["method"] == "GET"


def test_compose_api_environment_is_valid_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the container sees it: bound to 0.0.0.0, anonymous only by the file's explicit default."""
    from service.settings import Settings

    env = {k: str(v) for k, v in compose["services"]["api"]["environment"].items()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.host == "0.0.0.0" and settings.allow_anonymous and not settings.api_keys
    assert settings.chroma_url == "http://chroma:8000" and settings.llm_base_url is None
    monkeypatch.setenv("GROUNDQA_ALLOW_ANONYMOUS", "false")
    with pytest.raises(ValueError, match="GROUNDQA_API_KEYS"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("GROUNDQA_API_KEYS", "k" * 20 + "," + "j" * 20)
    assert len(Settings(_env_file=None).api_keys) == 2  # type: ignore[call-arg]

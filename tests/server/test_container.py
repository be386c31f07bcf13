"""The container: Dockerfile and compose.yaml checked as files, the health probe against a real
server, and a real image build where a container engine answers."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from grpc_health.v1 import health_pb2

from nanhu.server.app import create_server
from nanhu.server.auth import KeyFile
from nanhu.server.cli import DEFAULT_LISTEN

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = int(DEFAULT_LISTEN.rpartition(":")[2])


def _load_probe():
    spec = importlib.util.spec_from_file_location("nanhu_healthcheck", ROOT / "deploy/healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


probe = _load_probe()


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments): continuation lines joined, comments
    and parser directives dropped; instructions before the first FROM (global ARGs) are stage 0."""
    logical, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # Docker drops these inside continuations too
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[tuple[str, str]]] = [[]]
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def _exec_form(arguments: str) -> list[str]:
    return json.loads(arguments)


def _final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages((ROOT / "Dockerfile").read_text())[-1]


def _listen_port(command: list[str]) -> int:
    return int(command[command.index("--listen") + 1].rpartition(":")[2])


def test_the_dockerfile_builds_in_stages_and_the_runtime_keeps_only_the_environment():
    stages = dockerfile_stages((ROOT / "Dockerfile").read_text())[1:]
    assert len(stages) >= 2
    names = [re.search(r"\bAS\s+(\S+)", stage[0][1], re.I) for stage in stages]
    assert all(names), "every stage is named, so COPY --from says which"
    copies_from = [a for i, a in _final_stage() if i == "COPY" and a.startswith("--from=")]
    assert any(a.startswith(f"--from={names[0].group(1)} ") for a in copies_from)
    assert not any(i == "COPY" and a.split()[0] == "." for i, a in _final_stage()), \
        "the sources stay in the build stage"


def test_the_service_runs_as_an_unprivileged_user_with_its_state_on_a_volume():
    final = _final_stage()
    users = [a for i, a in final if i == "USER"]
    assert users, "no USER: the service would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    created = " ".join(a for i, a in final if i == "RUN")
    assert re.search(rf"useradd\b.*--uid {user}\b", created), "the user exists in the image"
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for i, a in final if i == "ENV")))
    volumes = [v for i, a in final if i == "VOLUME" for v in _exec_form(a)]
    assert volumes and Path(env["NANHU_CATALOG"]).is_relative_to(volumes[0])
    assert Path(env["NANHU_KEYS"]).is_relative_to(volumes[0])
    workdir = [a for i, a in final if i == "WORKDIR"][-1]
    assert workdir == volumes[0], "relative paths (an ingest report) land on the volume"


def test_the_image_serves_the_default_port_and_checks_health_over_grpc():
    final = _final_stage()
    exposed = {int(p.split("/")[0]) for i, a in final if i == "EXPOSE" for p in a.split()}
    assert DEFAULT_PORT in exposed
    entrypoint = _exec_form([a for i, a in final if i == "ENTRYPOINT"][-1])
    command = _exec_form([a for i, a in final if i == "CMD"][-1])
    assert entrypoint[-1] == "nanhu" and command[0] == "serve"
    assert _listen_port(command) == DEFAULT_PORT and "--auth" in command
    health = [a for i, a in final if i == "HEALTHCHECK"]
    assert len(health) == 1 and "--interval=" in health[0] and "--timeout=" in health[0]
    probe_cmd = _exec_form(health[0][health[0].index("CMD") + 3:].strip())
    copied = {a.split()[-1]: a.split()[-2] for i, a in final if i == "COPY" and "--from" not in a}
    assert copied[probe_cmd[-1]] == "deploy/healthcheck.py"
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for i, a in final if i == "ENV")))
    assert int(env["NANHU_HEALTH_ADDRESS"].rpartition(":")[2]) == DEFAULT_PORT
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var"} <= set(ignored)


def test_compose_starts_the_service_with_a_catalog_volume_and_a_healthcheck():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    (name, service), = compose["services"].items()
    assert service["build"] == "." and compose["volumes"]
    final = _final_stage()
    state_dir = _exec_form([a for i, a in final if i == "VOLUME"][-1])[0]
    mounts = dict(m.split(":")[::-1] for m in service["volumes"])
    assert mounts[state_dir] in compose["volumes"], "a named volume, declared, on the state dir"
    assert service["healthcheck"]["test"][:2] == ["CMD", "python"]
    port = _listen_port(service["command"])
    assert port == DEFAULT_PORT
    published = [p.rsplit(":", 2) for p in service["ports"]]
    assert any(int(container) == port for *_, container in published)
    assert all(host == "127.0.0.1" for host, _, _ in published), "plaintext stays on loopback"
    grace = float(service["command"][service["command"].index("--grace") + 1]) \
        if "--grace" in service["command"] else 10.0
    assert float(service["stop_grace_period"].rstrip("s")) > grace


def test_the_probe_says_serving_not_serving_and_unreachable(tmp_path, capsys):
    keys = KeyFile(tmp_path / "keys.json")  # as in the image: keys on, and the probe has none
    keys.add("ops", ["admin"])
    keys.save()
    server, port = create_server(tmp_path / "catalog", workers=1, auth=tmp_path / "keys.json")
    server.start()
    try:
        address = f"127.0.0.1:{port}"
        assert probe.main(["--address", address]) == 0
        assert "SERVING" in capsys.readouterr().out
        server.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert probe.main(["--address", address]) == 1
        assert "NOT_SERVING" in capsys.readouterr().err
        server.health.set("", health_pb2.HealthCheckResponse.SERVING)
        # the way the image runs it: its own interpreter, the address from the environment
        ran = subprocess.run([sys.executable, str(ROOT / "deploy/healthcheck.py")],
                             env={"NANHU_HEALTH_ADDRESS": address, "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
    finally:
        assert server.stop(0).wait(30)
    assert probe.main(["--address", address, "--timeout", "1"]) == 1
    said = capsys.readouterr().err
    assert "UNAVAILABLE" in said or "DEADLINE_EXCEEDED" in said


def test_the_probe_speaks_mutual_tls(tmp_path, pki):
    server, port = create_server(tmp_path / "catalog", workers=1, tls_cert=pki.server_cert,
                                 tls_key=pki.server_key, tls_client_ca=pki.ca)
    server.start()
    try:
        address = f"127.0.0.1:{port}"
        assert probe.main(["--address", address, "--tls-ca", str(pki.ca), "--tls-cert",
                           str(pki.client_cert), "--tls-key", str(pki.client_key)]) == 0
        assert probe.main(["--address", address, "--tls-ca", str(pki.ca), "--timeout", "2"]) == 1
        assert probe.main(["--address", address, "--timeout", "2"]) == 1  # plaintext to TLS
    finally:
        assert server.stop(0).wait(30)


def _container_engine() -> str | None:
    """Why no image can be built here, or None when `docker` answers."""
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return f"docker cannot reach a daemon: {(info.stderr or info.stdout).strip().splitlines()[-1]}"
    return None


@pytest.mark.slow
def test_the_image_builds_and_runs_as_its_user_with_a_healthcheck():
    reason = _container_engine()
    if reason:
        pytest.skip(f"no container engine to build the image with ({reason})")
    tag = "nanhu-test:latest"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
    config = json.loads(subprocess.run(["docker", "image", "inspect", tag], check=True,
                                       capture_output=True, text=True).stdout)[0]["Config"]
    assert config["User"].split(":")[0] not in ("", "0", "root")
    assert config["Healthcheck"]["Test"][0] == "CMD"
    ran = subprocess.run(["docker", "run", "--rm", tag, "serve", "--help"], capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0 and "--listen" in ran.stdout

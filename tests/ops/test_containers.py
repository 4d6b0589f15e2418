"""The container files: the compose stack's wiring, Lavalink's configuration, the Dockerfile.

There is no Docker engine here: the compose file is parsed and checked, and also validated by
`docker-compose config` / `docker compose config` when a client that can do so is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings
from tests.ops.conftest import ROOT
from tests.ops.deploy_checks import HANDOVER_SECONDS, known_settings

COMPOSE = ROOT / "docker-compose.yml"
LAVALINK_CONFIG = ROOT / "lavalink" / "application.yml"
PROXY_CONFIG = ROOT / "deploy" / "compose" / "nginx.conf"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _healthcheck(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def test_mongo_is_a_one_node_replica_set_that_initiates_itself() -> None:
    mongo = _compose()["services"]["mongo"]
    assert re.fullmatch(r"mongo:8\.0\.\d+", mongo["image"]), "pin MongoDB by version"
    command = mongo["command"]
    assert command[command.index("--replSet") + 1] == "rs0"
    assert "--bind_ip_all" in command
    check = _healthcheck(mongo)
    assert "rs.initiate" in check and "_id: 'rs0'" in check and "host: 'mongo:27017'" in check
    assert "isWritablePrimary" in check  # healthy only once it accepts writes
    assert any(volume.endswith(":/data/db") for volume in mongo["volumes"])


def test_lavalink_runs_4_2_with_the_repository_config_and_a_password_from_env() -> None:
    lavalink = _compose()["services"]["lavalink"]
    assert re.fullmatch(r"ghcr\.io/lavalink-devs/lavalink:4\.2\.\d+", lavalink["image"]), (
        "pin Lavalink by version"
    )
    assert "./lavalink/application.yml:/opt/Lavalink/application.yml:ro" in lavalink["volumes"]
    assert lavalink["environment"]["LAVALINK_SERVER_PASSWORD"].startswith("${LAVALINK_PASSWORD:?")
    assert "/version" in _healthcheck(lavalink)

    config = yaml.safe_load(LAVALINK_CONFIG.read_text())
    assert config["server"]["port"] == 2333
    server = config["lavalink"]["server"]
    assert server["password"] == "${LAVALINK_SERVER_PASSWORD}"  # no default password
    assert server["sources"]["youtube"] is False  # replaced by the plugin
    dependencies = [plugin["dependency"] for plugin in config["lavalink"]["plugins"]]
    assert any(re.fullmatch(r"dev\.lavalink\.youtube:youtube-plugin:\d+\.\d+\.\d+", d) for d in dependencies)
    assert config["plugins"]["youtube"]["enabled"] is True
    # LavaSrc is configured but off (each source needs credentials); LavaLyrics serves /lyrics.
    assert any(d.startswith("com.github.topi314.lavasrc:lavasrc-plugin:") for d in dependencies)
    assert any(d.startswith("com.github.topi314.lavalyrics:lavalyrics-plugin:") for d in dependencies)
    assert config["plugins"]["lavasrc"]["sources"] == {"spotify": False, "applemusic": False, "deezer": False}
    assert config["plugins"]["lavalyrics"]["sources"][0] == "lrcLib"
    assert config["plugins"]["lavasrc"]["lyrics-sources"]["lrcLib"] is True


def test_chorus_is_wired_to_both_services_with_its_environment_from_dotenv() -> None:
    compose = _compose()
    chorus = compose["services"]["chorus"]
    assert chorus["build"] == "."
    assert chorus["env_file"] in (".env", [".env"])
    env = chorus["environment"]
    assert env["MONGODB_URL"] == "mongodb://mongo:27017/?replicaSet=rs0"
    assert (
        env["LAVALINK_NODES"]
        == "main=http://lavalink:2333=${LAVALINK_PASSWORD:?set LAVALINK_PASSWORD in .env}"
    )
    assert env["HTTP_HOST"] == "0.0.0.0"  # a copied .env says 127.0.0.1: unreachable through the port
    assert str(env["HTTP_PORT"]) == "3000"
    assert env["TOKEN_ENCRYPTION_KEYS"].startswith("${TOKEN_ENCRYPTION_KEYS:?")
    assert chorus["depends_on"] == {
        "mongo": {"condition": "service_healthy"},
        "lavalink": {"condition": "service_healthy"},
    }

    # The URLs point at the services as they are defined.
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]  # a pydantic-settings init kwarg
        mongodb_url=env["MONGODB_URL"],
        token_encryption_keys="k",
    )
    assert not settings.uses_embedded_database
    lavalink_port = yaml.safe_load(LAVALINK_CONFIG.read_text())["server"]["port"]
    assert f"http://lavalink:{lavalink_port}=" in env["LAVALINK_NODES"]
    # Plus Prometheus and Grafana in the `monitoring` profile (tests/ops/test_monitoring.py).
    assert set(compose["services"]) == {"mongo", "lavalink", "chorus", "proxy", "prometheus", "grafana"}
    assert set(compose["volumes"]) == {"mongo-data", "lavalink-plugins", "prometheus-data", "grafana-data"}


def _seconds(duration: str) -> float:
    """A compose duration such as `1m30s` or `60s`."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def test_chorus_scales_behind_the_proxy_and_each_replica_registers_its_own_address() -> None:
    """`docker compose up --scale chorus=3`: no fixed host port or name on the workers (they would
    clash), one published port on the proxy, which spreads requests over every replica."""
    services = _compose()["services"]
    chorus, proxy = services["chorus"], services["proxy"]
    assert "ports" not in chorus and "container_name" not in chorus
    port = str(chorus["environment"]["HTTP_PORT"])
    assert [str(p) for p in chorus["expose"]] == [port]
    # Unset (empty): each replica derives http://<its container IP>:port from the wildcard bind;
    # a value here, or one copied from .env, would be shared by every replica.
    assert chorus["environment"]["WORKER_ADDRESS"] == ""
    assert chorus["environment"]["HTTP_HOST"] == "0.0.0.0"
    assert set(chorus["environment"]) <= known_settings()
    assert _seconds(chorus["stop_grace_period"]) >= HANDOVER_SECONDS

    # Of the services that always run (the `monitoring` profile's publish on loopback too).
    published = [
        name for name, service in services.items() if service.get("ports") and "profiles" not in service
    ]
    assert published == ["proxy"]
    assert re.fullmatch(r"nginx:\d+\.\d+\.\d+-alpine", proxy["image"]), "pin the proxy by version"
    (mapping,) = proxy["ports"]
    interface, host_port, container_port = str(mapping).split(":")
    assert (interface, host_port) == ("127.0.0.1", "3000")  # what the README's curl uses
    assert "./deploy/compose/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in proxy["volumes"]
    assert "chorus" in proxy["depends_on"]
    assert f"http://127.0.0.1:{container_port}/health" in _healthcheck(proxy)

    config = PROXY_CONFIG.read_text()
    assert re.search(rf"^\s*listen {container_port};", config, re.MULTILINE)
    # Docker's DNS, asked again at request time (a variable in proxy_pass), so replicas added
    # or removed later are found; every address of `chorus` takes its turn.
    assert re.search(r"^resolver 127\.0\.0\.11 valid=\d+s", config, re.MULTILINE)
    target = re.search(r"set \$(\w+) (\S+);", config)
    assert target is not None and target[2] == f"http://chorus:{port}"
    assert re.search(rf"proxy_pass \${target[1]};", config)


def test_the_proxy_config_is_accepted_by_nginx(tmp_path: Path) -> None:
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("no nginx on this machine")
    # nginx's own defaults point at system paths: keep everything it writes in tmp_path.
    temp_paths = " ".join(
        f"{kind}_temp_path {tmp_path};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
        f"http {{ access_log off; {temp_paths} include {PROXY_CONFIG}; }}\n"
    )
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_every_variable_the_compose_file_interpolates_is_in_env_example() -> None:
    names = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    assert names == {"LAVALINK_PASSWORD", "TOKEN_ENCRYPTION_KEYS", "GRAFANA_ADMIN_PASSWORD"}
    documented = (ROOT / ".env.example").read_text()
    for name in names:
        assert re.search(rf"^{name}=", documented, re.MULTILINE), f"{name} is not in .env.example"


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return [docker, "compose"]
    return None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no docker-compose / docker compose client on this machine")
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "lavalink", tmp_path / "lavalink")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    (tmp_path / ".env").write_text("TOKEN_ENCRYPTION_KEYS=a-key=\nLAVALINK_PASSWORD=pw\n")
    done = subprocess.run([*command, "config"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]
    assert resolved["chorus"]["environment"]["LAVALINK_NODES"] == "main=http://lavalink:2333=pw"
    assert resolved["lavalink"]["environment"]["LAVALINK_SERVER_PASSWORD"] == "pw"

    (tmp_path / ".env").write_text("TOKEN_ENCRYPTION_KEYS=a-key=\n")
    missing = subprocess.run([*command, "config"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert missing.returncode != 0
    assert "set LAVALINK_PASSWORD in .env" in missing.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_health_check_and_one_worker() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    instructions = [line.split(maxsplit=1) for line in dockerfile.splitlines() if line and line[0].isalpha()]
    keywords = [parts[0] for parts in instructions]
    assert keywords.count("FROM") >= 2
    users = [parts[1].strip() for parts in instructions if parts[0] == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in keywords and "/health" in dockerfile
    assert 'CMD ["chorus", "serve"]' in dockerfile  # `serve` runs uvicorn with workers=1
    assert "--workers" not in dockerfile


def test_every_install_comes_from_the_lock_with_pinned_images() -> None:
    """make, CI and the image install the versions in uv.lock, with the same uv; images are pinned."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert bases and all(re.fullmatch(r"python:3\.12\.\d+-slim", base) for base in bases), bases
    assert "COPY pyproject.toml uv.lock" in dockerfile and "uv sync --frozen" in dockerfile
    uv_version = re.search(r"^UV_VERSION := (\S+)$", makefile, flags=re.MULTILINE)
    assert uv_version is not None and f"'uv=={uv_version[1]}'" in dockerfile
    assert "sync --frozen" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()

    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {package["name"] for package in lock["package"]}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        wanted += extra
    for requirement in wanted:
        name = (
            re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")
        )
        assert name in {n.replace(".", "-") for n in locked}, f"{name} is not in uv.lock: run `make lock`"


def test_the_documented_systemd_unit_gives_a_stop_its_whole_budget() -> None:
    """The unit in docs/OPERATIONS.md: systemd kills a stop after TimeoutStopSec, and a stop may
    take SHUTDOWN_TIMEOUT plus the exit's own grace (as compose and Kubernetes allow)."""
    operations = (ROOT / "docs" / "OPERATIONS.md").read_text()
    stops = [float(value) for value in re.findall(r"^TimeoutStopSec=(\d+)$", operations, flags=re.MULTILINE)]
    assert stops and all(seconds >= HANDOVER_SECONDS for seconds in stops), stops

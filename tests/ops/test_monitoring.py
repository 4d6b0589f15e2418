"""The monitoring kit: alert rules and Prometheus config through promtool (rules unit-tested too),
the Grafana dashboard and the alerts only query metrics that /metrics really serves, and the
compose `monitoring` profile runs pinned images provisioned with both."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymongo import AsyncMongoClient

from app.bots.status import BotState
from app.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fleet import running_app, store_bot
from tests.ops.conftest import ROOT
from tests.prometheus_text import names
from tests.promql import metric_names

DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "chorus.json"
# Series Prometheus makes itself, not read from any /metrics.
PROMETHEUS_OWN = {"up"}
PROMTOOL_MISSING = (
    "promtool is not installed: apt-get install prometheus (Debian ships promtool in it; .ci/run "
    "installs it) to check the alert rules"
)


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(PROMTOOL_MISSING)
    return promtool


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _dashboard_queries() -> list[str]:
    queries = [t["expr"] for p in _dashboard()["panels"] for t in p.get("targets", [])]
    for variable in _dashboard()["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    promtool = _promtool()
    assert "SUCCESS: 6 rules found" in _run(promtool, "check", "rules", str(ALERTS))
    assert "SUCCESS" in _run(promtool, "test", "rules", str(ALERT_TESTS))
    output = _run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert "valid prometheus config file syntax" in output


def test_the_alerts_the_issue_asks_for_exist_with_a_runbook_in_operations() -> None:
    rules = {rule["alert"]: rule for rule in _alert_rules()}
    assert set(rules) == {
        "ChorusDown",
        "ChorusBotFailed",
        "ChorusBotNoLiveOwner",
        "ChorusIdentifyBudgetHigh",
        "ChorusLavalinkDown",
        "ChorusDatabaseDown",
    }
    assert rules["ChorusBotFailed"]["for"] == "5m"
    assert "> 0.8" in rules["ChorusIdentifyBudgetHigh"]["expr"]
    operations = (ROOT / "docs" / "OPERATIONS.md").read_text()
    for name, rule in rules.items():
        anchor = rule["annotations"]["runbook"].split("#")[1]
        assert anchor == name.lower()
        assert re.search(rf"^#+ `?{name}`?\s*$", operations, re.MULTILINE), (
            f"OPERATIONS.md has no section {name}"
        )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('up{job="chorus"} == 0', {"up"}),
        (
            'max by (instance, bot) (chorus_identify_budget_used_ratio{bot!="x"}) > 0.8',
            {"chorus_identify_budget_used_ratio"},
        ),
        (
            "histogram_quantile(0.95, sum by (le) "
            '(rate(chorus_interaction_seconds_bucket{instance=~"$instance"}[$__rate_interval])))',
            {"chorus_interaction_seconds_bucket"},
        ),
        ("sum(rate(a_total[5m])) * 60 / on(instance) group_left b_info", {"a_total", "b_info"}),
        ("label_values(chorus_bots, instance)", {"chorus_bots"}),
        ("1e3 * scalar(x) offset 5m", {"x"}),
    ],
)
def test_metric_names_are_read_from_promql(expression: str, expected: set[str]) -> None:
    assert metric_names(expression) == expected


async def _exposed(
    fake_discord: FakeDiscord, settings: Settings, mongo: AsyncMongoClient[dict[str, Any]]
) -> set[str]:
    bot = fake_discord.add_bot(name="Scraped")
    await store_bot(mongo, settings, bot)
    async with running_app(settings) as running:
        await running.wait_for(bot, BotState.READY)
        response = await running.http.get("/metrics")
    assert response.status_code == 200
    return names(response.text)


async def test_every_metric_the_dashboard_and_the_alerts_query_is_served(
    fake_discord: FakeDiscord, fleet_settings: Settings, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    exposed = await _exposed(fake_discord, fleet_settings, mongo)
    dashboard = {name for query in _dashboard_queries() for name in metric_names(query)}
    alerts = {name for rule in _alert_rules() for name in metric_names(rule["expr"])}
    assert len(dashboard) >= 12 and alerts
    assert dashboard - exposed == set(), "the dashboard queries metrics /metrics does not serve"
    assert alerts - exposed - PROMETHEUS_OWN == set(), "an alert reads a missing metric"
    issue_names = {
        "chorus_bots", "chorus_guilds", "chorus_voice_connections", "chorus_players",
        "chorus_interactions_total", "chorus_interaction_seconds_bucket", "chorus_lavalink_nodes",
        "chorus_lavalink_node_players", "chorus_lavalink_node_cpu_ratio", "chorus_identifies_total",
        "chorus_identify_budget_used_ratio", "chorus_database_up", "chorus_snapshot_writes_total",
        "chorus_leases", "process_resident_memory_bytes",
    }  # fmt: skip
    assert issue_names <= exposed
    assert issue_names - {"chorus_guilds", "process_resident_memory_bytes"} <= dashboard | alerts


def test_the_grafana_dashboard_is_importable_and_provisioned() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "chorus-fleet" and dashboard["title"]
    panels = dashboard["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], panel["title"]
    titles = " ".join(panel["title"].lower() for panel in panels)
    for topic in ("bots", "commands", "answer", "players", "lavalink", "identify"):
        assert topic in titles

    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/chorus.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path, for the bind mounts of the repository's files."""
    mounts: dict[str, str] = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"{source} is mounted but does not exist"
            mounts[target] = source
    return mounts


def test_the_monitoring_profile_runs_pinned_provisioned_images_on_loopback() -> None:
    services = _compose()["services"]
    for name in ("mongo", "lavalink", "chorus"):
        assert "profiles" not in services[name], f"{name} must run without a profile"
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["profiles"] == ["monitoring"] and grafana["profiles"] == ["monitoring"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", grafana["image"])
    for service in (prometheus, grafana):
        assert all(str(port).startswith("127.0.0.1:") for port in service["ports"])

    mounts = _mounts(prometheus)
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == "./deploy/prometheus/alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["alerts.yml"]  # next to the config, where compose mounts it
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # Every replica of `chorus` (docker compose up --scale chorus=N), never one through the proxy.
    assert jobs["chorus"]["dns_sd_configs"] == [{"names": ["chorus"], "type": "A", "port": 3000,
                                                 "refresh_interval": "30s"}]  # fmt: skip
    assert str(services["chorus"]["environment"]["HTTP_PORT"]) == "3000"
    assert jobs["lavalink"]["static_configs"][0]["targets"] == ["lavalink:2333"]

    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert mounts["/etc/grafana/dashboards/chorus.json"] == "./deploy/grafana/chorus.json"

    lavalink = yaml.safe_load((ROOT / "lavalink" / "application.yml").read_text())
    assert lavalink["metrics"]["prometheus"] == {"enabled": True, "endpoint": "/metrics"}
    assert jobs["lavalink"]["metrics_path"] == lavalink["metrics"]["prometheus"]["endpoint"]


def test_docker_compose_accepts_the_monitoring_profile(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("no docker-compose client on this machine (apt-get install docker-compose)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copytree(ROOT / "lavalink", tmp_path / "lavalink")
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    (tmp_path / ".env").write_text(
        "TOKEN_ENCRYPTION_KEYS=a-key=\nLAVALINK_PASSWORD=pw\nGRAFANA_ADMIN_PASSWORD=g\n"
    )
    done = subprocess.run(
        [compose, "--profile", "monitoring", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]
    assert {"prometheus", "grafana", "chorus"} <= set(resolved)
    assert resolved["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "g"

"""Wiring checks for docker-compose.yml, deploy/Dockerfile, deploy/prometheus.yml,
deploy/alerts.yml and the Grafana provisioning under deploy/grafana/.

These read the files only; they need neither Docker nor a broker. The promtool checks run
Prometheus' own checker (`make promtool` puts it in .venv/bin, from Debian's prometheus package);
they fail, never skip, when it is missing.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stream.adapters.metrics import Metrics
from stream.config import KNOWN_VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus.yml"
ALERTS_FILE = ROOT / "deploy" / "alerts.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "microseg.json"
GRAFANA_DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_DASHBOARDS_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "microseg.yml"
README_FILE = ROOT / "README.md"

# Every MICROSEG_* variable microseg reads (stream.config): a name used in the deployment files
# that is not here would stop the workers at start-up.
KNOWN_SETTINGS = KNOWN_VARIABLES  # the one list, which start-up also checks
SECURITY_PROTOCOLS = {"PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"}
STORES = {"rocksdb://", "memory://"}

# Defaults of stream/config.py that the deployment relies on when compose does not set them.
DEFAULT_WEB_PORT = 6066
CONTAINER_DATA_DIR = "/var/lib/microseg"

# Settings that topic creation and the workers must agree on, or workers would consume topics
# that were never created (or created with another partition count).
TOPOLOGY_SETTINGS = {
    "MICROSEG_BROKER",
    "MICROSEG_PARTITIONS",
    "MICROSEG_REPLICATION_FACTOR",
    "MICROSEG_SECURITY_PROTOCOL",
    "MICROSEG_SASL_MECHANISM",
    "MICROSEG_SASL_USERNAME",
    "MICROSEG_SSL_CAFILE",
    "MICROSEG_APP_ID",
    "MICROSEG_MAX_MESSAGE_BYTES",
} | {name for name in KNOWN_SETTINGS if name.startswith("MICROSEG_TOPIC_")}

KAFKA_SERVICE = "kafka"
TOPICS_SERVICE = "topics"
WORKER_SERVICES = ("worker-1", "worker-2")
PROMETHEUS_SERVICE = "prometheus"
GRAFANA_SERVICE = "grafana"

# Largest input message a worker accepts by default (larger ones are dead-lettered as oversized).
MAX_INPUT_MESSAGE_BYTES = Settings.model_fields["max_message_bytes"].default


# --------------------------------------------------------------------------- helpers


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict of strings (compose allows a mapping or a K=V list)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        out = {}
        for item in raw:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {str(k): _scalar(v) for k, v in raw.items()}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _command(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition}; the short list form means service_started."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def _ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Published ports as (host_ip, host_port, container_port)."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            out.append(
                (str(entry.get("host_ip", "")), int(entry["published"]), int(entry["target"]))
            )
            continue
        text = str(entry).split("/")[0]
        parts = text.rsplit(":", 2)
        if len(parts) == 3:
            host_ip, host_port, container_port = parts
        elif len(parts) == 2:
            host_ip, (host_port, container_port) = "", parts
        else:
            pytest.fail(f"port {entry!r} is not published on a fixed host port")
        out.append((host_ip, int(host_port), int(container_port)))
    return out


def _volumes(service: dict[str, Any]) -> list[tuple[str, str]]:
    """Mounts as (source, target)."""
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            out.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            source, _, rest = str(entry).partition(":")
            out.append((source, rest.split(":")[0]))
    return out


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' as {NAME: (host, port)}."""
    out = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def _protocol_map(value: str) -> dict[str, str]:
    return dict(item.strip().split(":", 1) for item in value.split(",") if item.strip())


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        logical.append(current)
        current = ""
    out = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def _dockerfile(instruction: str) -> list[str]:
    return [args for name, args in _dockerfile_instructions() if name == instruction]


def _dockerfile_exposed_ports() -> set[int]:
    return {int(token.split("/")[0]) for args in _dockerfile("EXPOSE") for token in args.split()}


def _container_web_port(env: dict[str, str]) -> int:
    return int(env.get("MICROSEG_WEB_PORT", DEFAULT_WEB_PORT))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    assert isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def kafka_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return _env(services[KAFKA_SERVICE])


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS_FILE.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- compose: services


def test_expected_services_exist(services: dict[str, dict[str, Any]]) -> None:
    expected = {KAFKA_SERVICE, TOPICS_SERVICE, PROMETHEUS_SERVICE, *WORKER_SERVICES}
    assert expected <= set(services), f"missing services: {expected - set(services)}"


def test_worker_anchor_is_shared(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "x-worker" in compose, "shared worker config should live in an x-worker extension"
    assert re.search(r"^x-worker:\s*&(\S+)", text, re.MULTILINE), "x-worker must be a YAML anchor"
    for name in WORKER_SERVICES:
        assert re.search(rf"^  {re.escape(name)}:\n\s+<<: \*", text, re.MULTILINE), (
            f"{name} should merge the x-worker anchor"
        )


# --------------------------------------------------------------------------- compose: kafka


def test_kafka_is_official_image_in_kraft_mode(
    services: dict[str, dict[str, Any]], kafka_env: dict[str, str]
) -> None:
    assert services[KAFKA_SERVICE]["image"] == "apache/kafka:3.9.0"
    roles = {role.strip() for role in kafka_env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}
    assert kafka_env.get("CLUSTER_ID"), "apache/kafka refuses KRaft mode without CLUSTER_ID"
    assert not any(key.startswith("KAFKA_ZOOKEEPER") for key in kafka_env)


def test_kafka_controller_quorum_is_this_node(kafka_env: dict[str, str]) -> None:
    node_id = kafka_env["KAFKA_NODE_ID"]
    controller_name = kafka_env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    listeners = _listeners(kafka_env["KAFKA_LISTENERS"])
    assert controller_name in listeners
    voters = kafka_env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1, "single-node compose has exactly one voter"
    voter_id, _, voter_address = voters[0].partition("@")
    voter_host, _, voter_port = voter_address.rpartition(":")
    assert voter_id == node_id
    assert voter_host in {KAFKA_SERVICE, "localhost"}
    assert int(voter_port) == listeners[controller_name][1]
    # The controller listener is never advertised to clients.
    assert controller_name not in _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = _protocol_map(kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"])
    assert set(listeners) <= set(protocols), "every listener needs a security protocol"


def test_kafka_topic_auto_creation_is_off(kafka_env: dict[str, str]) -> None:
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"


def test_kafka_single_node_internal_topics(kafka_env: dict[str, str]) -> None:
    assert kafka_env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert kafka_env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert kafka_env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS" in kafka_env


def test_kafka_accepts_large_input_messages(
    services: dict[str, dict[str, Any]], kafka_env: dict[str, str]
) -> None:
    # The broker must take what the workers accept, and oversized ones so they can be dead-lettered.
    accepted = max(
        int(_env(services[name]).get("MICROSEG_MAX_MESSAGE_BYTES", MAX_INPUT_MESSAGE_BYTES))
        for name in WORKER_SERVICES
    )
    assert int(kafka_env["KAFKA_MESSAGE_MAX_BYTES"]) > accepted


def test_kafka_has_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    test = services[KAFKA_SERVICE]["healthcheck"]["test"]
    text = " ".join(_command(test))
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in text
    assert "--bootstrap-server" in text


# --------------------------------------------------------------------------- compose: topics


def test_topics_service_creates_topics_once(services: dict[str, dict[str, Any]]) -> None:
    topics = services[TOPICS_SERVICE]
    assert _command(topics.get("command")) == ["topics", "create"]
    assert _depends_on(topics).get(KAFKA_SERVICE) == "service_healthy"
    assert str(topics.get("restart", "no")) in {"no", "on-failure", "False", "false"}
    assert topics.get("build", {}).get("dockerfile") == "deploy/Dockerfile"


# --------------------------------------------------------------------------- compose: workers


@pytest.mark.parametrize("name", WORKER_SERVICES)
def test_worker_runs_worker_command(services: dict[str, dict[str, Any]], name: str) -> None:
    assert _command(services[name].get("command")) == ["worker"]


@pytest.mark.parametrize("name", WORKER_SERVICES)
def test_worker_uses_same_image_as_topics(services: dict[str, dict[str, Any]], name: str) -> None:
    worker, topics = services[name], services[TOPICS_SERVICE]
    assert worker.get("image") == topics.get("image")
    assert worker.get("build") == topics.get("build")


@pytest.mark.parametrize("name", WORKER_SERVICES)
def test_worker_broker_is_kafka_internal_listener(
    services: dict[str, dict[str, Any]], kafka_env: dict[str, str], name: str
) -> None:
    env = _env(services[name])
    url = urlsplit(env["MICROSEG_BROKER"])
    assert url.scheme == "kafka"
    kafka_names = {KAFKA_SERVICE, services[KAFKA_SERVICE].get("hostname", KAFKA_SERVICE)}
    assert url.hostname in kafka_names, "workers must reach Kafka by its compose service name"
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    matching = [
        listener
        for listener, (host, port) in advertised.items()
        if host in kafka_names and port == url.port
    ]
    assert matching, f"{env['MICROSEG_BROKER']} is not an advertised in-network Kafka listener"
    protocol = _protocol_map(kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"])[matching[0]]
    assert protocol == env.get("MICROSEG_SECURITY_PROTOCOL", "PLAINTEXT")
    bound_ports = {port for _, port in _listeners(kafka_env["KAFKA_LISTENERS"]).values()}
    assert url.port in bound_ports


@pytest.mark.parametrize("name", WORKER_SERVICES)
def test_worker_http_binds_all_interfaces(services: dict[str, dict[str, Any]], name: str) -> None:
    assert _env(services[name])["MICROSEG_WEB_BIND"] == "0.0.0.0"


@pytest.mark.parametrize("name", WORKER_SERVICES)
def test_worker_waits_for_topic_creation(services: dict[str, dict[str, Any]], name: str) -> None:
    assert _depends_on(services[name]).get(TOPICS_SERVICE) == "service_completed_successfully"


@pytest.mark.parametrize("name", WORKER_SERVICES)
def test_worker_publishes_web_port_on_loopback(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    web_port = _container_web_port(_env(services[name]))
    ports = _ports(services[name])
    assert [container for _, _, container in ports] == [web_port]
    assert all(host_ip == "127.0.0.1" for host_ip, _, _ in ports)


def test_workers_have_distinct_host_ports(services: dict[str, dict[str, Any]]) -> None:
    host_ports = [p[1] for name in WORKER_SERVICES for p in _ports(services[name])]
    assert sorted(host_ports) == [6066, 6067]
    all_host_ports = [p[1] for service in services.values() for p in _ports(service)]
    assert len(all_host_ports) == len(set(all_host_ports)), "two services publish the same port"


def test_workers_have_own_named_data_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    sources = []
    for name in WORKER_SERVICES:
        env = _env(services[name])
        data_dir = env.get("MICROSEG_DATA_DIR", CONTAINER_DATA_DIR)
        assert data_dir == CONTAINER_DATA_DIR
        assert env.get("MICROSEG_STORE", "rocksdb://") in STORES
        mounts = [source for source, target in _volumes(services[name]) if target == data_dir]
        assert len(mounts) == 1, f"{name} must mount one volume at {data_dir}"
        assert mounts[0] in declared, f"{mounts[0]!r} is not a named volume"
        sources.append(mounts[0])
    assert len(set(sources)) == len(sources), "workers must not share a RocksDB directory"


def test_workers_are_one_consumer_group_with_distinct_hostnames(
    services: dict[str, dict[str, Any]],
) -> None:
    app_ids = {_env(services[name]).get("MICROSEG_APP_ID", "microseg") for name in WORKER_SERVICES}
    assert len(app_ids) == 1
    hostnames = [services[name].get("hostname", name) for name in WORKER_SERVICES]
    assert len(set(hostnames)) == len(hostnames)


def test_topics_and_workers_agree_on_topology(services: dict[str, dict[str, Any]]) -> None:
    topics_env = _env(services[TOPICS_SERVICE])
    for name in WORKER_SERVICES:
        worker_env = _env(services[name])
        for setting in TOPOLOGY_SETTINGS:
            assert worker_env.get(setting) == topics_env.get(setting), (
                f"{setting} differs between {TOPICS_SERVICE} and {name}"
            )


def test_replication_fits_single_broker(services: dict[str, dict[str, Any]]) -> None:
    for name in (TOPICS_SERVICE, *WORKER_SERVICES):
        env = _env(services[name])
        assert int(env.get("MICROSEG_REPLICATION_FACTOR", "1")) == 1
        assert int(env.get("MICROSEG_PARTITIONS", "6")) >= len(WORKER_SERVICES)
        assert env.get("MICROSEG_SECURITY_PROTOCOL", "PLAINTEXT") in SECURITY_PROTOCOLS


# --------------------------------------------------------------------------- compose: settings


def test_every_microseg_setting_in_compose_is_known(services: dict[str, dict[str, Any]]) -> None:
    used = {key for svc in services.values() for key in _env(svc) if key.startswith("MICROSEG_")}
    assert used, "compose sets no MICROSEG_* settings at all"
    assert used <= KNOWN_SETTINGS, f"unknown settings: {sorted(used - KNOWN_SETTINGS)}"
    # Also names that appear only in comments or ${...} interpolation.
    mentioned = set(re.findall(r"\bMICROSEG_[A-Z0-9_]+", COMPOSE_FILE.read_text(encoding="utf-8")))
    assert mentioned <= KNOWN_SETTINGS, f"unknown settings: {sorted(mentioned - KNOWN_SETTINGS)}"


def test_no_secrets_in_compose(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        password = _env(service).get("MICROSEG_SASL_PASSWORD")
        assert password is None or password.startswith("${"), f"{name} hard-codes a password"


# --------------------------------------------------------------------------- prometheus


def test_prometheus_mounts_repo_config(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services[PROMETHEUS_SERVICE]
    assert str(prometheus["image"]).startswith("prom/prometheus")
    config_path = "/etc/prometheus/prometheus.yml"
    for arg in _command(prometheus.get("command")):
        if arg.startswith("--config.file="):
            config_path = arg.split("=", 1)[1]
    mounts = dict((target, source) for source, target in _volumes(prometheus))
    assert config_path in mounts, "prometheus config is not mounted where prometheus reads it"
    source = (ROOT / mounts[config_path]).resolve()
    assert source == PROMETHEUS_FILE.resolve()
    assert [(ip, host, target) for ip, host, target in _ports(prometheus)] == [
        ("127.0.0.1", 9090, 9090)
    ]


def test_prometheus_scrapes_every_worker_on_web_port(
    services: dict[str, dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    job = jobs["microseg"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    default_interval = prometheus_config.get("global", {}).get("scrape_interval")
    interval = job.get("scrape_interval", default_interval)
    assert interval == "15s"
    targets = {t for group in job["static_configs"] for t in group["targets"]}
    expected = {f"{name}:{_container_web_port(_env(services[name]))}" for name in WORKER_SERVICES}
    assert targets == expected


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multi_stage_slim() -> None:
    froms = _dockerfile("FROM")
    args = " ".join(_dockerfile("ARG"))
    assert len(froms) >= 2, "build and runtime stages expected"
    resolved = [f.replace("${PYTHON_IMAGE}", "python:3.11-slim") for f in froms]
    assert all(f.split()[0] == "python:3.11-slim" for f in resolved), froms
    if any("${PYTHON_IMAGE}" in f for f in froms):
        assert "PYTHON_IMAGE=python:3.11-slim" in args


def test_dockerfile_expose_matches_worker_port(services: dict[str, dict[str, Any]]) -> None:
    exposed = _dockerfile_exposed_ports()
    assert exposed == {DEFAULT_WEB_PORT}
    for name in WORKER_SERVICES:
        assert _container_web_port(_env(services[name])) in exposed


def test_dockerfile_runtime_contract() -> None:
    assert [json.loads(args) for args in _dockerfile("ENTRYPOINT")][-1] == ["microseg"]
    assert [json.loads(args) for args in _dockerfile("CMD")][-1] == ["worker"]
    volumes = [v for args in _dockerfile("VOLUME") for v in json.loads(args)]
    assert CONTAINER_DATA_DIR in volumes
    users = _dockerfile("USER")
    assert users, "image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_healthcheck_uses_python_against_health() -> None:
    checks = _dockerfile("HEALTHCHECK")
    assert len(checks) == 1
    check = checks[0]
    assert "urllib" in check
    assert "/health" in check
    assert "curl" not in check
    assert "wget" not in check


def test_dockerfile_env_settings_are_known() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    mentioned = set(re.findall(r"\bMICROSEG_[A-Z0-9_]+", text))
    assert mentioned <= KNOWN_SETTINGS, f"unknown settings: {sorted(mentioned - KNOWN_SETTINGS)}"
    env = " ".join(_dockerfile("ENV"))
    assert f"MICROSEG_DATA_DIR={CONTAINER_DATA_DIR}" in env
    assert f"MICROSEG_WEB_PORT={DEFAULT_WEB_PORT}" in env


def test_dockerfile_copies_only_existing_paths() -> None:
    """COPY sources from the build context must exist in the repository (wildcards may be empty)."""
    for args in _dockerfile("COPY"):
        tokens = [t for t in args.split() if not t.startswith("--")]
        if "--from=" in args:
            continue
        for source in tokens[:-1]:
            if any(ch in source for ch in "*?["):
                continue
            assert (ROOT / PurePosixPath(source)).exists(), f"COPY source {source} missing"


# --------------------------------------------------------------------------- exported metric names

METRIC_NAME = re.compile(r"\bmicroseg_[a-z_]+\b")
SEVERITIES = {"critical", "warning"}
# The alerts issue 6 asks for.
REQUIRED_ALERTS = {
    "MicrosegDriftStorm",
    "MicrosegWorkerNotReady",
    "MicrosegNoProgressWhileLagGrows",
    "MicrosegDeadLetterRateHigh",
    "MicrosegModelTooOld",
    "MicrosegAgentErrors",
    "MicrosegErasureFailed",
}


@pytest.fixture(scope="module")
def metric_families() -> dict[str, str]:
    """{family name: type} of everything a worker's Metrics registers."""
    return {family.name: family.type for family in Metrics().registry.collect()}


@pytest.fixture(scope="module")
def exported_names(metric_families: dict[str, str]) -> set[str]:
    """Series names a worker exports. A labelled metric without children yields its family but no
    samples, so the names come from family name and type, plus any samples there are. No
    `*_created` series: `Metrics` turns them off, so a query naming one is flagged."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "gauge": ("",),
    }
    names = {name + suffix for name, kind in metric_families.items() for suffix in suffixes[kind]}
    names |= {sample.name for family in Metrics().registry.collect() for sample in family.samples}
    return names


def test_exported_names_cover_families_without_samples(exported_names: set[str]) -> None:
    # microseg_events has labels and no child yet: collect() lists it without samples.
    assert "microseg_events_total" in exported_names
    assert "microseg_batch_processing_seconds_bucket" in exported_names
    assert "microseg_ready" in exported_names
    assert "microseg_events" not in exported_names
    assert not {name for name in exported_names if name.endswith("_created")}


# --------------------------------------------------------------------------- alert rules


@pytest.fixture(scope="module")
def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    rules = [rule for group in data["groups"] for rule in group["rules"]]
    assert rules, "deploy/alerts.yml has no rules"
    return rules


def test_prometheus_loads_alert_rules(
    services: dict[str, dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    rule_files = prometheus_config.get("rule_files") or []
    assert [(PROMETHEUS_FILE.parent / f).resolve() for f in rule_files] == [ALERTS_FILE.resolve()]
    # In the container the relative path resolves beside the mounted config file.
    prometheus = services[PROMETHEUS_SERVICE]
    config_path = "/etc/prometheus/prometheus.yml"
    for arg in _command(prometheus.get("command")):
        if arg.startswith("--config.file="):
            config_path = arg.split("=", 1)[1]
    mounts = dict((target, source) for source, target in _volumes(prometheus))
    for rule_file in rule_files:
        target = str(PurePosixPath(config_path).parent / rule_file)
        assert target in mounts, f"{rule_file} is not mounted at {target}"
        assert (ROOT / mounts[target]).resolve() == ALERTS_FILE.resolve()


def test_alert_rules_are_complete(alert_rules: list[dict[str, Any]]) -> None:
    names = [rule.get("alert") for rule in alert_rules]
    assert all(names), "deploy/alerts.yml holds only alerting rules"
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) >= REQUIRED_ALERTS, f"missing alerts: {REQUIRED_ALERTS - set(names)}"
    for rule in alert_rules:
        name = rule["alert"]
        assert rule.get("expr"), name
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name} needs for:"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), name


def test_drift_alert_once_drift_metrics_exist(
    alert_rules: list[dict[str, Any]], metric_families: dict[str, str]
) -> None:
    drift_metrics = [name for name in metric_families if "drift" in name]
    drift_alerts = [rule["alert"] for rule in alert_rules if "drift" in rule["expr"]]
    if drift_metrics:
        assert drift_alerts, f"{drift_metrics} exist: add the drift storm alert to alerts.yml"
    else:
        assert not drift_alerts


# --------------------------------------------------------------------------- grafana


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template variables."""
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        exprs.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
        exprs.append(str(variable.get("definition", "")))
    return exprs


def _datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and "uid" in source:
            yield str(source["uid"])
        for value in node.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_uids(item)


def test_grafana_service(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    grafana = services[GRAFANA_SERVICE]
    image, _, tag = str(grafana["image"]).partition(":")
    assert image == "grafana/grafana"
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), "pin the Grafana image to a release"
    assert _ports(grafana) == [("127.0.0.1", 3000, 3000)]
    assert _depends_on(grafana).get(PROMETHEUS_SERVICE) == "service_started"
    env = _env(grafana)
    for key, value in env.items():
        if "PASSWORD" in key or "SECRET" in key or "TOKEN" in key:
            assert value.startswith("${"), f"{key} must come from the environment"
    if env.get("GF_AUTH_ANONYMOUS_ENABLED", "false").lower() == "true":
        assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer"
    mounts = dict((target, source) for source, target in _volumes(grafana))
    assert (ROOT / mounts["/etc/grafana/provisioning"]).resolve() == (
        GRAFANA_DIR / "provisioning"
    ).resolve()
    providers = yaml.safe_load(GRAFANA_DASHBOARDS_FILE.read_text(encoding="utf-8"))["providers"]
    [provider] = providers
    dashboards_dir = provider["options"]["path"]
    assert (ROOT / mounts[dashboards_dir]).resolve() == DASHBOARD_FILE.parent.resolve()
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert PurePosixPath(home) == PurePosixPath(dashboards_dir) / DASHBOARD_FILE.name
    state = [source for source, target in _volumes(grafana) if target == "/var/lib/grafana"]
    assert state and state[0] in set(compose.get("volumes") or {})


def test_grafana_datasource_is_compose_prometheus(
    services: dict[str, dict[str, Any]], dashboard: dict[str, Any]
) -> None:
    [source] = yaml.safe_load(GRAFANA_DATASOURCES_FILE.read_text(encoding="utf-8"))["datasources"]
    assert source["type"] == "prometheus"
    url = urlsplit(source["url"])
    container_ports = {target for _, _, target in _ports(services[PROMETHEUS_SERVICE])}
    assert (url.hostname, url.port) == (PROMETHEUS_SERVICE, 9090) and 9090 in container_ports
    assert set(_datasource_uids(dashboard)) == {source["uid"]}


def test_dashboard_panels(dashboard: dict[str, Any], metric_families: dict[str, str]) -> None:
    assert dashboard.get("uid") and dashboard.get("title")
    panels = list(_panels(dashboard))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = [panel["title"] for panel in panels]
    assert len(titles) == len(set(titles)), "panel titles must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        assert all(target.get("expr") for target in panel["targets"]), panel["title"]
    # Every metric the service exports is on the dashboard.
    text = " ".join(_dashboard_queries(dashboard))
    missing = [name for name in metric_families if not re.search(rf"\b{name}(_[a-z]+)?\b", text)]
    assert not missing, f"metrics with no dashboard panel: {missing}"


def test_metric_names_in_dashboard_and_alerts_are_exported(
    dashboard: dict[str, Any],
    alert_rules: list[dict[str, Any]],
    exported_names: set[str],
    metric_families: dict[str, str],
) -> None:
    queries = {f"dashboard: {expr}": expr for expr in _dashboard_queries(dashboard)}
    queries |= {f"alert {rule['alert']}": rule["expr"] for rule in alert_rules}
    # The promtool scenarios below must feed the alerts real series too.
    queries |= {
        f"scenario series {series['series']}": series["series"]
        for scenario in ALERT_SCENARIOS
        for series in scenario["input_series"]
    }
    unknown = {
        name: where
        for where, expr in queries.items()
        for name in METRIC_NAME.findall(expr)
        if name not in exported_names
    }
    assert not unknown, f"not exported by stream.adapters.metrics.Metrics: {unknown}"
    # Prose (panel descriptions, alert annotations) may also name a metric family.
    prose = [str(panel.get("description", "")) for panel in _panels(dashboard)]
    prose += [str(value) for rule in alert_rules for value in rule["annotations"].values()]
    known = exported_names | set(metric_families)
    unknown_prose = {name for text in prose for name in METRIC_NAME.findall(text)} - known
    assert not unknown_prose, f"descriptions name unknown metrics: {sorted(unknown_prose)}"


def test_readme_metrics_section_lists_every_metric(metric_families: dict[str, str]) -> None:
    # README "Metrics" (up to "Dashboard and alerts") names each family as it is queried:
    # `name_total` for a counter, with its labels in braces when it has any.
    readme = README_FILE.read_text(encoding="utf-8")
    section = readme.split("\n## Metrics\n", 1)[1].split("\n### Dashboard and alerts\n", 1)[0]
    missing = [
        series
        for name, kind in metric_families.items()
        for series in [name + "_total" if kind == "counter" else name]
        if not re.search(rf"`{series}(\{{[a-z_,]+\}})?`", section)
    ]
    assert not missing, f"README's Metrics section leaves out {missing}"


def test_readme_layout_names_what_deploy_holds() -> None:
    # README "Layout": the deploy/ entry (up to the next top-level entry) names each of its files.
    readme = README_FILE.read_text(encoding="utf-8")
    layout = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    entry = re.search(r"^deploy/ +(.*(?:\n {19}.*)*)", layout, re.MULTILINE)
    assert entry, "README's Layout has no deploy/ entry"
    missing = {path.name for path in (ROOT / "deploy").iterdir()} - set(
        re.findall(r"[\w.]+", entry.group(1))
    )
    assert not missing, f"Layout's deploy/ omits {missing}"


# --------------------------------------------------------------------------- promtool


def _promtool() -> str:
    for candidate in (
        Path(sys.executable).parent / "promtool",
        ROOT / ".venv" / "bin" / "promtool",
    ):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: run `make promtool` (Debian's prometheus package)")
    return found


def _run_promtool(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        [_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_promtool_check_config_and_rules() -> None:
    # check config also loads the rule files it names, relative to the config's directory.
    output = _run_promtool("check", "config", PROMETHEUS_FILE.name, cwd=PROMETHEUS_FILE.parent)
    assert "1 rule files found" in output
    _run_promtool("check", "rules", ALERTS_FILE.name, cwd=ALERTS_FILE.parent)


def _series(selector: str, values: str) -> dict[str, str]:
    """An input series of job microseg: `name{labels}` and promtool's expanding notation."""
    name, _, labels = selector.partition("{")
    return {"series": f'{name}{{job="microseg",{labels}', "values": values}


def _firing(at: str, *alerts: tuple[str, str]) -> dict[str, Any]:
    """Expect exactly these (alertname, instance) firing at `at` ("" for job-wide alerts)."""
    samples = []
    for alertname, instance in alerts:
        labels = f'alertname="{alertname}"' + (f', instance="{instance}"' if instance else "")
        samples.append({"labels": f"{{{labels}}}", "value": 1})
    return {
        "eval_time": at,
        "expr": 'count by (alertname, instance) (ALERTS{alertstate="firing"})',
        "exp_samples": samples,
    }


# Scenarios for `promtool test rules` (one sample a minute): the alerts fire when they should,
# and not for a healthy worker next to the failing one.
ALERT_SCENARIOS: list[dict[str, Any]] = [
    {  # w1 stuck: lag grows, no event processed; w2 lags as much but processes.
        "input_series": [
            _series(
                'microseg_consumer_lag_records{instance="w1",topic="clickstream",partition="0"}',
                "100+100x40",
            ),
            _series(
                'microseg_events_total{instance="w1",stream="clickstream",type="view",outcome="accepted"}',
                "5000x40",
            ),
            _series('microseg_ready{instance="w1"}', "1x40"),
            _series(
                'microseg_consumer_lag_records{instance="w2",topic="clickstream",partition="1"}',
                "100+100x40",
            ),
            _series(
                'microseg_events_total{instance="w2",stream="clickstream",type="view",outcome="accepted"}',
                "0+600x40",
            ),
            _series('microseg_ready{instance="w2"}', "1x40"),
        ],
        "promql_expr_test": [
            _firing("5m"),
            _firing("25m", ("MicrosegNoProgressWhileLagGrows", "w1")),
        ],
    },
    {  # 10% of the input dead-lettered: warning, not critical.
        "input_series": [
            _series(
                'microseg_events_total{instance="w1",stream="email",type="open",outcome="accepted"}',
                "0+1200x60",
            ),
            _series(
                'microseg_dead_letters_total{instance="w1",stream="email",reason="invalid_json"}',
                "0+120x60",
            ),
        ],
        "promql_expr_test": [_firing("10m"), _firing("40m", ("MicrosegDeadLetterRateHigh", ""))],
    },
    {  # w1 not ready for 9 minutes, w2 no longer scraped.
        "input_series": [
            _series('microseg_ready{instance="w1"}', "1x5 0x20"),
            _series('up{instance="w1"}', "1x25"),
            _series('up{instance="w2"}', "1x5 0x20"),
        ],
        "promql_expr_test": [
            _firing("5m"),
            _firing("15m", ("MicrosegWorkerNotReady", "w1"), ("MicrosegWorkerDown", "w2")),
        ],
    },
    {  # w1's model is over a day old while samples flow; w2 loaded a new one an hour ago.
        "input_series": [
            _series('microseg_model_age_seconds{instance="w1"}', "90000+60x90"),
            _series('microseg_model_age_seconds{instance="w2"}', "3600+60x90"),
            _series('microseg_feature_samples_sent_total{instance="w1"}', "0+20x90"),
        ],
        "promql_expr_test": [_firing("20m"), _firing("80m", ("MicrosegModelTooOld", "w1"))],
    },
    {  # No samples, no new model expected: an old model alone is not an alert.
        "input_series": [
            _series('microseg_model_age_seconds{instance="w1"}', "90000+60x90"),
            _series('microseg_feature_samples_sent_total{instance="w1"}', "0x90"),
        ],
        "promql_expr_test": [_firing("80m")],
    },
    {  # w1: a model-fit drift storm; w2: a few segment detections and little customer drift.
        "input_series": [
            _series(
                'microseg_drift_detections_total{instance="w1",level="model_fit",detector="adwin"}',
                "0+1x60",
            ),
            _series(
                'microseg_drift_detections_total{instance="w2",level="segment",detector="adwin"}',
                "0x30 1x30",
            ),
            _series(
                'microseg_drift_detections_total{instance="w2",level="customer",detector="page_hinkley"}',
                "0+1x60",
            ),
            _series('microseg_customers{instance="w2"}', "10000x60"),
        ],
        "promql_expr_test": [_firing("10m"), _firing("40m", ("MicrosegDriftStorm", ""))],
    },
    {  # Customer drift storm: 240 customer-level detections an hour (w1 and w2 together)
        # against 1,000 customers (600 + 400), far above 5 % of them. The alert keeps its level.
        "input_series": [
            _series(
                'microseg_drift_detections_total{instance="w1",level="customer",detector="page_hinkley"}',
                "0+2x60",
            ),
            _series(
                'microseg_drift_detections_total{instance="w2",level="customer",detector="page_hinkley"}',
                "0+2x60",
            ),
            _series('microseg_customers{instance="w1"}', "600x60"),
            _series('microseg_customers{instance="w2"}', "400x60"),
        ],
        "promql_expr_test": [
            _firing("10m"),
            _firing("40m", ("MicrosegDriftStorm", "")),
            {
                "eval_time": "40m",
                "expr": 'ALERTS{alertname="MicrosegDriftStorm",alertstate="firing"}',
                "exp_samples": [
                    {
                        "labels": 'ALERTS{alertname="MicrosegDriftStorm",alertstate="firing",'
                        'job="microseg",level="customer",severity="warning"}',
                        "value": 1,
                    }
                ],
            },
        ],
    },
    {  # One erasure fails on w1: its series is new (no increase() yet) and must still alert,
        # then clear. w1's ingest agent keeps failing; w2's trainer failed once.
        "input_series": [
            _series('microseg_agent_errors_total{instance="w1",agent="erasure"}', "_x10 1x30"),
            _series('microseg_agent_errors_total{instance="w1",agent="ingest"}', "0+1x40"),
            _series('microseg_agent_errors_total{instance="w2",agent="trainer"}', "_x5 3x35"),
        ],
        "promql_expr_test": [
            _firing("9m"),
            _firing("13m", ("MicrosegAgentErrors", "w1"), ("MicrosegErasureFailed", "w1")),
            _firing("35m", ("MicrosegAgentErrors", "w1")),
        ],
    },
]


def test_alert_rules_fire_as_intended(tmp_path: Path) -> None:
    tests = [{"interval": "1m", **scenario} for scenario in ALERT_SCENARIOS]
    spec = {"rule_files": [str(ALERTS_FILE)], "evaluation_interval": "1m", "tests": tests}
    spec_file = tmp_path / "alerts_test.yml"
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    _run_promtool("test", "rules", spec_file.name, cwd=tmp_path)

"""Wiring checks for docker-compose.yml, deploy/Dockerfile and deploy/prometheus.yml.

These read the files only; they need neither Docker nor a broker.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stream.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus.yml"

# Every setting microseg reads from the environment, from stream.config.Settings itself: a
# MICROSEG_* name used in the deployment files that is not here would be silently ignored.
KNOWN_SETTINGS = frozenset("MICROSEG_" + name.upper() for name in Settings.model_fields)
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

MAX_INPUT_MESSAGE_BYTES = 2 * 1024 * 1024


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


def test_kafka_accepts_large_input_messages(kafka_env: dict[str, str]) -> None:
    assert int(kafka_env["KAFKA_MESSAGE_MAX_BYTES"]) > MAX_INPUT_MESSAGE_BYTES


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

"""Settings: validated once, failing with the variable's name and what it accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.config import Settings, parse_brokers
from stream.errors import ConfigError, MicrosegError
from tests.factories import clear_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings(monkeypatch)


def test_defaults_are_safe() -> None:
    s = Settings.load()
    assert s.brokers is None  # the embedded broker
    assert s.web_bind == "127.0.0.1"
    assert not s.web_expose_tables
    assert s.partitions == 6 and s.store == "rocksdb://"


@pytest.mark.parametrize(
    ("value", "hosts"),
    [
        ("kafka://a:9092", ["a:9092"]),
        ("a:1,b:2", ["a:1", "b:2"]),
        (
            "kafka://10.0.0.1:9092, broker-2.internal:9093",
            ["10.0.0.1:9092", "broker-2.internal:9093"],
        ),
    ],
)
def test_broker_forms(value: str, hosts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MICROSEG_BROKER", value)
    assert Settings.load().brokers == hosts
    assert parse_brokers(value) == hosts


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("MICROSEG_BROKER", "http://a:1", "MICROSEG_BROKER"),
        ("MICROSEG_BROKER", "a:99999", "port in 1-65535"),
        ("MICROSEG_PARTITIONS", "0", "MICROSEG_PARTITIONS"),
        ("MICROSEG_LAPSE_GRACE", "0.5", "MICROSEG_LAPSE_GRACE"),
        ("MICROSEG_PARTITIONS", "many", "MICROSEG_PARTITIONS"),
        ("MICROSEG_WEB_BIND", "everywhere", "MICROSEG_WEB_BIND"),
        ("MICROSEG_WEB_PORT", "70000", "MICROSEG_WEB_PORT"),
        ("MICROSEG_STORE", "redis://", "rocksdb://"),
        ("MICROSEG_TOPIC_EMAIL", "bad topic!", "MICROSEG_TOPIC_EMAIL"),
        ("MICROSEG_BROKER_KIND", "pulsar", "MICROSEG_BROKER_KIND"),
        ("MICROSEG_REPLAY_RUN_EVENTS", "500", "must be 0 (the offline replay's whole queue"),
        ("MICROSEG_REPLAY_RUN_EVENTS", "-1", "MICROSEG_REPLAY_RUN_EVENTS"),
        ("MICROSEG_DATA_DIR", "", "MICROSEG_DATA_DIR: Value error, must not be empty"),
        ("MICROSEG_DATA_DIR", " ", "MICROSEG_DATA_DIR"),
    ],
)
def test_bad_values_fail_fast_naming_the_setting(
    var: str, value: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        Settings.load()
    assert says in str(err.value)
    assert isinstance(err.value, MicrosegError)


def test_a_check_of_several_settings_says_just_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MICROSEG_MAX_SEGMENTS", "5")
    with pytest.raises(ConfigError) as err:
        Settings.load()
    assert str(err.value) == (
        "invalid settings:\n  MICROSEG_MAX_SEGMENTS (5) must be at least MICROSEG_SEGMENTS (6)"
    )


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("MICROSEG_TOPIC_CLICKSTREAM", "MICROSEG_TOPIC_EMAIL"),
        ("MICROSEG_TOPIC_PURCHASES", "MICROSEG_TOPIC_DEAD_LETTER"),
        ("MICROSEG_TOPIC_SEGMENT_MODEL", "MICROSEG_TOPIC_FEATURE_SAMPLES"),
    ],
)
def test_two_topics_of_one_name_are_refused_naming_both(
    first: str, second: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(first, "c2")
    monkeypatch.setenv(second, "c2")
    with pytest.raises(ConfigError) as err:
        Settings.load()
    assert f"{first} and {second} are both 'c2'" in str(err.value)


def test_a_topic_may_take_another_topic_s_default_name_when_that_one_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MICROSEG_TOPIC_CLICKSTREAM", "email")
    monkeypatch.setenv("MICROSEG_TOPIC_EMAIL", "mail")
    assert Settings.load().input_topics["clickstream"] == "email"


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_api_token_is_unset_so_erasure_stays_off(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSEG_API_TOKEN", value)
    assert Settings.load().api_token is None
    monkeypatch.setenv("MICROSEG_API_TOKEN", "s3cret")
    token = Settings.load().api_token
    assert token is not None and token.get_secret_value() == "s3cret"


def test_sasl_needs_credentials_and_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MICROSEG_BROKER", "kafka:9092")
    monkeypatch.setenv("MICROSEG_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigError, match="MICROSEG_SASL_MECHANISM"):
        Settings.load()
    monkeypatch.setenv("MICROSEG_SASL_MECHANISM", "SCRAM-SHA-512")
    with pytest.raises(ConfigError, match="MICROSEG_SASL_USERNAME"):
        Settings.load()
    monkeypatch.setenv("MICROSEG_SASL_USERNAME", "svc")
    monkeypatch.setenv("MICROSEG_SASL_PASSWORD", "hunter2-secret")
    s = Settings.load()
    assert "hunter2-secret" not in repr(s) and "hunter2-secret" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"MICROSEG_SECURITY_PROTOCOL": "SSL"}, "MICROSEG_SECURITY_PROTOCOL=SSL"),
        (
            {
                "MICROSEG_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "MICROSEG_SASL_MECHANISM": "PLAIN",
                "MICROSEG_SASL_USERNAME": "svc",
                "MICROSEG_SASL_PASSWORD": "hunter2-secret",
            },
            "MICROSEG_SECURITY_PROTOCOL=SASL_PLAINTEXT, MICROSEG_SASL_MECHANISM, "
            "MICROSEG_SASL_USERNAME, MICROSEG_SASL_PASSWORD",
        ),
        ({"MICROSEG_SASL_USERNAME": "svc"}, "MICROSEG_SASL_USERNAME"),
        ({"MICROSEG_SSL_CAFILE": "/etc/ca.pem"}, "MICROSEG_SSL_CAFILE"),
    ],
)
def test_tls_or_sasl_without_a_broker_is_refused_the_embedded_one_is_plaintext(
    env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as err:
        Settings.load()
    msg = str(err.value)
    assert "embedded broker" in msg and "PLAINTEXT only" in msg and "set MICROSEG_BROKER" in msg
    assert msg.endswith(says) and "hunter2-secret" not in msg
    monkeypatch.setenv("MICROSEG_BROKER", "kafka:9092")
    if env.keys() in ({"MICROSEG_SASL_USERNAME"}, {"MICROSEG_SSL_CAFILE"}):  # with PLAINTEXT:
        with pytest.raises(ConfigError, match="MICROSEG_SECURITY_PROTOCOL=PLAINTEXT does not"):
            Settings.load()  # see the tests below
    else:
        Settings.load()  # with a broker, the same settings are its connection's


@pytest.mark.parametrize(
    ("protocol", "env", "says"),
    [
        (
            "PLAINTEXT",
            {"MICROSEG_SASL_PASSWORD": "hunter2-secret"},
            "MICROSEG_SASL_PASSWORD is set",
        ),
        ("PLAINTEXT", {"MICROSEG_SASL_USERNAME": "svc"}, "MICROSEG_SASL_USERNAME is set"),
        ("SSL", {"MICROSEG_SASL_MECHANISM": "PLAIN"}, "MICROSEG_SASL_MECHANISM is set"),
        (
            "SSL",
            {
                "MICROSEG_SASL_MECHANISM": "SCRAM-SHA-512",
                "MICROSEG_SASL_USERNAME": "svc",
                "MICROSEG_SASL_PASSWORD": "hunter2-secret",
            },
            "MICROSEG_SASL_MECHANISM, MICROSEG_SASL_USERNAME, MICROSEG_SASL_PASSWORD are set",
        ),
    ],
)
def test_sasl_settings_without_a_sasl_protocol_are_refused_not_ignored(
    protocol: str, env: dict[str, str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSEG_BROKER", "kafka:9092")
    monkeypatch.setenv("MICROSEG_SECURITY_PROTOCOL", protocol)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as err:
        Settings.load()
    msg = str(err.value)
    assert msg.startswith(
        f"{says}, but MICROSEG_SECURITY_PROTOCOL={protocol} does not authenticate"
    )
    assert "set MICROSEG_SECURITY_PROTOCOL=SASL_SSL" in msg and "hunter2-secret" not in msg
    monkeypatch.setenv("MICROSEG_SECURITY_PROTOCOL", "SASL_SSL")
    if env.keys() == {
        "MICROSEG_SASL_MECHANISM",
        "MICROSEG_SASL_USERNAME",
        "MICROSEG_SASL_PASSWORD",
    }:
        assert Settings.load().security_protocol == "SASL_SSL"  # the fix the message names


def test_settings_are_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"MICROSEG_{name.upper()}" in readme, f"MICROSEG_{name.upper()} missing from README"


def test_every_feature_is_documented_in_the_readme() -> None:
    from pathlib import Path

    from stream.core.features import FEATURES

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for f in FEATURES:
        assert f"| `{f.name}` | {f.meaning} |" in readme, f"{f.name} missing or stale in README"


# Misspelt names are built from parts, so that the scan of the repository below does not find them.
@pytest.mark.parametrize(
    ("var", "meant"),
    [
        ("MICROSEG_" + "LOGLEVEL", "MICROSEG_LOG_LEVEL"),
        ("MICROSEG_" + "PARTITION", "MICROSEG_PARTITIONS"),
        ("microseg_" + "sasl_pasword", "MICROSEG_SASL_PASSWORD"),  # Settings ignores case too
    ],
)
def test_a_misspelt_setting_is_refused_with_the_nearest_name(
    var: str, meant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(var, "hunter2-secret")
    with pytest.raises(ConfigError) as err:
        Settings.load()
    msg = str(err.value)
    assert f"{var} is not a setting (did you mean {meant}?): rename or unset it" in msg
    assert "hunter2-secret" not in msg


def test_an_unknown_setting_far_from_any_is_refused_without_a_guess(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    var = "MICROSEG_" + "XYZZY"
    monkeypatch.setenv(var, "1")
    with pytest.raises(ConfigError) as err:
        Settings.load()
    assert str(err.value).endswith(f"\n  {var} is not a setting: rename or unset it")


def _used_in_the_repository() -> set[str]:
    """Every MICROSEG_* name written out in the code, tests, scripts, CI, deployment and docs."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    name = re.compile(r"\bMICROSEG_[A-Z0-9_]*[A-Z0-9]\b")  # not prefixes such as MICROSEG_TOPIC_
    places = ["stream", "tests", "scripts", "docs", "deploy", ".ci", "Makefile",
              "docker-compose.yml", "README.md", "BENCHMARKS.md", "EVALUATION.md", "pyproject.toml"]  # fmt: skip
    used: set[str] = set()
    for place in places:
        top = root / place
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        for f in files:
            if f.is_file() and f.suffix != ".gz" and f.stat().st_size < 2_000_000:
                used |= set(name.findall(f.read_bytes().decode("utf-8", "replace")))
    return used


def test_every_setting_the_repository_uses_is_accepted() -> None:
    from stream.config import KNOWN_VARIABLES, check_names

    used = _used_in_the_repository()
    assert {"MICROSEG_BROKER_KIND", "MICROSEG_DATA_DIR", "MICROSEG_SASL_PASSWORD"} <= used
    assert used <= KNOWN_VARIABLES, sorted(used - KNOWN_VARIABLES)
    check_names(dict.fromkeys(used, "1"))


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"])
def test_a_ca_file_without_tls_is_refused_not_ignored(
    protocol: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("MICROSEG_BROKER", "kafka:9093")
    monkeypatch.setenv("MICROSEG_SECURITY_PROTOCOL", protocol)
    monkeypatch.setenv("MICROSEG_SSL_CAFILE", str(ca))
    if protocol.startswith("SASL"):
        monkeypatch.setenv("MICROSEG_SASL_MECHANISM", "PLAIN")
        monkeypatch.setenv("MICROSEG_SASL_USERNAME", "svc")
        monkeypatch.setenv("MICROSEG_SASL_PASSWORD", "hunter2-secret")
    if protocol.endswith("SSL"):
        assert Settings.load().ssl_cafile is not None
        return
    with pytest.raises(ConfigError) as err:
        Settings.load()
    assert str(err.value).startswith(
        f"MICROSEG_SSL_CAFILE is set, but MICROSEG_SECURITY_PROTOCOL={protocol} does not use TLS"
    )


@pytest.mark.parametrize("where", ["missing.pem", "."])
def test_a_ca_file_that_is_not_a_file_is_refused_at_start_up(
    where: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not a connection failure half a minute later ("cannot reach Kafka")."""
    ca = tmp_path / where
    monkeypatch.setenv("MICROSEG_BROKER", "kafka:9093")
    monkeypatch.setenv("MICROSEG_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("MICROSEG_SSL_CAFILE", str(ca))
    with pytest.raises(ConfigError) as err:
        Settings.load()
    what = "does not exist" if where == "missing.pem" else "is a directory"
    assert str(err.value) == (
        f"MICROSEG_SSL_CAFILE={ca} {what}: set it to the file of the brokers' CA certificates (PEM)"
    )

"""services/config.py: settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.config import ConfigError, Settings


def test_defaults():
    settings = Settings.from_env({})
    assert settings.http_port == 8080
    assert settings.http_host == "127.0.0.1"
    assert settings.partitions == 4
    assert settings.webhook_retry_base_s == 5.0
    assert settings.webhook_allow_private is False
    assert settings.kafka_bootstrap == ""
    assert settings.admin_token == ""
    assert settings.log_level == "INFO" and settings.log_format == "text"
    assert settings.data_dir == Path("./var")
    assert settings.clickhouse_url == f"chdb://{Path('./var') / 'chdb'}"


def test_default_clickhouse_url_follows_data_dir(tmp_path):
    settings = Settings.from_env({"FUNDWATCH_DATA_DIR": str(tmp_path)})
    assert settings.data_dir == tmp_path
    assert settings.clickhouse_url == f"chdb://{tmp_path}/chdb"


def test_default_clickhouse_url_follows_overridden_data_dir(tmp_path):
    settings = Settings.from_env({}, data_dir=tmp_path)
    assert settings.clickhouse_url == f"chdb://{tmp_path}/chdb"


def test_environment_values_read():
    settings = Settings.from_env(
        {
            "FUNDWATCH_HTTP_PORT": "9000",
            "FUNDWATCH_PARTITIONS": "16",
            "FUNDWATCH_WEBHOOK_RETRY_BASE_S": "0.5",
            "FUNDWATCH_WEBHOOK_ALLOW_PRIVATE": "yes",
            "FUNDWATCH_CLICKHOUSE_URL": "clickhouse://ch:9000/fw",
            "FUNDWATCH_KAFKA_BOOTSTRAP": "kafka:9092",
            "FUNDWATCH_LOG_LEVEL": "debug",
            "FUNDWATCH_LOG_FORMAT": "JSON",
        }
    )
    assert settings.http_port == 9000
    assert settings.partitions == 16
    assert settings.webhook_retry_base_s == 0.5
    assert settings.webhook_allow_private is True
    assert settings.clickhouse_url == "clickhouse://ch:9000/fw"
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.log_level == "DEBUG" and settings.log_format == "json"


def test_empty_values_mean_default():
    settings = Settings.from_env(
        {"FUNDWATCH_HTTP_PORT": "", "FUNDWATCH_PARTITIONS": "", "FUNDWATCH_WEBHOOK_ALLOW_PRIVATE": ""}
    )
    assert (settings.http_port, settings.partitions, settings.webhook_allow_private) == (8080, 4, False)


def test_overrides_win_over_environment():
    settings = Settings.from_env(
        {"FUNDWATCH_HTTP_PORT": "9000", "FUNDWATCH_PARTITIONS": "8"}, http_port=9100, partitions=2
    )
    assert settings.http_port == 9100
    assert settings.partitions == 2


def test_none_overrides_ignored():
    assert Settings.from_env({"FUNDWATCH_HTTP_PORT": "9000"}, http_port=None).http_port == 9000


@pytest.mark.parametrize("raw", ["1", "true", "YES", "on"])
def test_flag_true_spellings(raw):
    assert Settings.from_env({"FUNDWATCH_WEBHOOK_ALLOW_PRIVATE": raw}).webhook_allow_private is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off"])
def test_flag_false_spellings(raw):
    assert Settings.from_env({"FUNDWATCH_WEBHOOK_ALLOW_PRIVATE": raw}).webhook_allow_private is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FUNDWATCH_HTTP_PORT", "abc"),
        ("FUNDWATCH_HTTP_PORT", "70000"),
        ("FUNDWATCH_HTTP_PORT", "80.5"),
        ("FUNDWATCH_PARTITIONS", "0"),
        ("FUNDWATCH_PARTITIONS", "-1"),
        ("FUNDWATCH_PARTITIONS", "2000"),
        ("FUNDWATCH_WEBHOOK_ALLOW_PRIVATE", "maybe"),
        ("FUNDWATCH_WEBHOOK_RETRY_BASE_S", "soon"),
        ("FUNDWATCH_WEBHOOK_RETRY_BASE_S", "0"),
        ("FUNDWATCH_FLUSH_INTERVAL_S", "-1"),
        ("FUNDWATCH_COMMIT_INTERVAL_S", "0"),
        ("FUNDWATCH_COMMIT_INTERVAL_S", "61"),
        ("FUNDWATCH_COMMIT_INTERVAL_S", "nan"),
        ("FUNDWATCH_COMMIT_INTERVAL_S", "often"),
        ("FUNDWATCH_CLICKHOUSE_URL", "mysql://x"),
        ("FUNDWATCH_LOG_LEVEL", "verbose"),
        ("FUNDWATCH_LOG_FORMAT", "xml"),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert name in str(info.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_port_bounds_accepted():
    assert Settings.from_env({"FUNDWATCH_HTTP_PORT": "0"}).http_port == 0
    assert Settings.from_env({"FUNDWATCH_HTTP_PORT": "65535"}).http_port == 65535


@pytest.mark.parametrize("url", ["chdb:///srv/fw", "clickhouse://h:9000/db", "clickhouses://h:9440/db"])
def test_clickhouse_url_schemes_accepted(url):
    assert Settings.from_env({"FUNDWATCH_CLICKHOUSE_URL": url}).clickhouse_url == url


def test_describe_hides_admin_token():
    settings = Settings.from_env({"FUNDWATCH_ADMIN_TOKEN": "fw_admin_s3cr3t-value"})
    text = settings.describe()
    assert "s3cr3t" not in text
    assert "admin_token=(set)" in text


def test_describe_says_generated_without_admin_token():
    assert "admin_token=(generated)" in Settings.from_env({}).describe()


def test_repr_hides_admin_token():
    assert "s3cr3t" not in repr(Settings.from_env({"FUNDWATCH_ADMIN_TOKEN": "fw_admin_s3cr3t-value"}))


def test_describe_hides_clickhouse_password():
    settings = Settings.from_env(
        {"FUNDWATCH_CLICKHOUSE_URL": "clickhouse://fw:hunter2@db.internal:9000/fundwatch"}
    )
    text = settings.describe()
    assert "hunter2" not in text
    assert "fw:" not in text
    assert "clickhouse_url=clickhouse://***@db.internal:9000/fundwatch" in text


def test_describe_shows_url_without_credentials_unchanged():
    text = Settings.from_env({"FUNDWATCH_CLICKHOUSE_URL": "clickhouse://db:9000/fw"}).describe()
    assert "clickhouse_url=clickhouse://db:9000/fw" in text


def test_describe_shows_plain_settings():
    text = Settings.from_env({"FUNDWATCH_HTTP_PORT": "9000"}).describe()
    assert "http_port=9000" in text
    assert "partitions=4" in text


def test_describe_hides_clickhouse_password_containing_at_sign():
    settings = Settings.from_env({"FUNDWATCH_CLICKHOUSE_URL": "clickhouse://fw:p@ssw0rd@db:9000/fundwatch"})
    text = settings.describe()
    assert "ssw0rd" not in text
    assert "clickhouse_url=clickhouse://***@db:9000/fundwatch" in text


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.http_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("process", "port"), [("run", 8080), ("gateway", 8080), ("worker", 8081), ("dispatcher", 8082)]
)
def test_each_process_kind_has_a_default_port_of_its_own(process, port):
    assert Settings.from_env({}, process=process).http_port == port


@pytest.mark.parametrize("process", ["run", "gateway", "worker", "dispatcher"])
def test_the_port_variable_and_flag_override_every_kinds_default(process):
    assert Settings.from_env({"FUNDWATCH_HTTP_PORT": "9001"}, process=process).http_port == 9001
    assert Settings.from_env({"FUNDWATCH_HTTP_PORT": "9001"}, process=process, http_port=9002).http_port == 9002


def test_max_future_defaults_to_an_hour_and_is_read_and_checked():
    assert Settings.from_env({}).max_future_s == 3600
    assert Settings.from_env({"FUNDWATCH_MAX_FUTURE_S": "600"}).max_future_s == 600
    assert Settings.from_env({"FUNDWATCH_MAX_FUTURE_S": "600"}, max_future_s=60).max_future_s == 60
    for bad in ("soon", "-1"):
        with pytest.raises(ConfigError, match="FUNDWATCH_MAX_FUTURE_S"):
            Settings.from_env({"FUNDWATCH_MAX_FUTURE_S": bad})
    with pytest.raises(ConfigError, match="FUNDWATCH_MAX_FUTURE_S"):
        Settings.from_env({}, max_future_s=-5)


def test_commit_interval_default_and_override():
    assert Settings.from_env({}).commit_interval_s == 3.0
    assert Settings.from_env({"FUNDWATCH_COMMIT_INTERVAL_S": "1"}).commit_interval_s == 1.0
    assert Settings.from_env({"FUNDWATCH_COMMIT_INTERVAL_S": "60"}).commit_interval_s == 60.0

from pathlib import Path

import pytest

from foodflow.platform.config import Settings


def test_defaults_are_the_seed_design(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for field in Settings.model_fields.values():
        if field.alias:
            monkeypatch.delenv(field.alias, raising=False)
    # A state directory of its own: the checkout's may record a cluster (`up --brokers 3`).
    monkeypatch.setenv("FOODFLOW_STATE_DIR", str(tmp_path / ".state"))
    s = Settings()
    assert (s.postgres_user, s.postgres_password, s.postgres_db) == (
        "user",
        "password",
        "food_delivery_db",
    )
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.postgres_dsn == "postgresql://user:password@127.0.0.1:5432/food_delivery_db"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.topic_partitions >= 3


def test_dotenv_overrides_defaults_and_environment_overrides_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("POSTGRES_USER=alice\nPOSTGRES_DB=orders\nKAFKA_PORT=19092\n")
    monkeypatch.delenv("POSTGRES_USER", raising=False)
    monkeypatch.delenv("KAFKA_PORT", raising=False)
    monkeypatch.setenv("POSTGRES_DB", "from_env")
    s = Settings()
    assert s.postgres_user == "alice"
    assert s.postgres_db == "from_env"
    assert s.kafka_bootstrap == "127.0.0.1:19092"


def test_invalid_values_are_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_PORT", "not-a-port")
    with pytest.raises(ValueError, match="KAFKA_PORT"):
        Settings()
    monkeypatch.setenv("KAFKA_PORT", "9092")
    monkeypatch.setenv("FOODFLOW_TOPIC_PARTITIONS", "0")
    with pytest.raises(ValueError, match="FOODFLOW_TOPIC_PARTITIONS"):
        Settings()


def test_service_urls_default_to_the_service_host_and_can_be_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("INVENTORY_URL", "PRICING_URL", "FOODFLOW_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("INVENTORY_PORT", "8001")
    monkeypatch.setenv("PRICING_PORT", "8002")
    s = Settings()
    assert s.inventory_url == "http://127.0.0.1:8001"
    assert s.pricing_url == "http://127.0.0.1:8002"

    monkeypatch.setenv("FOODFLOW_SERVICE_HOST", "0.0.0.0")
    monkeypatch.setenv("INVENTORY_URL", "http://inventory_service:8001")
    monkeypatch.setenv("PRICING_URL", "http://pricing_service:8002")
    s = Settings()
    assert s.inventory_url == "http://inventory_service:8001"
    assert s.pricing_url == "http://pricing_service:8002"
    assert s.service_host == "0.0.0.0"

"""One validated settings object for every foodflow process.

Values come from (highest first) environment variables, a `.env` file in the working
directory, then the defaults below. Read it once with `get_settings()`.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, computed_field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[3]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # --- infrastructure -------------------------------------------------------------------
    state_dir: Path = Field(PROJECT_ROOT / ".state", alias="FOODFLOW_STATE_DIR")
    kafka_host: str = Field("127.0.0.1", alias="KAFKA_HOST")
    kafka_port: int = Field(9092, alias="KAFKA_PORT", ge=1, le=65535)
    kafka_controller_port: int = Field(9093, alias="KAFKA_CONTROLLER_PORT", ge=1, le=65535)
    # Kafka nodes `foodflow infra up` runs, each a combined KRaft controller+broker: 1, or a
    # replicated cluster of 3 (or 5) voters. Node n listens on KAFKA_PORT + 10*(n-1) and
    # KAFKA_CONTROLLER_PORT + 10*(n-1). Unset: what `infra up` last recorded in the state
    # directory (`<state>/kafka-brokers`), so that a later plain command finds the cluster
    # that runs; else 1. An even count is refused: it tolerates no more failures than one
    # fewer voter would and needs one more JVM.
    kafka_brokers: int = Field(1, alias="KAFKA_BROKERS", ge=1, le=5)
    # Every broker's address, comma-separated, when they are not all on KAFKA_HOST at the
    # ports above (Docker Compose, Kubernetes: one host per broker). Unset: derived.
    kafka_bootstrap_override: str | None = Field(None, alias="KAFKA_BOOTSTRAP_SERVERS")
    # Each node's JVM heap. Unset: 768m for one node, 512m each for a cluster (three JVMs
    # share the machine with PostgreSQL, Redis and the services; 512m holds 12 partitions
    # of each topic with room to spare).
    kafka_heap: str = Field("768m", alias="KAFKA_HEAP", pattern=r"^\d+[mg]$")
    kafka_version: str = Field("4.1.1", alias="KAFKA_VERSION")
    # Partitions of each topic `infra up` creates. Unset: 3 for one node, 12 for a cluster
    # (enough for 3 order managers to get 4 each, and for more instances to come).
    topic_partitions: int = Field(3, alias="FOODFLOW_TOPIC_PARTITIONS", ge=1, le=256)

    postgres_host: str = Field("127.0.0.1", alias="POSTGRES_HOST")
    postgres_port: int = Field(5432, alias="POSTGRES_PORT", ge=1, le=65535)
    postgres_user: str = Field("user", alias="POSTGRES_USER", min_length=1)
    postgres_password: str = Field("password", alias="POSTGRES_PASSWORD")
    postgres_db: str = Field("food_delivery_db", alias="POSTGRES_DB", min_length=1)

    redis_host: str = Field("127.0.0.1", alias="REDIS_HOST")
    redis_port: int = Field(6379, alias="REDIS_PORT", ge=1, le=65535)

    # --- services ---------------------------------------------------------------------------
    service_host: str = Field("127.0.0.1", alias="FOODFLOW_SERVICE_HOST")
    inventory_port: int = Field(8001, alias="INVENTORY_PORT")
    pricing_port: int = Field(8002, alias="PRICING_PORT")
    order_manager_port: int = Field(8005, alias="ORDER_MANAGER_PORT")
    order_writer_port: int = Field(8006, alias="ORDER_WRITER_PORT")
    gateway_port: int = Field(8000, alias="GATEWAY_PORT")
    payment_port: int = Field(8003, alias="PAYMENT_PORT")
    delivery_port: int = Field(8004, alias="DELIVERY_PORT")
    restaurant_port: int = Field(8007, alias="RESTAURANT_PORT")
    # Full base URLs of the called services, for when they are not all on FOODFLOW_SERVICE_HOST
    # (Docker Compose: one host per service). Unset: service_url(port).
    inventory_url_override: str | None = Field(None, alias="INVENTORY_URL")
    pricing_url_override: str | None = Field(None, alias="PRICING_URL")
    payment_url_override: str | None = Field(None, alias="PAYMENT_URL")
    delivery_url_override: str | None = Field(None, alias="DELIVERY_URL")
    restaurant_url_override: str | None = Field(None, alias="RESTAURANT_URL")

    # The simulated payment provider's latency, taken by every authorisation on its own (many
    # answered at once, as a real provider's API does): log-normal, with this median and a
    # 99th percentile PAYMENT_DELAY_TAIL times it (0.3 s and 3: 1 in 100 takes over 0.9 s).
    payment_delay_seconds: float = Field(0.3, alias="PAYMENT_DELAY_SECONDS", ge=0, le=60)
    payment_delay_tail: float = Field(3.0, alias="PAYMENT_DELAY_TAIL", ge=1, le=20)
    # How long the `tok_timeout` test card keeps the caller waiting (beyond its timeout).
    payment_slow_seconds: float = Field(10.0, alias="PAYMENT_SLOW_SECONDS", ge=0, le=300)
    # Delivery: how long a confirmed order may wait for a free courier before it is cancelled
    # and refunded; average courier speed for the ETA; how often waiting orders are retried.
    courier_wait_limit_seconds: float = Field(600.0, alias="COURIER_WAIT_LIMIT_SECONDS", gt=0)
    courier_speed_kmh: float = Field(20.0, alias="COURIER_SPEED_KMH", gt=0)
    dispatch_interval_seconds: float = Field(0.5, alias="DISPATCH_INTERVAL_SECONDS", gt=0)
    # Restaurants: how long a restaurant has to accept or reject a confirmed order before it is
    # rejected for it (RESTAURANT_TIMEOUT: refunded, stock returned), and how often tickets are
    # looked at for it.
    restaurant_accept_timeout_seconds: float = Field(
        180.0, alias="RESTAURANT_ACCEPT_TIMEOUT_SECONDS", gt=0, le=86400
    )
    restaurant_sweep_interval_seconds: float = Field(
        1.0, alias="RESTAURANT_SWEEP_INTERVAL_SECONDS", gt=0, le=600
    )
    # Dispatch timed to the kitchen: a courier is assigned when riding to the restaurant at
    # COURIER_SPEED_KMH would bring them there by the ready-by time, up to this much early.
    dispatch_tolerance_seconds: float = Field(30.0, alias="DISPATCH_TOLERANCE_SECONDS", ge=0)
    # The demo's kitchens (the simulator plays every seeded restaurant's staff): real seconds
    # per minute of preparation (0.5: a 10-minute dish is ready in 5 s); the share of orders
    # they reject (chaos); restaurants whose staff never answer (comma-separated ids, chaos).
    kitchen_sim_seconds_per_minute: float = Field(
        0.5, alias="KITCHEN_SIM_SECONDS_PER_MINUTE", ge=0, le=60
    )
    kitchen_sim_reject_share: float = Field(0.0, alias="KITCHEN_SIM_REJECT_SHARE", ge=0, le=1)
    kitchen_sim_silent: str = Field("", alias="KITCHEN_SIM_SILENT", max_length=1000)
    # The courier simulator (`foodflow couriers simulate`, `foodflow.tools.couriers`): whether
    # `foodflow up` runs it, supervised, for a local system's demo (false for a real
    # deployment, where couriers report their own steps); the speed its couriers ride at, high
    # so that a demo order is DELIVERED seconds after its courier is assigned (3,600 km/h: a
    # 3 km ride takes 3 s; 20 is a bicycle); how often a courier asks for work (and, riding,
    # whether the order is still theirs).
    courier_simulator: bool = Field(True, alias="COURIER_SIMULATOR")
    courier_sim_speed_kmh: float = Field(3600.0, alias="COURIER_SIM_SPEED_KMH", gt=0, le=1e6)
    courier_sim_poll_seconds: float = Field(2.0, alias="COURIER_SIM_POLL_SECONDS", gt=0, le=60)
    order_status_ttl_seconds: int = Field(86400, alias="ORDER_STATUS_TTL_SECONDS", ge=1)
    max_in_flight_orders: int = Field(500, alias="MAX_IN_FLIGHT_ORDERS", ge=1)
    order_timeout_seconds: float = Field(30.0, alias="ORDER_TIMEOUT_SECONDS", gt=0)
    # Orders still not final this long after they arrived are re-driven by the sweeper: longer
    # than an order may wait out an outage (DEPENDENCY_GRACE_SECONDS + ORDER_TIMEOUT_SECONDS).
    stuck_order_after_seconds: float = Field(120.0, alias="STUCK_ORDER_AFTER_SECONDS", gt=0)
    sweep_interval_seconds: float = Field(10.0, alias="SWEEP_INTERVAL_SECONDS", gt=0)
    # An order's state (`order_state`) is kept this long after it left the saga: a message
    # replayed within it is recognised. Longer than Kafka keeps `validated_orders` (7 days).
    order_state_retention_days: float = Field(30.0, alias="ORDER_STATE_RETENTION_DAYS", gt=0)
    # A reservation neither committed nor released this long is given back by inventory.
    reservation_ttl_seconds: float = Field(120.0, alias="RESERVATION_TTL_SECONDS", gt=0)
    consume_batch_size: int = Field(500, alias="CONSUME_BATCH_SIZE", ge=1)
    # A fetch is answered as soon as there is anything to read, and held at most this long
    # when there is nothing: a long poll while idle (Kafka's own defaults); batching under
    # load is the consumer's linger, below. The former 64 KiB / 20 ms woke every consumer 50
    # times a second, loaded or not.
    kafka_fetch_min_bytes: int = Field(1, alias="KAFKA_FETCH_MIN_BYTES", ge=1)
    kafka_fetch_wait_ms: int = Field(500, alias="KAFKA_FETCH_WAIT_MS", ge=0, le=5000)
    # A consumer hands over at most one batch every this many ms (sooner when it holds
    # CONSUME_BATCH_SIZE messages); the first message after a quiet spell goes at once. Under
    # a steady light load orders then travel a few at a time instead of one by one, each
    # batch costing its handler requests and a transaction. Measured at 100 orders/s
    # (docs/benchmarks.md): 50 ms took a quarter off the CPU and lowered p99 against none.
    kafka_consume_linger_ms: int = Field(50, alias="KAFKA_CONSUME_LINGER_MS", ge=0, le=1000)
    # Consumers commit the offsets of handled batches at most this often (0: after each).
    kafka_commit_interval_ms: int = Field(200, alias="KAFKA_COMMIT_INTERVAL_MS", ge=0, le=10000)
    # Batches the order manager reads ahead while earlier ones are still in hand (offsets are
    # committed in order all the same); 1 is the seed's one-batch-at-a-time model.
    # The window is also bounded by MAX_IN_FLIGHT_ORDERS messages, which binds first under
    # load; batches are small under light load (what has arrived is handed over at once).
    consume_batches_in_flight: int = Field(1024, alias="CONSUME_BATCHES_IN_FLIGHT", ge=1, le=1024)
    # A message a failing batch was bisected down to is tried alone this often before its dead
    # letter (a batch that fails because a dependency is down is retried whole instead).
    poison_attempts: int = Field(3, alias="POISON_ATTEMPTS", ge=1, le=20)
    http_timeout_seconds: float = Field(3.0, alias="HTTP_TIMEOUT_SECONDS", gt=0)
    # Enough retries (with backoff up to 2 s) to outlast a restart of the called service.
    http_retries: int = Field(6, alias="HTTP_RETRIES", ge=0, le=10)
    # The order manager's calls to inventory, pricing and payment travel in batches
    # (foodflow.platform.http.batching): at most this many items a request, this many
    # requests out at once per endpoint. 1 and 1 give the one-call-per-order model.
    http_batch_max_items: int = Field(200, alias="HTTP_BATCH_MAX_ITEMS", ge=1, le=500)
    # One request out per endpoint: what arrives meanwhile waits and goes as the next, bigger
    # batch. Measured (docs/benchmarks.md): 4 sent more, smaller requests for no throughput
    # and twice the latency at 200-300 orders/s.
    http_batches_in_flight: int = Field(1, alias="HTTP_BATCHES_IN_FLIGHT", ge=1, le=64)
    # Authorisations wait for the provider (PAYMENT_DELAY_SECONDS): requests of them out at
    # once, so that orders arriving meanwhile are not held behind the provider's slowest answer.
    payment_batches_in_flight: int = Field(16, alias="PAYMENT_BATCHES_IN_FLIGHT", ge=1, le=64)
    pricing_rules_file: Path = Field(
        PROJECT_ROOT / "config" / "pricing_rules.json", alias="PRICING_RULES_FILE"
    )
    price_tolerance: Decimal = Field(Decimal("0.00"), alias="PRICE_TOLERANCE", ge=0)
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    # json: one JSON object per line (services started by `foodflow up`); console: for people.
    log_format: Literal["json", "console"] = Field("json", alias="LOG_FORMAT")
    # Where a service writes its log lines (`foodflow up` gives each instance
    # `<state>/services/logs/<instance>.log`); unset: stderr, for a container's log driver.
    log_file: Path | None = Field(None, alias="LOG_FILE")
    # A log file is rotated once it passes this size: renamed `<name>.log.1` (the older ones
    # shift to .2, .3, ...), and a new one begun. 10 MiB holds ~9,000 orders' lines of the
    # order manager, the busiest writer.
    log_max_bytes: int = Field(
        10 * 1024 * 1024, alias="LOG_MAX_BYTES", ge=1024, le=1024 * 1024 * 1024
    )
    # Rotated files kept per log; the oldest is deleted. A service's logs take at most
    # (LOG_BACKUPS + 1) * LOG_MAX_BYTES on disk.
    log_backups: int = Field(5, alias="LOG_BACKUPS", ge=1, le=100)
    # This process's instance number among those of its service (`foodflow up --scale`
    # order_manager=2 runs 0 and 1), given by the process manager; it names the consumer's
    # static group membership, `group.instance.id` = f"{group_id}-{instance}".
    instance: int = Field(0, alias="FOODFLOW_INSTANCE", ge=0)
    # A consumer that stops heartbeating loses its partitions to the others after this long;
    # a static member restarted within it takes them back with no rebalance at all.
    kafka_session_timeout_ms: int = Field(
        10000, alias="KAFKA_SESSION_TIMEOUT_MS", ge=6000, le=300000
    )
    # An outage of a dependency (inventory, pricing, payment, PostgreSQL) shorter than this,
    # from its first failed call, fails no order: calls wait behind its gate (platform.gate).
    dependency_grace_seconds: float = Field(60.0, alias="DEPENDENCY_GRACE_SECONDS", ge=0)

    # The dashboard's operations figures (consumer lag, dead letters, service health, stored
    # order counts) are refreshed this often, by one task per gateway process, whatever the
    # number of viewers; its charts are refilled from the orders changed in the last 15
    # minutes at start, at most this many.
    dashboard_refresh_seconds: float = Field(5.0, alias="DASHBOARD_REFRESH_SECONDS", ge=1, le=300)
    dashboard_restore_limit: int = Field(20000, alias="DASHBOARD_RESTORE_LIMIT", ge=0, le=200000)

    # --- abuse limits -----------------------------------------------------------------------
    # Request bodies beyond this are answered 413 before they are read (every service).
    max_body_bytes: int = Field(64 * 1024, alias="MAX_BODY_BYTES", ge=1024, le=64 * 1024 * 1024)
    # The limit of the internal batch endpoints (`…_batch`): the largest legitimate body, 500
    # orders of 50 lines with 64-character item ids sent to /calculate_price_batch, is 2.9 MB
    # (a typical 500-order /reserve_batch: 70 kB).
    max_batch_body_bytes: int = Field(
        4 * 1024 * 1024, alias="MAX_BATCH_BODY_BYTES", ge=1024, le=64 * 1024 * 1024
    )
    # Peers whose X-Forwarded-For is believed (addresses or CIDRs, comma-separated); empty:
    # the client address is the socket peer, whatever the headers say.
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list, alias="TRUSTED_PROXIES"
    )
    # Login attempts from one client address per minute, whichever accounts they name.
    login_attempts_per_address_per_minute: int = Field(
        20, alias="LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE", ge=1
    )
    signups_per_address_per_minute: int = Field(10, alias="SIGNUPS_PER_ADDRESS_PER_MINUTE", ge=1)
    # argon2id takes 64 MiB and a core for ~0.1 s per hash: this many at once, the rest wait.
    password_hash_concurrency: int = Field(2, alias="PASSWORD_HASH_CONCURRENCY", ge=1, le=64)

    # --- users and tokens (gateway) --------------------------------------------------------
    access_token_ttl_seconds: int = Field(3600, alias="ACCESS_TOKEN_TTL_SECONDS", ge=60)
    login_attempts_per_minute: int = Field(5, alias="LOGIN_ATTEMPTS_PER_MINUTE", ge=1)

    # --- secrets ----------------------------------------------------------------------------
    # No secret has a default: `foodflow up` generates them (foodflow.tools.secrets) and each
    # service refuses to start without the ones it uses (foodflow.platform.secrets.require).
    # The gateway's user tokens: HS256 keys by key id (JSON), and the id new tokens are signed
    # with; every listed key verifies, so an old key stays listed until its tokens expire.
    jwt_signing_keys: dict[str, SecretStr] | None = Field(None, alias="JWT_SIGNING_KEYS")
    jwt_active_key_id: str | None = Field(None, alias="JWT_ACTIVE_KEY_ID")
    # Calls between services: this process's Ed25519 private key (PEM) signs its tokens; the
    # public keys of every service (JSON, by service name) verify the tokens it receives.
    service_private_key: SecretStr | None = Field(None, alias="SERVICE_PRIVATE_KEY")
    service_public_keys: dict[str, str] | None = Field(None, alias="SERVICE_PUBLIC_KEYS")
    # The demo operator's (operator@foodflow.local) password, generated like the others.
    demo_operator_password: SecretStr | None = Field(None, alias="DEMO_OPERATOR_PASSWORD")

    @field_validator("service_private_key", mode="before")
    @classmethod
    def _pem_newlines(cls, value: object) -> object:
        # A PEM on one line (an .env file) carries its line breaks as the two characters \n.
        return value.replace("\\n", "\n") if isinstance(value, str) else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("kafka_brokers")
    @classmethod
    def _odd_voters(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(
                "an even number of KRaft voters tolerates no more failures than one fewer:"
                " use 1, 3 or 5"
            )
        return value

    @model_validator(mode="after")
    def _cluster_defaults(self) -> Settings:
        # Defaults that depend on the broker count; a value set explicitly always wins. The
        # fields are written through __dict__ so that they stay out of model_fields_set:
        # `kafka_brokers_explicit` must keep telling a choice from a default.
        explicit = self.model_fields_set
        if "kafka_brokers" not in explicit:
            recorded = recorded_kafka_brokers(self.state_dir)
            if recorded is not None:
                self.__dict__["kafka_brokers"] = recorded
        if self.kafka_brokers > 1:
            if "topic_partitions" not in explicit:
                self.__dict__["topic_partitions"] = CLUSTER_TOPIC_PARTITIONS
            if "kafka_heap" not in explicit:
                self.__dict__["kafka_heap"] = CLUSTER_NODE_HEAP
        return self

    @property
    def kafka_brokers_explicit(self) -> bool:
        """True when KAFKA_BROKERS (or `--brokers`) chose the broker count, not the record."""
        return "kafka_brokers" in self.model_fields_set

    @property
    def kafka_replication_factor(self) -> int:
        """Replicas of every partition: 3 in a cluster (one on each of three nodes), 1 alone."""
        return min(3, self.kafka_brokers)

    @property
    def kafka_min_insync_replicas(self) -> int:
        """Replicas an acks=all write must reach: 2 of 3 (one node may be lost, or restarting,
        without refusing writes, and an acknowledged write is on two disks); 1 alone."""
        return max(1, self.kafka_replication_factor - 1)

    def kafka_node_home(self, node_id: int) -> Path:
        """Where node `node_id` keeps its configuration, data and logs: `<state>/kafka` for the
        single node (as before clusters existed), `<state>/kafka-cluster/node-<n>` in a cluster
        (so that a cluster and a single node never share a log directory)."""
        if self.kafka_brokers == 1:
            return self.state_dir / "kafka"
        return self.state_dir / "kafka-cluster" / f"node-{node_id}"

    def kafka_node_ports(self, node_id: int) -> tuple[int, int]:
        """(broker port, controller port) of node `node_id` (1-based): 10 apart per node."""
        step = NODE_PORT_STEP * (node_id - 1)
        return self.kafka_port + step, self.kafka_controller_port + step

    @computed_field  # type: ignore[prop-decorator]
    @property
    def kafka_bootstrap(self) -> str:
        """Every broker, comma-separated: a client that finds one down asks the next."""
        if self.kafka_bootstrap_override:
            return self.kafka_bootstrap_override
        return ",".join(
            f"{self.kafka_host}:{self.kafka_node_ports(n)[0]}"
            for n in range(1, self.kafka_brokers + 1)
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def postgres_dsn(self) -> str:
        return (
            f"postgresql://{self.postgres_user}:{self.postgres_password}"
            f"@{self.postgres_host}:{self.postgres_port}/{self.postgres_db}"
        )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def redis_url(self) -> str:
        return f"redis://{self.redis_host}:{self.redis_port}/0"

    def service_url(self, port: int) -> str:
        return f"http://{self.service_host}:{port}"

    @property
    def inventory_url(self) -> str:
        return self.inventory_url_override or self.service_url(self.inventory_port)

    @property
    def pricing_url(self) -> str:
        return self.pricing_url_override or self.service_url(self.pricing_port)

    @property
    def payment_url(self) -> str:
        return self.payment_url_override or self.service_url(self.payment_port)

    @property
    def delivery_url(self) -> str:
        return self.delivery_url_override or self.service_url(self.delivery_port)

    @property
    def restaurant_url(self) -> str:
        return self.restaurant_url_override or self.service_url(self.restaurant_port)


# Node n's ports are the first node's plus this times (n - 1): 9092, 9102, 9112.
NODE_PORT_STEP = 10
CLUSTER_TOPIC_PARTITIONS = 12
CLUSTER_NODE_HEAP = "512m"
# Where `foodflow infra up` records the broker count it started, in the state directory.
KAFKA_BROKERS_RECORD = "kafka-brokers"


def recorded_kafka_brokers(state_dir: Path) -> int | None:
    """The broker count `foodflow infra up` last recorded in `state_dir`, if any."""
    try:
        count = int((state_dir / KAFKA_BROKERS_RECORD).read_text().strip())
    except (OSError, ValueError):
        return None
    return count if count >= 1 and count % 2 == 1 else None


@lru_cache
def get_settings() -> Settings:
    return Settings()


# The setting that holds each service's HTTP port.
PORT_SETTING = {
    "inventory_service": "inventory_port",
    "pricing_service": "pricing_port",
    "payment_service": "payment_port",
    "delivery_service": "delivery_port",
    "restaurant_service": "restaurant_port",
    "order_writer": "order_writer_port",
    "order_manager": "order_manager_port",
    "gateway": "gateway_port",
}

"""One settings object for every llmrec process, read from `LLMREC_*` environment variables.

The core (`llmrec/`) never reads the environment; commands build its typed configs from this.
Paths default under one home folder (`LLMREC_HOME`): the checkout itself when running from a
source checkout, else `$XDG_DATA_HOME/llmrec` (~/.local/share/llmrec), never site-packages.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["IN_CHECKOUT", "REPO_ROOT", "Settings", "default_home", "get_settings", "home_layout"]

# The folder holding the `workers` package: the source tree in a checkout (or an editable
# install of one), site-packages in an installed wheel, where nothing is ever written.
REPO_ROOT = Path(__file__).resolve().parents[1]


def _is_checkout(root: Path) -> bool:
    """True when `root` is llmrec's source tree: it holds the pyproject.toml of project llmrec."""
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return bool(project.get("project", {}).get("name") == "llmrec")


IN_CHECKOUT = _is_checkout(REPO_ROOT)


def default_home() -> Path:
    """The home folder when LLMREC_HOME is unset: the checkout when running from one (so
    `make demo` and the tests keep their paths), else `$XDG_DATA_HOME/llmrec`."""
    if IN_CHECKOUT:
        return REPO_ROOT
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "llmrec"


def home_layout(home: Path) -> dict[str, Path]:
    """Default paths under `home`. The checkout keeps two places of its own: the broker jars
    beside deploy/kafka/pom.xml and the datasets in ../shared/data beside the checkout."""
    paths = {
        "kafka_home": home / "var" / "kafka",
        "kafka_lib": home / "lib" / "kafka",
        "data_dir": home / "data",
        "model_dir": home / "models",
        "state_dir": home / "var" / "state",
    }
    if IN_CHECKOUT and home.resolve() == REPO_ROOT:
        paths["kafka_lib"] = REPO_ROOT / "deploy" / "kafka" / "lib"
        paths["data_dir"] = REPO_ROOT.parent / "shared" / "data"
    return paths


def _under_home(name: str) -> Callable[[dict[str, Any]], Path]:
    def default(validated: dict[str, Any]) -> Path:
        return home_layout(validated.get("home") or default_home())[name]

    return default


MIN_WEB_TOKEN_CHARS = 16
"""A shorter bearer token is refused: it would be guessable."""


class Settings(BaseSettings):
    """Every tunable of an llmrec process. Env: `LLMREC_<FIELD>` (e.g. LLMREC_KAFKA_PORT)."""

    # hide_input_in_errors: a refused setting may be a password or token; never echo it.
    model_config = SettingsConfigDict(
        env_prefix="LLMREC_", extra="ignore", hide_input_in_errors=True
    )

    # The folder every path below defaults under (see `home_layout`); each has its own variable.
    home: Path = Field(default_factory=default_home)

    # Local broker (`llmrec kafka up`); a remote cluster only needs `bootstrap_servers`.
    kafka_host: str = "127.0.0.1"
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int | None = Field(default=None, ge=1, le=65535)
    kafka_home: Path = Field(default_factory=_under_home("kafka_home"))
    kafka_lib: Path = Field(default_factory=_under_home("kafka_lib"))
    kafka_heap: str = "512m"
    bootstrap_servers: str | None = None

    # How every client (the Faust app, the admin client, the replicas, the CLI) reaches the
    # cluster: `workers/kafka_conn.py` turns these into aiokafka and Faust arguments.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    # TLS: the CA that signed the brokers' certificates (default: the system's trust store), and
    # a client certificate and key for brokers that ask for one (mutual TLS).
    kafka_ca_file: Path | None = None
    kafka_cert_file: Path | None = None
    kafka_key_file: Path | None = None
    kafka_key_password: SecretStr | None = None

    # Durability of the topics llmrec creates. None: as many replicas as the cluster has
    # brokers, at most 3, and min.insync.replicas one less (at least 1), so a single-node
    # development broker and a production cluster both work unset. Producers wait for every
    # in-sync replica (acks=all) and are idempotent, so a retried send is not written twice.
    replication_factor: int | None = Field(default=None, ge=1, le=32)
    min_insync_replicas: int | None = Field(default=None, ge=1, le=32)
    # Dead letters hold the refused record whole (review text included): kept 7 days.
    dlq_retention_ms: int = Field(default=7 * 86_400_000, ge=60_000)
    # Privacy: with a key, the worker replaces every user id by HMAC-SHA256(key, id)
    # (`llmrec.privacy`) as it admits an event, so state, lists and statistics hold pseudonyms
    # only. At least 32 bytes; keep it secret and stable (a new key makes every user new).
    user_id_key: SecretStr | None = None

    # Data, model artifacts, state.
    data_dir: Path = Field(default_factory=_under_home("data_dir"))
    model_dir: Path = Field(default_factory=_under_home("model_dir"))
    state_dir: Path = Field(default_factory=_under_home("state_dir"))

    # Streaming pipeline (workers/): topic names are `topic_prefix` + name.
    app_id: str = "llmrec"
    topic_prefix: str = "llmrec."
    partitions: int = Field(default=4, ge=1, le=1024)
    recommend_k: int = Field(default=10, ge=1, le=200)
    # Every candidate source's budget times this (`RetrievalConfig.scaled`): fewer candidates
    # cost less per list; `llmrec bench engine` and `llmrec eval --candidate-scale` measure both.
    candidate_scale: float = Field(default=1.0, gt=0, le=10)
    # Index search answers a worker remembers (`ItemIndex.remember`, about 1 KB each): a user's
    # unchanged topics ask the same search again at their next event if it is still held.
    index_answers: int = Field(default=4096, ge=0, le=10_000_000)
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    # Faust's built-in pages (/table/<table>/<key> serves any user's raw state without auth;
    # /router, /graph, the stats index, /performance): off unless this is set.
    web_debug_pages: bool = False
    # A bearer token every web request must carry (`Authorization: Bearer <token>`), Faust's
    # pages and requests routed between workers included; None: the views are open.
    web_token: SecretStr | None = None
    # With a token: /health answers without one too, but only `{"status": ...}` (for liveness
    # and readiness probes that cannot send headers); the details still need the token.
    web_token_exempt_health: bool = False
    # How other workers reach this one (Faust's `canonical_url`, published in the group's
    # assignment for routing): http(s)://host:port. None: http://<web_host>:<web_port>, which
    # is unreachable from elsewhere when web_host is a bind-all or container-local address.
    web_advertised_url: str | None = None
    # "json": the worker logs one JSON object a line (ts, level, logger, message; exc with a
    # traceback), for log collectors; "text": Faust's human-readable lines.
    log_format: Literal["text", "json"] = "text"
    store: str = "rocksdb"  # rocksdb (rocksdict) or memory
    encoder_variant: str = "int8"
    # A version folder under the model root (e.g. `r2-op18-ft-…` from `llmrec tune-encoder`);
    # None follows the `current` link, so a tuned model is served only when asked for.
    encoder_version: str | None = None
    # "onnx" (the exported BERT encoder) or "hashing" (a tiny deterministic bag-of-words
    # encoder for tests and transport benchmarks without model artifacts).
    encoder_backend: str = "onnx"
    # The learned ranker (`llmrec train-ranker`): `<ranker_dir>/current`, default
    # `<model_dir>/ranker`; polled every `ranker_poll_s` so a new one is used without a restart.
    # None there: the linear fusion ranks.
    ranker_dir: Path | None = None
    ranker_poll_s: float = Field(default=10.0, gt=0)
    item_batch_size: int = Field(default=64, ge=1, le=4096)
    item_batch_within_s: float = Field(default=0.2, gt=0)
    # User events are taken in micro-batches too: a user's events in one batch are folded in
    # order and answered by one list. An event that finds the worker idle is answered at once;
    # when events were waiting after the last batch, the next one gathers arrivals for
    # `event_batch_within_s` first (`workers.agents.batches`: Faust's `take_events` waited that
    # long after every batch and woke that often while idle).
    event_batch_size: int = Field(default=256, ge=1, le=10_000)
    event_batch_within_s: float = Field(default=0.002, gt=0)
    # Statistics updates are folded per item over a longer window: an item engaged with several
    # times in it is written (and replicated to every worker) once. Statistics lag by about it.
    stats_batch_size: int = Field(default=4096, ge=1, le=100_000)
    stats_batch_within_s: float = Field(default=0.5, gt=0)
    # An event for an item not indexed yet waits on `events-parked`: looked at again every
    # `park_retry_s`, dead-lettered after `park_timeout_s` (workers/agents/parking.py).
    park_retry_s: float = Field(default=1.0, gt=0)
    park_timeout_s: float = Field(default=60.0, gt=0)
    # An event stamped further ahead of this worker's clock is refused: it would stay
    # "popular now" for as long as it is ahead.
    max_future_skew_s: float = Field(default=86_400.0, ge=0)
    snapshot_every_s: float = Field(default=30.0, gt=0)
    # Consumer-group membership (Kafka static membership, KIP-345): `worker_id` must be stable
    # across restarts of one worker and unique in the group; default host + web port.
    worker_id: str | None = None
    # How often consumed offsets are committed: after a crash, up to this much processed work
    # is delivered again (answered again; applied to user state once, by event_id).
    commit_interval_s: float = Field(default=1.0, gt=0)
    session_timeout_s: float = Field(default=10.0, ge=6.0)  # the broker's minimum is 6 s
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    startup_catchup_timeout_s: float = Field(default=120.0, gt=0)

    @field_validator("home")
    @classmethod
    def _home_expanded(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("kafka_heap")
    @classmethod
    def _heap_is_jvm_size(cls, v: str) -> str:
        if not v[:-1].isdigit() or v[-1].lower() not in "kmg":
            raise ValueError("kafka_heap must look like 512m or 2g")
        return v

    @field_validator("web_token")
    @classmethod
    def _web_token_is_usable(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return None
        token = v.get_secret_value()
        if len(token) < MIN_WEB_TOKEN_CHARS or not all("!" <= c <= "~" for c in token):
            raise ValueError(
                f"web_token must be at least {MIN_WEB_TOKEN_CHARS} printable ASCII characters "
                "without spaces (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            )
        return v

    @field_validator("web_advertised_url")
    @classmethod
    def _advertised_url_is_reachable(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            url = urlsplit(v.strip())
            port = url.port
        except ValueError:
            port = None
            url = urlsplit("")
        if (
            url.scheme not in ("http", "https")
            or not url.hostname
            or port is None
            or url.username is not None
            or url.path not in ("", "/")
            or url.query
            or url.fragment
        ):
            raise ValueError(
                "web_advertised_url must be http(s)://host:port (a port, no path), "
                "e.g. http://worker-0.llmrec:6066"
            )
        return f"{url.scheme}://{url.netloc}"

    @model_validator(mode="after")
    def _kafka_auth_is_complete(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_username and self.kafka_password
        ):
            raise ValueError(
                f"LLMREC_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "LLMREC_KAFKA_USERNAME and LLMREC_KAFKA_PASSWORD"
            )
        if self.user_id_key is not None and len(self.user_id_key.get_secret_value()) < 32:
            raise ValueError("LLMREC_USER_ID_KEY must be at least 32 characters long")
        if (self.kafka_cert_file is None) != (self.kafka_key_file is None):
            raise ValueError("LLMREC_KAFKA_CERT_FILE and LLMREC_KAFKA_KEY_FILE go together")
        if (
            self.replication_factor is not None
            and self.min_insync_replicas is not None
            and self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError("LLMREC_MIN_INSYNC_REPLICAS cannot exceed LLMREC_REPLICATION_FACTOR")
        return self

    @property
    def kafka_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    @property
    def reports_dir(self) -> Path:
        """Where `llmrec eval` writes its reports by default."""
        return self.home / "reports"

    @property
    def bench_dir(self) -> Path:
        """Where the benchmarks write their JSON by default."""
        return self.home / "bench-results"

    @property
    def ranker_root(self) -> Path:
        return self.ranker_dir or self.model_dir / "ranker"

    @property
    def member_id(self) -> str:
        """The static group member id of this worker (`worker_id`, else host and web port)."""
        return self.worker_id or f"{self.app_id}-{socket.gethostname()}-{self.web_port}"

    @property
    def bootstrap(self) -> str:
        """The broker address clients use: explicit setting, else the local broker's."""
        return self.bootstrap_servers or f"{self.kafka_host}:{self.kafka_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

"""A single-node KRaft Apache Kafka broker for development, the demo and the tests.

The jars come from Maven Central through the packaged `workers/kafka_files/pom.xml`
(`mvn dependency:copy-dependencies` into `LLMREC_KAFKA_LIB`); storage is formatted with
`kafka.tools.StorageTool` and the broker runs as `java -cp lib/* kafka.Kafka`. Everything it
writes (config, data, logs, pid) lives under one home folder. `up` and `down` are idempotent;
`up` returns only once the broker answers a Kafka ApiVersions request, or raises BrokerError.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from llmrec.exceptions import BrokerError
from workers.kafka_files import LOG4J, POM
from workers.settings import Settings

__all__ = ["BrokerConfig", "BrokerStatus", "LocalBroker", "SecureListener", "free_port"]

log = logging.getLogger(__name__)

KAFKA_JAR_GLOB = "kafka_2.13-*.jar"


@dataclass(frozen=True, slots=True)
class SecureListener:
    """A SASL_SSL listener beside the plaintext one: TLS with `keystore` (PKCS12: the broker's
    key and certificate chain), SCRAM-SHA-256/512 and PLAIN for `users` (name, password).

    The plaintext listener stays for the broker's own use and for `kafka_answers`; a secured
    cluster in production has no such listener, which is why clients are tested on this one.
    """

    port: int
    keystore: Path
    keystore_password: str
    users: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    home: Path
    lib: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    secure: SecureListener | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> BrokerConfig:
        return cls(
            home=s.kafka_home,
            lib=s.kafka_lib,
            host=s.kafka_host,
            port=s.kafka_port,
            controller_port=s.kafka_controller_port or s.kafka_port + 1,
            heap=s.kafka_heap,
        )

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    running: bool
    answering: bool
    pid: int | None
    bootstrap: str
    home: Path

    def describe(self) -> str:
        if self.running and self.answering:
            return f"broker up at {self.bootstrap} (pid {self.pid}, home {self.home})"
        if self.running:
            return f"broker process {self.pid} running but not answering at {self.bootstrap}"
        return f"broker down (home {self.home})"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host` (for tests and throwaway brokers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def kafka_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a Kafka broker at host:port answers an ApiVersions (v0) request without error."""
    client = b"llmrec"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 10)
    except OSError:
        return False
    if head is None:
        return False
    _size, correlation, error = struct.unpack(">iih", head)
    return bool(correlation == 7 and error == 0)


def _recv_exact(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class LocalBroker:
    """Start, stop and inspect one local KRaft broker rooted at `config.home`."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.home = config.home
        self._pid_file = self.home / "broker.pid"
        self._properties = self.home / "config" / "server.properties"
        self._data = self.home / "data"
        self._logs = self.home / "logs"

    # -- inspection --------------------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of this home's broker, if its process is alive."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        # Guard against pid reuse: the process must be a broker started with our config.
        return pid if str(self._properties).encode() in cmdline else None

    def status(self) -> BrokerStatus:
        pid = self.pid()
        answering = pid is not None and kafka_answers(self.config.host, self.config.port)
        return BrokerStatus(pid is not None, answering, pid, self.config.bootstrap, self.home)

    # -- lifecycle ---------------------------------------------------------------------------

    def ensure_jars(self) -> None:
        """Resolve the broker jars with Maven once; later calls find them and return at once."""
        if list(self.config.lib.glob(KAFKA_JAR_GLOB)):
            return
        _require_tool("mvn", "Maven is needed once to fetch the Kafka jars (apt-get install maven)")
        log.info("resolving Kafka jars from Maven Central into %s", self.config.lib)
        cmd = [
            "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            f"-Dllmrec.kafka.lib={self.config.lib}",  # the pom's output folder (not basedir/lib)
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not list(self.config.lib.glob(KAFKA_JAR_GLOB)):
            tail = (done.stdout + done.stderr)[-2000:]
            raise BrokerError(f"Maven could not resolve the Kafka jars:\n{tail}")

    def up(self, timeout: float = 90.0) -> BrokerStatus:
        """Start the broker unless it already runs; return once it answers, else raise."""
        current = self.status()
        if current.running:
            return self._wait_answering(current.pid, timeout)
        _require_tool(
            "java", "Java 17+ is needed to run the broker (apt-get install openjdk-17-jre)"
        )
        secure_port = [self.config.secure.port] if self.config.secure else []
        for port in (self.config.port, self.config.controller_port, *secure_port):
            if _port_taken(self.config.host, port):
                raise BrokerError(
                    f"port {port} on {self.config.host} is taken by another process; stop it or "
                    "choose another port (LLMREC_KAFKA_PORT / LLMREC_KAFKA_CONTROLLER_PORT)"
                )
        self.ensure_jars()
        self._write_properties()
        self._format_storage()
        self._logs.mkdir(parents=True, exist_ok=True)
        out = (self._logs / "broker.out").open("ab")
        proc = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(self._properties)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the CLI; `down` stops its whole group
        )
        out.close()
        self._pid_file.write_text(f"{proc.pid}\n")
        log.info("started broker pid %s at %s", proc.pid, self.config.bootstrap)
        return self._wait_answering(proc.pid, timeout, proc)

    def down(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after `timeout`); False if it was not running."""
        pid = self.pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            log.warning("broker pid %s ignored SIGTERM for %.0fs; killing", pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        self._pid_file.unlink(missing_ok=True)
        return True

    # -- internals ---------------------------------------------------------------------------

    def _java(self) -> list[str]:
        return [
            "java",
            f"-Xmx{self.config.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self._logs}",
            f"-Dlog4j.configuration=file:{LOG4J}",
            "-cp",
            f"{self.config.lib}/*",
        ]

    def _write_properties(self) -> None:
        c = self.config
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{c.host}:{c.controller_port}",
            "listeners": f"PLAINTEXT://{c.host}:{c.port},CONTROLLER://{c.host}:{c.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{c.host}:{c.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            **(_secure_properties(c, c.secure) if c.secure else {}),
            "log.dirs": str(self._data),
            "num.partitions": "1",
            # Single node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "168",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        self._properties.parent.mkdir(parents=True, exist_ok=True)
        self._properties.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _format_storage(self) -> None:
        if (self._data / "meta.properties").exists():
            return  # formatted before: keep the data
        cmd = [*self._java(), "kafka.tools.StorageTool", "format", "--ignore-formatted",
               "-t", _cluster_id(), "-c", str(self._properties)]  # fmt: skip
        for name, password in self.config.secure.users if self.config.secure else ():
            for mechanism in _SCRAM:  # KRaft keeps SCRAM credentials in its metadata log
                cmd += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage failed:\n{(done.stdout + done.stderr)[-2000:]}"
            )

    def _wait_answering(
        self, pid: int | None, timeout: float, proc: subprocess.Popen[bytes] | None = None
    ) -> BrokerStatus:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if kafka_answers(self.config.host, self.config.port):
                return self.status()
            if proc is not None and proc.poll() is not None:
                raise BrokerError(
                    f"broker exited with code {proc.returncode}; see {self._logs / 'broker.out'}:\n"
                    + _tail(self._logs / "broker.out")
                )
            time.sleep(0.25)
        raise BrokerError(
            f"broker pid {pid} did not answer at {self.config.bootstrap} within {timeout:.0f}s; "
            f"see {self._logs / 'server.log'}"
        )


_SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def _secure_properties(c: BrokerConfig, secure: SecureListener) -> dict[str, str]:
    """The SASL_SSL listener's lines, merged into the plaintext broker's properties."""
    plaintext, sasl_ssl = f"PLAINTEXT://{c.host}:{c.port}", f"SASL_SSL://{c.host}:{secure.port}"
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in secure.users)
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return {
        "listeners": f"{plaintext},{sasl_ssl},CONTROLLER://{c.host}:{c.controller_port}",
        "advertised.listeners": f"{plaintext},{sasl_ssl}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
        "SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": ",".join((*_SCRAM, "PLAIN")),
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
        ),
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(secure.keystore),
        "ssl.keystore.password": secure.keystore_password,
        "ssl.key.password": secure.keystore_password,
        "ssl.client.auth": "none",
    }


def _cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding (22 chars).

    Never one starting with "-": the storage tool would read it as an option (1 start in 64
    failed so), which is why Kafka's own `Uuid.randomUuid` redraws those too.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _require_tool(name: str, hint: str) -> None:
    if shutil.which(name) is None:
        raise BrokerError(f"`{name}` not found on PATH. {hint}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""

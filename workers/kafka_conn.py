"""How every llmrec client reaches the cluster: address, TLS and SASL from `Settings`.

One place builds the arguments of aiokafka's producers, consumers and admin client, and the
credentials of the Faust app, so a secured cluster needs its settings once
(`LLMREC_KAFKA_SECURITY_PROTOCOL`, `…_SASL_MECHANISM`, `…_USERNAME`, `…_PASSWORD`, `…_CA_FILE`,
`…_CERT_FILE`, `…_KEY_FILE`). `probe` turns a failed first contact into one line that says
what is wrong: nobody answers, TLS refused, or the credentials were refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.helpers import create_ssl_context

from llmrec.exceptions import BrokerError
from workers.settings import Settings

__all__ = [
    "DURABLE",
    "admin_client",
    "client_kwargs",
    "faust_credentials",
    "probe",
    "quiet_kafka_logs",
    "ssl_context",
]

log = logging.getLogger(__name__)

DURABLE: dict[str, Any] = {"acks": "all", "enable_idempotence": True}
"""Producer arguments: a record counts as sent once every in-sync replica has it, and a send
retried after a lost answer is not written twice."""


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL, else None. Hostnames are always checked."""
    if not settings.kafka_tls:
        return None
    for name in ("kafka_ca_file", "kafka_cert_file", "kafka_key_file"):
        path = getattr(settings, name)
        if path is not None and not path.is_file():
            raise BrokerError(f"LLMREC_{name.upper()}={path} is not a readable file")
    password = settings.kafka_key_password
    try:
        with quiet_kafka_logs():  # "Loading SSL CA from …" at INFO, once per client
            context: ssl.SSLContext = create_ssl_context(
                cafile=settings.kafka_ca_file,
                certfile=settings.kafka_cert_file,
                keyfile=settings.kafka_key_file,
                password=password.get_secret_value() if password else None,
            )
    except (ssl.SSLError, OSError) as exc:
        raise BrokerError(f"cannot load the Kafka TLS files: {exc}") from exc
    return context


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """`bootstrap_servers` and the security arguments of an aiokafka client."""
    kw: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_tls:
        kw["ssl_context"] = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_password is not None  # the settings validator saw to it
        kw["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kw["sasl_plain_username"] = settings.kafka_username
        kw["sasl_plain_password"] = settings.kafka_password.get_secret_value()
    return kw


def faust_credentials(settings: Settings) -> Any:
    """The Faust app's `broker_credentials`: SASL credentials, a TLS context, or None."""
    import faust

    context = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_password is not None
        return faust.SASLCredentials(
            username=settings.kafka_username,
            password=settings.kafka_password.get_secret_value(),
            ssl_context=context,  # with a context Faust speaks SASL_SSL
            mechanism=settings.kafka_sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def admin_client(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_kwargs(settings))


class _Silenced(logging.Filter):
    """Drops aiokafka's records, keeping the exceptions they carry (its bootstrap logs the cause
    and raises a bare "Unable to bootstrap")."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[BaseException] = []

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        self.errors.extend(a for a in args if isinstance(a, BaseException))
        return False


_AIOKAFKA_LOGGERS = (
    "aiokafka",
    "aiokafka.client",
    "aiokafka.conn",
    "aiokafka.admin.client",
    "aiokafka.helpers",
)


@contextlib.contextmanager
def quiet_kafka_logs() -> Iterator[_Silenced]:
    """aiokafka logs every failed connection attempt at ERROR; `probe` says it once instead."""
    silenced = _Silenced()
    loggers = [logging.getLogger(name) for name in _AIOKAFKA_LOGGERS]
    for logger in loggers:
        logger.addFilter(silenced)
    try:
        yield silenced
    finally:
        for logger in loggers:
            logger.removeFilter(silenced)


async def probe(settings: Settings, timeout_s: float = 15.0) -> None:
    """Return once the cluster answers and accepts these credentials; else one clear BrokerError.

    Refused credentials or TLS fail at once; a cluster that does not answer is tried again
    until `timeout_s` (a broker may be starting).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    where = f"{settings.bootstrap} ({settings.kafka_security_protocol})"
    while True:
        admin = admin_client(settings)
        with quiet_kafka_logs() as silenced:
            try:
                await admin.start()
                await admin.list_topics()
                return
            except Exception as exc:
                refused = next(filter(None, map(_refusal, [exc, *silenced.errors])), None)
                if refused is not None:
                    raise BrokerError(f"Kafka at {where} refused us: {refused}") from exc
                if loop.time() > deadline:
                    raise BrokerError(_unreachable(settings, where)) from exc
            finally:
                with contextlib.suppress(Exception):
                    await admin.close()
        await asyncio.sleep(0.5)


def _refusal(exc: BaseException) -> str | None:
    """What the broker refused, when `exc` (or its cause) is an authentication or TLS failure."""
    from aiokafka import errors

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, errors.SaslAuthenticationFailed | errors.AuthenticationFailedError):
            return (
                "authentication failed (check LLMREC_KAFKA_USERNAME, LLMREC_KAFKA_PASSWORD "
                "and LLMREC_KAFKA_SASL_MECHANISM)"
            )
        if isinstance(seen, errors.UnsupportedSaslMechanismError):
            return "the broker does not offer this SASL mechanism (LLMREC_KAFKA_SASL_MECHANISM)"
        if isinstance(seen, ssl.SSLCertVerificationError):
            return (
                f"its TLS certificate was not trusted ({seen.verify_message}; LLMREC_KAFKA_CA_FILE)"
            )
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed ({seen.reason}; is LLMREC_KAFKA_SECURITY_PROTOCOL right?)"
        seen = seen.__cause__ or seen.__context__
    return None


def _unreachable(settings: Settings, where: str) -> str:
    if _listening(settings.bootstrap):
        return (
            f"something listens at {settings.bootstrap} but does not answer as Kafka over "
            f"{settings.kafka_security_protocol}; check LLMREC_KAFKA_SECURITY_PROTOCOL"
        )
    msg = f"no Kafka broker answers at {where}"
    if settings.bootstrap_servers is None:
        msg += "; start the local one with `llmrec kafka up` (or `make kafka-up`)"
    else:
        msg += "; check LLMREC_BOOTSTRAP_SERVERS and that the cluster is up"
    return msg


def _listening(bootstrap: str) -> bool:
    """Whether any bootstrap address accepts a TCP connection."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        with contextlib.suppress(OSError, ValueError):
            socket.create_connection((host.strip("[]"), int(port)), timeout=2.0).close()
            return True
    return False

"""A throwaway certificate authority and broker certificate for a local TLS listener.

Made with the JDK's `keytool` (the broker needs Java anyway, so nothing else is installed): a CA,
a broker key pair whose certificate the CA signs for `127.0.0.1` and `localhost`, the broker's
PKCS12 keystore, and the CA certificate as PEM for clients (`LLMREC_KAFKA_CA_FILE`). For tests
and local trials of a secured setup only: a production cluster's certificates come from its PKI.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from llmrec.exceptions import BrokerError

__all__ = ["LocalTls", "make_local_tls"]


@dataclass(frozen=True, slots=True)
class LocalTls:
    ca_pem: Path
    keystore: Path
    password: str


def _keytool(*args: str) -> None:
    done = subprocess.run(["keytool", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BrokerError(f"keytool {args[0]} failed: {(done.stdout + done.stderr)[-1000:]}")


def make_local_tls(folder: Path, password: str, *, days: int = 2, name: str = "llmrec") -> LocalTls:
    """Write `ca.pem` and `broker.p12` (the broker's key and CA-signed chain) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_store, ca_pem = folder / "ca.p12", folder / "ca.pem"
    keystore, csr, cert = folder / "broker.p12", folder / "broker.csr", folder / "broker.pem"
    store = ["-storetype", "PKCS12", "-storepass", password, "-keypass", password]
    key = ["-keyalg", "RSA", "-keysize", "2048", "-validity", str(days)]
    _keytool("-genkeypair", "-alias", "ca", "-dname", f"CN={name}-test-ca", "-ext", "bc:c",
             "-keystore", str(ca_store), *store, *key)  # fmt: skip
    _keytool("-exportcert", "-rfc", "-alias", "ca", "-file", str(ca_pem),
             "-keystore", str(ca_store), *store)  # fmt: skip
    _keytool("-genkeypair", "-alias", "broker", "-dname", "CN=localhost",
             "-keystore", str(keystore), *store, *key)  # fmt: skip
    _keytool("-certreq", "-alias", "broker", "-file", str(csr),
             "-keystore", str(keystore), *store)  # fmt: skip
    _keytool("-gencert", "-alias", "ca", "-infile", str(csr), "-outfile", str(cert), "-rfc",
             "-ext", "SAN=ip:127.0.0.1,dns:localhost", "-validity", str(days),
             "-keystore", str(ca_store), *store)  # fmt: skip
    _keytool("-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem),
             "-keystore", str(keystore), *store)  # fmt: skip
    _keytool("-importcert", "-noprompt", "-alias", "broker", "-file", str(cert),
             "-keystore", str(keystore), *store)  # fmt: skip
    return LocalTls(ca_pem=ca_pem, keystore=keystore, password=password)

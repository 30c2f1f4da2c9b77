"""Throwaway certificates and NATS credentials for the security tests.

TLS material comes from the ``openssl`` CLI (a CA, a server certificate for ``localhost`` and
``127.0.0.1``, a client certificate); NKEYs, JWTs and ``.creds`` files from the ``nkeys``
package (JWTs are three base64url parts signed with the issuer's NKEY, as ``nsc`` writes them).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys
import pytest

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_LEAF_EXT = "basicConstraints=critical,CA:FALSE\nsubjectKeyIdentifier=hash\n"
_LEAF_EXT += "authorityKeyIdentifier=keyid\nkeyUsage=critical,digitalSignature\n"
_UNLIMITED = {"subs": -1, "data": -1, "payload": -1}


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of one throwaway PKI (keys unencrypted)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(directory: Path, *args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl CLI is not installed")
    subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True, timeout=30)


def _leaf(directory: Path, name: str, subject: str, extensions: str) -> None:
    """``name.pem``/``name.key`` signed by ``ca.pem``/``ca.key`` in ``directory``."""
    (directory / f"{name}.ext").write_text(_LEAF_EXT + extensions)
    _openssl(
        directory, "req", "-new", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr",
        "-subj", subject,
    )  # fmt: skip
    _openssl(
        directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
        "-extfile", f"{name}.ext", "-out", f"{name}.pem",
    )  # fmt: skip


def make_tls_files(directory: Path, name: str = "risk-worker test") -> TlsFiles:
    """Creates a CA, a server certificate (localhost, 127.0.0.1) and a client certificate.

    Args:
        directory: Created if needed; receives ``ca.pem``, ``server.pem``, ``client.pem``, keys.
        name: Common-name prefix, so that two PKIs made by one test differ.
    """
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        directory, "req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", f"/CN={name} CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    server_ext = "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
    _leaf(directory, "server", f"/CN={name} server", server_ext)
    _leaf(directory, "client", f"/CN={name} client", "extendedKeyUsage=clientAuth\n")
    return TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )


def new_keypair(prefix: int) -> nkeys.KeyPair:
    """A fresh NKEY pair; ``prefix``: ``nkeys.PREFIX_BYTE_USER``, ``_ACCOUNT`` or ``_OPERATOR``."""
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(issuer: nkeys.KeyPair, subject: str, name: str, claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = {"jti": _b64(os.urandom(16)), "iat": int(time.time()), "name": name}
    body |= {"iss": issuer.public_key.decode(), "sub": subject, "nats": claims | {"version": 2}}
    payload = _b64(json.dumps(body).encode())
    return f"{header}.{payload}.{_b64(issuer.sign(f'{header}.{payload}'.encode()))}"


@dataclass(frozen=True)
class OperatorFiles:
    """A decentralised-auth (operator mode) setup: server config and one user's ``.creds``."""

    server_conf: Path
    creds: Path
    account: nkeys.KeyPair


def write_creds(path: Path, account: nkeys.KeyPair, user_name: str = "worker") -> Path:
    """Writes a ``.creds`` file for a new user of ``account`` (as ``nsc`` lays it out)."""
    user = new_keypair(nkeys.PREFIX_BYTE_USER)
    claims = {"type": "user", "pub": {}, "sub": {}, **_UNLIMITED}
    token = _jwt(account, user.public_key.decode(), user_name, claims)
    path.write_text(
        f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user.seed.decode()}\n------END USER NKEY SEED------\n"
    )
    return path


def make_operator_files(directory: Path) -> OperatorFiles:
    """An operator, a system account and an application account preloaded in a MEMORY
    resolver (JetStream needs the system account), and ``worker.creds`` for the latter."""
    directory.mkdir(parents=True, exist_ok=True)
    operator = new_keypair(nkeys.PREFIX_BYTE_OPERATOR)
    account, system = (new_keypair(nkeys.PREFIX_BYTE_ACCOUNT) for _ in range(2))
    limits = {**_UNLIMITED, "imports": -1, "exports": -1, "wildcards": True, "conn": -1}
    op_key = operator.public_key.decode()
    (directory / "operator.jwt").write_text(_jwt(operator, op_key, "OP", {"type": "operator"}))
    preload = {
        key.public_key.decode(): _jwt(
            operator, key.public_key.decode(), name, {"type": "account", "limits": limits}
        )
        for key, name in ((account, "APP"), (system, "SYS"))
    }
    conf = directory / "server.conf"
    conf.write_text(
        f"operator: {json.dumps(str(directory / 'operator.jwt'))}\n"
        f"system_account: {system.public_key.decode()}\nresolver: MEMORY\n"
        f"resolver_preload: {json.dumps(preload)}\n"
    )
    return OperatorFiles(conf, write_creds(directory / "worker.creds", account), account)

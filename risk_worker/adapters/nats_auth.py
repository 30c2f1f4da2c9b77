"""NATS security from ``RISK_NATS_*``: user/password, token, NKEY seed, ``.creds`` file, TLS.

Secrets may come from ``*_FILE`` paths (Docker secrets); a refusal by the server fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import nkeys
from nats.aio.client import Client

from risk_worker.errors import ConfigError, ServerUnavailableError

_P = "RISK_NATS_"
_AUTH_REFUSED = ("authorization violation", "authentication expired", "authentication timeout")
_CERT_REFUSED = ("unknown ca", "certificate required", "bad certificate", "certificate unknown")
_CERT, _KEY = (b"BEGIN CERTIFICATE",), (b"PRIVATE KEY-----",)
_CREDS = (b"BEGIN NATS USER JWT", b"BEGIN USER NKEY SEED")  # without them nats-py loops forever
_FILES = dict(nkey_seed_file=(), creds_file=_CREDS, tls_ca=_CERT, tls_cert=_CERT, tls_key=_KEY)
_METHODS = ("token", "user", "nkey_seed_file", "creds_file")


class NatsAuthError(ServerUnavailableError):
    """The NATS server refused the credentials or a certificate; retrying cannot help."""


class NatsAuth(msgspec.Struct, frozen=True, kw_only=True):
    """How to authenticate to NATS: variable ``RISK_NATS_`` + upper-cased field; None: unused.

    At most one of token, user/password, NKEY seed and ``.creds`` is set; TLS goes with any.
    ``repr`` (and rich) hide password and token; ``msgspec.to_builtins`` does not: never log it.

    Attributes:
        user: User name; needs ``password``.
        password: Password (or ``RISK_NATS_PASSWORD_FILE``: a file holding it).
        token: Token (or ``RISK_NATS_TOKEN_FILE``: a file holding it).
        nkey_seed_file: File holding a user NKEY seed, ``SU...``.
        creds_file: ``.creds`` file (user JWT and seed), as ``nsc`` writes it.
        tls_ca: PEM CA certificates to verify the server with; None: the system's CAs.
        tls_cert: PEM client certificate for mutual TLS; needs ``tls_key``.
        tls_key: The client certificate's unencrypted PEM private key.
        tls_hostname: Name the server certificate must carry when it is not the URL's host.
        inbox_prefix: Reply-subject prefix instead of ``_INBOX`` (users cannot read others').
    """

    user: str | None = None
    password: str | None = None
    token: str | None = None
    nkey_seed_file: str | None = None
    creds_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_hostname: str | None = None
    inbox_prefix: str | None = None

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        values = ((name, getattr(self, name)) for name in self.__struct_fields__)
        hidden = {"password", "token"}
        return [(n, "***" if n in hidden else v) for n, v in values if v is not None]

    def __repr__(self) -> str:
        return f"NatsAuth({', '.join(f'{n}={v!r}' for n, v in self.__rich_repr__())})"


def _value(env: Mapping[str, str], name: str) -> str | None:
    return env.get(_P + name, "").strip() or None


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``RISK_NATS_<name>``, or the stripped contents of the file ``RISK_NATS_<name>_FILE``."""
    value, path, variable = _value(env, name), _value(env, name + "_FILE"), f"{_P}{name}_FILE"
    if path is None:
        return value
    if value is not None:
        raise ConfigError(_P + name, f"set either {_P}{name} or {variable}, not both")
    try:
        contents = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ConfigError(variable, f"cannot read {path!r}: {reason}") from None
    if not contents:
        raise ConfigError(variable, f"{path!r} is empty")
    return contents


def _check_file(variable: str, path: str, markers: tuple[bytes, ...]) -> None:
    """A readable file (in ``_FILES``) holding every marker (a seed file: a user seed)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(variable, f"cannot read {path!r}: {exc.strerror}") from None
    for marker in markers:
        if marker not in data:
            raise ConfigError(variable, f"{path!r} has no {marker.decode()!r} line")
    if variable.endswith("NKEY_SEED_FILE"):
        public = b""
        with contextlib.suppress(Exception):  # nkeys raises assorted errors for malformed seeds
            public = nkeys.from_seed(bytearray(data.strip())).public_key
        if not public.startswith(b"U"):
            raise ConfigError(variable, f"{path!r} holds no valid user NKEY seed (SU...)")


def load_nats_auth(environ: Mapping[str, str] | None = None) -> NatsAuth:
    """Reads the ``RISK_NATS_*`` security variables (``os.environ`` by default); blank is unset.

    Raises:
        ConfigError: naming the variable: a value is missing or contradicts another, a file is
            unreadable or malformed, or more than one authentication method is set.
    """
    env = os.environ if environ is None else environ
    values = {field: _value(env, field.upper()) for field in NatsAuth.__struct_fields__}
    values |= {"password": _secret(env, "PASSWORD"), "token": _secret(env, "TOKEN")}
    auth = NatsAuth(**values)
    for one, other in (("user", "password"), ("tls_cert", "tls_key")):
        if (getattr(auth, one) is None) != (getattr(auth, other) is None):
            given, missing = (one, other) if getattr(auth, other) is None else (other, one)
            raise ConfigError(_P + given.upper(), f"is set but {_P}{missing.upper()} is not")
    methods = [_P + field.upper() for field in _METHODS if getattr(auth, field) is not None]
    if len(methods) > 1:
        raise ConfigError(methods[1], f"conflicts with {methods[0]}: choose one method")
    for field, markers in _FILES.items():
        if getattr(auth, field) is not None:
            _check_file(_P + field.upper(), getattr(auth, field), markers)
    parts = (auth.inbox_prefix or "_INBOX").split(".")
    if not all(part and not set(part) & set("*> \t\r\n") for part in parts):
        raise ConfigError(f"{_P}INBOX_PREFIX", "must be a subject without wildcards or spaces")
    return auth


def _tls_context(auth: NatsAuth) -> ssl.SSLContext | None:
    if auth.tls_ca is None and auth.tls_cert is None:
        return None
    try:
        context = ssl.create_default_context(cafile=auth.tls_ca)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{_P}TLS_CA", f"not a usable CA file: {exc}") from None
    if auth.tls_cert is not None:
        try:  # a password: an encrypted key fails instead of prompting on the terminal
            context.load_cert_chain(auth.tls_cert, auth.tls_key, password=b"")
        except (ssl.SSLError, OSError) as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise ConfigError(f"{_P}TLS_KEY", f"does not match {_P}TLS_CERT") from None
            problem = f"cannot be loaded with {_P}TLS_KEY (unencrypted keys only): {exc}"
            raise ConfigError(f"{_P}TLS_CERT", problem) from None
    return context


def connect_options(auth: NatsAuth) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` (nats-py 2.16 names), only those set.

    Raises:
        ConfigError: naming ``RISK_NATS_TLS_CA``, ``_CERT`` or ``_KEY`` when TLS does not load.
    """
    options: dict[str, Any] = {"user": auth.user, "password": auth.password, "token": auth.token}
    options |= {"nkeys_seed": auth.nkey_seed_file, "user_credentials": auth.creds_file}
    options |= {"tls_hostname": auth.tls_hostname, "inbox_prefix": auth.inbox_prefix}
    options["tls"] = _tls_context(auth)
    return {name: value for name, value in options.items() if value is not None}


def _refusal(exc: BaseException, auth: NatsAuth | None) -> str | None:
    """The sentence for a refusal by the server (credentials or certificates), else None."""
    chain: list[BaseException] = [exc]  # the error, then its causes (chains may loop)
    while len(chain) < 8 and (cause := chain[-1].__cause__ or chain[-1].__context__):
        chain.append(cause)
    for e in chain:
        text = str(e).lower()
        if isinstance(e, NatsAuthError):
            return str(e)
        if isinstance(e, nats.errors.AuthorizationError) or any(m in text for m in _AUTH_REFUSED):
            used = [_P + field.upper() for field in _METHODS if getattr(auth, field, None)]
            used = [f"{v} and {_P}PASSWORD" if v.endswith("USER") else v for v in used]
            why = str(e).removeprefix("nats: ").strip("'")
            return (
                f"NATS authorization failed: the server refused the credentials ({why}); "
                f"check {', '.join(used) or 'the RISK_NATS_* credentials (none is set)'}"
            )
        if isinstance(e, ssl.SSLCertVerificationError):
            return (
                f"TLS: the NATS server's certificate was not accepted ({e.verify_message}); "
                f"check {_P}TLS_CA and {_P}TLS_HOSTNAME"
            )
        if isinstance(e, ssl.SSLError) and any(m in text for m in _CERT_REFUSED):
            return (
                "TLS authorization failed: the NATS server refused the client certificate "
                f"({getattr(e, 'reason', None) or e}); check {_P}TLS_CERT and {_P}TLS_KEY"
            )
    return None


def describe_connect_error(exc: BaseException, auth: NatsAuth | None = None) -> str:
    """One sentence for a failed connection (``exc`` or its causes), without password or token.

    ``auth``, the settings used, lets the sentence name their variables and scrub their secrets.
    """
    if (text := _refusal(exc, auth)) is None:
        text = f"cannot connect to NATS: {type(exc).__name__}: {exc}"
        if isinstance(exc, TimeoutError):
            text = "the NATS server did not answer within the connect timeout"
        elif isinstance(exc, OSError):
            text = f"cannot reach the NATS server: {exc.strerror or exc}"
            text += " (was the client certificate refused?)" if auth and auth.tls_cert else ""
    for secret in (auth.password, auth.token) if auth is not None else ():
        text = text.replace(secret, "***") if secret else text
    return text


def server_list(servers: str | list[str]) -> list[str]:
    """``RISK_NATS_URL``'s servers: ``"nats://a:4222, nats://b:4222"`` → two stripped URLs.

    nats-py takes one URL or a list; a comma-separated string would reach it whole (and fail
    with "invalid connect url option"). Blank items are dropped.
    """
    items = servers.split(",") if isinstance(servers, str) else servers
    return [url.strip() for url in items if url.strip()]


async def open_connection(servers: str | list[str], auth: NatsAuth, **options: Any) -> Client:
    """``nats.connect(servers, **options)`` with ``auth``, but a refusal by the server ends it.

    ``servers``: one URL, several separated by commas (``RISK_NATS_URL``), or a list; nats-py
    connects to one and fails over to the others. (nats-py retries a refused first connection
    like any failure.) ``error_cb`` gets the others.

    Raises:
        NatsAuthError: the server refused the credentials or a certificate (a clear message).
        ConfigError: the TLS files do not load.
    """
    on_error, connecting, refused = options.pop("error_cb", None), True, None

    async def error_cb(exc: Exception) -> None:
        nonlocal refused
        if connecting and _refusal(exc, auth) is not None:
            refused = exc
            raise exc  # leaves nats-py's connect loop
        if on_error is not None:
            await on_error(exc)

    nc, kwargs = Client(), {**options, **connect_options(auth)}
    try:
        await nc.connect(server_list(servers), error_cb=error_cb, **kwargs)
    except BaseException as exc:
        connecting = False
        with contextlib.suppress(Exception):  # after a failed TLS handshake close() hangs
            await asyncio.wait_for(nc.close(), 1.0)
        if (cause := refused or (exc if _refusal(exc, auth) else None)) is not None:
            raise NatsAuthError(describe_connect_error(cause, auth)) from cause
        raise
    connecting = False
    return nc

"""NATS security: user/password, token, NKEY seed, ``.creds`` file and TLS, from ``RISK_NATS_*``.

:func:`load_nats_auth` reads and checks the variables at start (a secret may also come from a
``*_FILE`` path, as Docker secrets do); :func:`connect_options` turns them into keyword arguments
for ``nats.connect``; :func:`open_connection` connects and stops at once when the server rejects
the credentials or the certificates, instead of retrying until a deadline;
:func:`describe_connect_error` explains a failed connection in one sentence without secrets.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import nkeys
from nats.aio.client import Client

from risk_worker.errors import ConfigError, ServerUnavailableError

_P = "RISK_NATS_"
_INBOX = re.compile(r"[^.\s*>]+(\.[^.\s*>]+)*")
_AUTH_REJECTED = ("authorization violation", "authentication expired", "authentication timeout")
_CERT_REJECTED = ("unknown ca", "certificate required", "bad certificate", "certificate unknown")
_FILE_VARIABLES = {
    "nkey_seed_file": "NKEY_SEED_FILE",
    "creds_file": "CREDS_FILE",
    "tls_ca": "TLS_CA",
    "tls_cert": "TLS_CERT",
    "tls_key": "TLS_KEY",
}


class NatsAuthError(ServerUnavailableError):
    """The NATS server rejected the credentials or a certificate; retrying cannot help."""


class NatsAuth(msgspec.Struct, frozen=True, kw_only=True):
    """How to authenticate to NATS; every field is optional (None: not used).

    At most one of the methods token, user/password, NKEY seed and ``.creds`` is set; TLS can
    go with any of them. ``repr`` hides the password and the token (``msgspec.to_builtins`` does
    not: never log that).

    Attributes:
        user: User name (``RISK_NATS_USER``); comes with ``password``.
        password: Password (``RISK_NATS_PASSWORD`` or ``RISK_NATS_PASSWORD_FILE``).
        token: Authentication token (``RISK_NATS_TOKEN`` or ``RISK_NATS_TOKEN_FILE``).
        nkey_seed_file: Path of a file holding a user NKEY seed, ``SU...``
            (``RISK_NATS_NKEY_SEED_FILE``).
        creds_file: Path of a ``.creds`` file, user JWT and seed (``RISK_NATS_CREDS_FILE``).
        tls_ca: PEM file of the CAs that sign the server's certificate (``RISK_NATS_TLS_CA``);
            None uses the system's CAs.
        tls_cert: PEM client certificate for mutual TLS (``RISK_NATS_TLS_CERT``), with ``tls_key``.
        tls_key: PEM private key of ``tls_cert``, unencrypted (``RISK_NATS_TLS_KEY``).
        tls_hostname: Name to verify the server's certificate against when it differs from the
            URL's host (``RISK_NATS_TLS_HOSTNAME``).
        inbox_prefix: Prefix of reply subjects instead of ``_INBOX``, so that users cannot read
            each other's replies (``RISK_NATS_INBOX_PREFIX``).
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

    @property
    def variables(self) -> str:
        """The variables of the method in use, for messages (e.g. ``RISK_NATS_TOKEN``)."""
        if self.token is not None:
            return f"{_P}TOKEN"
        if self.user is not None:
            return f"{_P}USER/{_P}PASSWORD"
        if self.nkey_seed_file is not None:
            return f"{_P}NKEY_SEED_FILE"
        if self.creds_file is not None:
            return f"{_P}CREDS_FILE"
        return f"{_P}USER/PASSWORD, TOKEN, NKEY_SEED_FILE or CREDS_FILE (none is set)"

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:
        """Fields for rich's pretty printer, secrets replaced by ``***``."""
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is not None:
                yield name, "***" if name in {"password", "token"} else value

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__rich_repr__())
        return f"NatsAuth({fields})"


def _value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(_P + name, "").strip()
    return value or None


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """``RISK_NATS_<name>`` or the stripped contents of the file ``RISK_NATS_<name>_FILE``."""
    value, path = _value(env, name), _value(env, name + "_FILE")
    if path is None:
        return value
    if value is not None:
        raise ConfigError(f"{_P}{name}", f"set either {_P}{name} or {_P}{name}_FILE, not both")
    try:
        contents = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"{_P}{name}_FILE", f"cannot read {path!r}: {reason}") from None
    if not contents:
        raise ConfigError(f"{_P}{name}_FILE", f"{path!r} is empty")
    return contents


def _check_file(variable: str, path: str, markers: tuple[bytes, ...] = ()) -> None:
    """A readable file holding every marker; messages never quote the contents."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(variable, f"cannot read {path!r}: {exc.strerror}") from None
    missing = [m.decode() for m in markers if m not in data]
    if missing:
        raise ConfigError(variable, f"{path!r} does not look right: no {missing[0]!r} in it")
    if variable.endswith("NKEY_SEED_FILE"):
        try:
            public = nkeys.from_seed(bytearray(data.strip())).public_key
        except Exception:  # nkeys raises assorted errors for bad input
            raise ConfigError(variable, f"{path!r} holds no valid NKEY seed") from None
        if not public.startswith(b"U"):
            raise ConfigError(variable, f"{path!r} holds no user seed (expected SU...)")


def load_nats_auth(environ: Mapping[str, str] | None = None) -> NatsAuth:
    """Reads the ``RISK_NATS_*`` security variables (``os.environ`` by default); blank is unset.

    Raises:
        ConfigError: naming the variable when a value is missing, contradicts another, names an
            unreadable or malformed file, or when several authentication methods are set.
    """
    env = os.environ if environ is None else environ
    auth = NatsAuth(
        user=_value(env, "USER"),
        password=_secret(env, "PASSWORD"),
        token=_secret(env, "TOKEN"),
        **{field: _value(env, name) for field, name in _FILE_VARIABLES.items()},
        tls_hostname=_value(env, "TLS_HOSTNAME"),
        inbox_prefix=_value(env, "INBOX_PREFIX"),
    )
    if auth.password is not None and auth.user is None:
        raise ConfigError(f"{_P}PASSWORD", f"is set but {_P}USER is not")
    if auth.user is not None and auth.password is None:
        raise ConfigError(f"{_P}USER", f"needs {_P}PASSWORD (or {_P}PASSWORD_FILE)")
    if (auth.tls_cert is None) != (auth.tls_key is None):
        present, absent = ("CERT", "KEY") if auth.tls_key is None else ("KEY", "CERT")
        raise ConfigError(f"{_P}TLS_{present}", f"is set but {_P}TLS_{absent} is not")
    methods = [
        name
        for name, value in (
            ("TOKEN", auth.token),
            ("USER", auth.user),
            ("NKEY_SEED_FILE", auth.nkey_seed_file),
            ("CREDS_FILE", auth.creds_file),
        )
        if value is not None
    ]
    if len(methods) > 1:
        raise ConfigError(
            _P + methods[1],
            f"conflicts with {_P}{methods[0]}: use one of token, user/password, NKEY seed "
            "and creds file",
        )
    markers: dict[str, tuple[bytes, ...]] = {
        "creds_file": (b"BEGIN NATS USER JWT", b"BEGIN USER NKEY SEED"),
        "tls_ca": (b"BEGIN CERTIFICATE",),
        "tls_cert": (b"BEGIN CERTIFICATE",),
        "tls_key": (b"PRIVATE KEY-----",),
    }
    for field, name in _FILE_VARIABLES.items():
        path = getattr(auth, field)
        if path is not None:
            _check_file(_P + name, path, markers.get(field, ()))
    if auth.inbox_prefix is not None and not _INBOX.fullmatch(auth.inbox_prefix):
        raise ConfigError(f"{_P}INBOX_PREFIX", "must be a subject without wildcards or spaces")
    return auth


def _encrypted_key() -> bytes:
    raise ConfigError(f"{_P}TLS_KEY", "the key is encrypted: give an unencrypted key file")


def tls_context(auth: NatsAuth) -> ssl.SSLContext | None:
    """A client TLS context from ``tls_ca``/``tls_cert``/``tls_key``; None when none is set.

    Raises:
        ConfigError: naming ``RISK_NATS_TLS_CA``, ``_CERT`` or ``_KEY`` when one does not load.
    """
    if auth.tls_ca is None and auth.tls_cert is None:
        return None
    try:
        context = ssl.create_default_context(cafile=auth.tls_ca)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{_P}TLS_CA", f"not a usable CA file: {exc}") from None
    if auth.tls_cert is not None:
        try:
            context.load_cert_chain(auth.tls_cert, auth.tls_key, password=_encrypted_key)
        except (ssl.SSLError, OSError) as exc:
            mismatch = "KEY_VALUES_MISMATCH" in str(exc)
            variable = f"{_P}TLS_KEY" if mismatch else f"{_P}TLS_CERT"
            problem = "does not match" if mismatch else "cannot be loaded with"
            raise ConfigError(variable, f"{problem} {_P}TLS_KEY/CERT: {exc}") from None
    return context


def connect_options(auth: NatsAuth) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` (nats-py 2.16 names); empty when nothing is set.

    Raises:
        ConfigError: a TLS file does not load (see :func:`tls_context`).
    """
    options: dict[str, Any] = {
        "user": auth.user,
        "password": auth.password,
        "token": auth.token,
        "nkeys_seed": auth.nkey_seed_file,
        "user_credentials": auth.creds_file,
        "tls": tls_context(auth),
        "tls_hostname": auth.tls_hostname,
        "inbox_prefix": auth.inbox_prefix,
    }
    return {name: value for name, value in options.items() if value is not None}


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    """The exception, then its causes and contexts (each once)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _rejection(exc: BaseException, auth: NatsAuth | None) -> str | None:
    """The sentence for a refusal by the server (credentials, certificates, TLS), else None."""
    for error in _chain(exc):
        text = str(error).lower()
        if isinstance(error, nats.errors.AuthorizationError) or any(
            marker in text for marker in _AUTH_REJECTED
        ):
            used = auth.variables if auth is not None else "the RISK_NATS_* credentials"
            reason = str(error).removeprefix("nats: ").strip("'")
            return f"NATS authorization failed: the server rejected the credentials ({reason}); "
            f"check {used}"
        if isinstance(error, ssl.SSLCertVerificationError):
            return (
                f"TLS: the NATS server's certificate was not accepted ({error.verify_message}); "
                f"check {_P}TLS_CA and {_P}TLS_HOSTNAME"
            )
        if isinstance(error, ssl.SSLError) and any(marker in text for marker in _CERT_REJECTED):
            return (
                "TLS authorization failed: the NATS server rejected the client certificate "
                f"({error.reason or error}); check {_P}TLS_CERT and {_P}TLS_KEY"
            )
        if isinstance(error, nats.errors.SecureConnRequiredError):
            return f"the NATS server requires TLS: use a tls:// URL or set {_P}TLS_CA"
        if isinstance(error, nats.errors.SecureConnWantedError):
            return "TLS is configured but the NATS server does not offer it"
    return None


def describe_connect_error(exc: BaseException, auth: NatsAuth | None = None) -> str:
    """One sentence for a failed connection, without the password or the token.

    Args:
        exc: What ``nats.connect`` raised, or an error raised from it (causes are followed).
        auth: The settings used, to name their variables and to scrub their secrets.
    """
    sentence = _rejection(exc, auth)
    if sentence is None:
        if isinstance(exc, nats.errors.NoServersError):
            sentence = "no NATS server could be reached (all attempts failed)"
        elif isinstance(exc, TimeoutError):
            sentence = "the NATS server did not answer within the connect timeout"
        elif isinstance(exc, OSError):
            sentence = f"cannot reach the NATS server: {exc.strerror or exc}"
        else:
            sentence = f"cannot connect to NATS: {type(exc).__name__}: {exc}"
    for secret in (auth.password, auth.token) if auth is not None else ():
        if secret:
            sentence = sentence.replace(secret, "***")
    return sentence


async def open_connection(servers: str | list[str], auth: NatsAuth, **options: Any) -> Client:
    """``nats.connect`` with ``auth``, failing at once when the server refuses it.

    nats-py retries the first connection like any other failure (forever with
    ``max_reconnect_attempts=-1``); a refusal of the credentials or certificates stops it here.

    Args:
        servers: The server URL(s).
        auth: From :func:`load_nats_auth`.
        **options: Other ``nats.connect`` arguments; ``error_cb`` still sees other errors.

    Raises:
        NatsAuthError: the server rejected the credentials or a certificate (clear message).
        ConfigError: a TLS file does not load.
    """
    on_error = options.pop("error_cb", None)
    state = {"connecting": True, "refused": None}

    async def error_cb(exc: Exception) -> None:
        if state["connecting"] and _rejection(exc, auth) is not None:
            state["refused"] = exc
            raise exc  # leaves nc.connect's retry loop
        if on_error is not None:
            await on_error(exc)

    nc = Client()
    kwargs = {**options, **connect_options(auth)}
    try:
        await nc.connect(servers, error_cb=error_cb, **kwargs)
    except BaseException as exc:
        state["connecting"] = False
        with contextlib.suppress(Exception):
            await nc.close()
        refused = state["refused"] or (exc if _rejection(exc, auth) else None)
        if isinstance(refused, BaseException):
            raise NatsAuthError(describe_connect_error(refused, auth)) from refused
        raise
    state["connecting"] = False
    return nc

"""NATS identities a test server admits: NKey users, or JWT users with ``.creds`` files.

The JWTs are signed here with ``nkeys`` (an operator, a system account, one account),
as ``nsc`` would sign them; the server resolves the accounts from memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import nkeys

__all__ = ["creds_server_config", "nkey_server_config"]

_OPEN_LIMITS = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": True, "conn": -1, "leaf": -1}
_JETSTREAM_LIMITS = _OPEN_LIMITS | {"mem_storage": -1, "disk_storage": -1, "streams": -1,
                                    "consumer": -1}


def _keypair(prefix: int, name: str) -> tuple[bytes, nkeys.KeyPair]:
    """A deterministic key pair per name (the tests need no secrecy)."""
    seed = nkeys.encode_seed(hashlib.sha256(name.encode()).digest(), prefix)
    return seed, nkeys.from_seed(seed)


def _public(pair: nkeys.KeyPair) -> str:
    return str(pair.public_key.decode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(claims: dict[str, object], signer: nkeys.KeyPair) -> str:
    claims = claims | {"iat": int(time.time()), "iss": _public(signer)}
    claims["jti"] = base64.b32encode(
        hashlib.sha256(json.dumps(claims).encode()).digest()).decode().rstrip("=")
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signer.sign(f'{head}.{body}'.encode()))}"


def _listen(port: int, directory: Path) -> str:
    return (f"listen: 127.0.0.1:{port}\n"
            f"jetstream {{ store_dir: {json.dumps(str(directory / 'js'))} }}\n")


def nkey_server_config(directory: Path, port: int, inbox_of: dict[str, str | None]
                       ) -> tuple[str, dict[str, Path]]:
    """A server config admitting one NKey user per name, each subscribing only to its inbox
    prefix (None: anything); returns it and each user's seed file."""
    users, seeds = [], {}
    for name, inbox in inbox_of.items():
        seed, pair = _keypair(nkeys.PREFIX_BYTE_USER, name)
        seeds[name] = directory / f"{name}.nk"
        seeds[name].write_bytes(seed)
        subscribe = f"\"{inbox}.>\"" if inbox else "\">\""
        users.append(f"  {{ nkey: {_public(pair)}, permissions: {{ publish: \">\", "
                     f"subscribe: {subscribe}, allow_responses: true }} }}")
    return (_listen(port, directory) + "authorization { users: [\n" + "\n".join(users)
            + "\n] }\n"), seeds


def creds_server_config(directory: Path, port: int, inbox_of: dict[str, str | None]
                        ) -> tuple[str, dict[str, Path]]:
    """The same with JWT users (decentralised auth) and a ``.creds`` file per user."""
    _, operator = _keypair(nkeys.PREFIX_BYTE_OPERATOR, "operator")
    _, system = _keypair(nkeys.PREFIX_BYTE_ACCOUNT, "system")
    _, account = _keypair(nkeys.PREFIX_BYTE_ACCOUNT, "runlog")
    operator_jwt = _jwt({"sub": _public(operator), "name": "operator", "nats": {
        "type": "operator", "version": 2, "system_account": _public(system)}}, operator)
    accounts = {_public(system): _jwt({"sub": _public(system), "name": "SYS", "nats": {
                    "type": "account", "version": 2, "limits": _OPEN_LIMITS}}, operator),
                _public(account): _jwt({"sub": _public(account), "name": "RUNLOG", "nats": {
                    "type": "account", "version": 2, "limits": _JETSTREAM_LIMITS}}, operator)}
    files = {}
    for name, inbox in inbox_of.items():
        seed, user = _keypair(nkeys.PREFIX_BYTE_USER, name)
        subscribe = {"allow": [f"{inbox}.>"]} if inbox else {}
        token = _jwt({"sub": _public(user), "name": name, "nats": {
            "type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1,
            "pub": {}, "sub": subscribe}}, account)
        files[name] = directory / f"{name}.creds"
        files[name].write_text(
            f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n"
            f"-----BEGIN USER NKEY SEED-----\n{seed.decode()}\n------END USER NKEY SEED------\n")
    preload = ", ".join(f"{key}: {token}" for key, token in accounts.items())
    return (_listen(port, directory) + f"operator: {operator_jwt}\nresolver: MEMORY\n"
            f"system_account: {_public(system)}\nresolver_preload: {{ {preload} }}\n"), files

"""The server secret, and what it protects: webhook secrets at rest, signed media links.

Webhook signing secrets must be available in clear to sign, so they cannot be hashed like
API keys; they are stored encrypted with a key derived from the server secret instead, so a
database dump or backup alone does not reveal them. The cipher is built from the standard
library only: HMAC-SHA256 as a PRF in counter mode with a random 128-bit nonce, then
encrypt-then-MAC with a separately derived HMAC-SHA256 key over the record id, nonce and
ciphertext.

The server secret is `STREETWATCH_SECRET_KEY`, or a random one kept in
`<data_dir>/secret.key` (mode 0600). Several server processes on one PostgreSQL must share
it: set the variable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

PREFIX = "enc1:"
_NONCE = 16
_TAG = 32


class SecretError(ValueError):
    """A sealed value that does not open with this server secret."""


def load_server_key(configured: str | None, data_dir: Path) -> bytes:
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    path = data_dir / "secret.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
    return hashlib.sha256(path.read_text().strip().encode()).digest()


def derive(server_key: bytes, purpose: str) -> bytes:
    return hmac.new(server_key, f"streetwatch:{purpose}".encode(), hashlib.sha256).digest()


def _keystream(key: bytes, nonce: bytes, n: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hmac.new(key, nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return bytes(out[:n])


def seal(server_key: bytes, plaintext: str, context: str) -> str:
    enc, mac = derive(server_key, "seal-enc"), derive(server_key, "seal-mac")
    nonce = secrets.token_bytes(_NONCE)
    data = plaintext.encode()
    ct = bytes(a ^ b for a, b in zip(data, _keystream(enc, nonce, len(data)), strict=True))
    tag = hmac.new(mac, context.encode() + b"\0" + nonce + ct, hashlib.sha256).digest()
    return PREFIX + base64.urlsafe_b64encode(nonce + ct + tag).decode()


def open_sealed(server_key: bytes, sealed: str, context: str) -> str:
    if not sealed.startswith(PREFIX):
        return sealed  # stored before secrets were sealed; `api.server.app` seals those on start
    raw = base64.urlsafe_b64decode(sealed[len(PREFIX) :])
    nonce, ct, tag = raw[:_NONCE], raw[_NONCE:-_TAG], raw[-_TAG:]
    enc, mac = derive(server_key, "seal-enc"), derive(server_key, "seal-mac")
    expected = hmac.new(mac, context.encode() + b"\0" + nonce + ct, hashlib.sha256).digest()
    if len(raw) < _NONCE + _TAG or not hmac.compare_digest(tag, expected):
        raise SecretError("the value was sealed with another server secret")
    return bytes(a ^ b for a, b in zip(ct, _keystream(enc, nonce, len(ct)), strict=True)).decode()


def sign_link(server_key: bytes, path: str, expires: int) -> str:
    mac = hmac.new(derive(server_key, "media-link"), f"{path}\n{expires}".encode(), "sha256")
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode()


def link_valid(server_key: bytes, path: str, expires: int, signature: str) -> bool:
    return hmac.compare_digest(sign_link(server_key, path, expires), signature)

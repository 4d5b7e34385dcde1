"""The provider's signing key: from OAUTH_SIGNING_KEY, or generated once into instance/ in dev."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, current_app
from joserfc.jwk import ECKey, RSAKey


@dataclass(frozen=True)
class SigningKey:
    # Equal and hashed by alg and kid (the key's RFC 7638 thumbprint), so it can key caches.
    key: RSAKey | ECKey = field(compare=False)
    alg: str
    kid: str

    def public_jwk(self) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk


def _generate_pem() -> str:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _dev_key_pem(instance: Path) -> str:
    path = instance / "oauth_signing_key.pem"
    if path.exists():
        return path.read_text()
    instance.mkdir(parents=True, exist_ok=True)
    pem = _generate_pem()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker won the race; use its key
        return path.read_text()
    with os.fdopen(fd, "w") as handle:
        handle.write(pem)
    return pem


def load(pem: str) -> SigningKey:
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    if isinstance(private, rsa.RSAPrivateKey):
        rsa_key = RSAKey.import_key(pem)
        return SigningKey(rsa_key, "RS256", rsa_key.thumbprint())
    if isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
        ec_key = ECKey.import_key(pem)
        return SigningKey(ec_key, "ES256", ec_key.thumbprint())
    raise ValueError("OAUTH_SIGNING_KEY must be an RSA or P-256 EC private key")


def init_app(app: Flask) -> None:
    """Resolve the key lazily: commands that never sign should not pay for key generation."""
    app.extensions["hearth_signing_key"] = None


def signing_key() -> SigningKey:
    key: SigningKey | None = current_app.extensions.get("hearth_signing_key")
    if key is None:
        pem = current_app.config["OAUTH_SIGNING_KEY"] or _dev_key_pem(
            Path(current_app.config["INSTANCE_DIR"])
        )
        key = current_app.extensions["hearth_signing_key"] = load(pem)
    return key

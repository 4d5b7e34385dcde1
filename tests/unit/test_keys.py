"""The provider's keys: the configured key signs ID tokens, a derived P-256 key access tokens."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt

from app.oauth import keys

RSA_PEM = keys._generate_pem()


def _ec_pem() -> str:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def test_rsa_key_signs_id_tokens_and_derives_an_es256_access_token_key() -> None:
    loaded = keys.load(RSA_PEM)

    assert loaded.id_token.alg == "RS256"
    assert loaded.access_token.alg == "ES256"
    assert loaded.access_token.kid != loaded.id_token.kid
    assert [jwk["alg"] for jwk in loaded.public_jwks()] == ["RS256", "ES256"]


def test_derivation_is_deterministic_and_differs_per_rsa_key() -> None:
    """Every worker and node derives the same key from the one configured secret."""
    first, again = keys.load(RSA_PEM), keys.load(RSA_PEM)
    other = keys.load(keys._generate_pem())

    assert first.access_token.public_jwk() == again.access_token.public_jwk()
    assert first.access_token.kid != other.access_token.kid
    token = jwt.encode({"alg": "ES256"}, {"sub": "x"}, first.access_token.key)
    assert jwt.decode(token, again.access_token.key).claims == {"sub": "x"}


def test_derivation_does_not_depend_on_the_pem_encoding() -> None:
    private = serialization.load_pem_private_key(RSA_PEM.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    traditional = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()

    assert "BEGIN RSA PRIVATE KEY" in traditional
    assert keys.load(traditional).access_token.kid == keys.load(RSA_PEM).access_token.kid


def test_rs256_access_tokens_use_the_configured_key() -> None:
    loaded = keys.load(RSA_PEM, "RS256")

    assert loaded.access_token == loaded.id_token
    assert [jwk["alg"] for jwk in loaded.public_jwks()] == ["RS256"]


def test_an_ec_key_signs_everything() -> None:
    loaded = keys.load(_ec_pem())

    assert loaded.access_token == loaded.id_token
    assert loaded.id_token.alg == "ES256"
    assert len(loaded.public_jwks()) == 1
    with pytest.raises(ValueError, match="RS256 needs an RSA"):
        keys.load(_ec_pem(), "RS256")


def test_other_curves_are_refused() -> None:
    pem = (
        ec.generate_private_key(ec.SECP384R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match="RSA or P-256"):
        keys.load(pem)

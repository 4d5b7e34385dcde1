"""The provider's keys: the configured key signs ID tokens, a derived P-256 key access tokens."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt

from app.oauth import keys
from tests.conftest import p256_pem

RSA_PEM = keys._generate_pem()


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
    loaded = keys.load(p256_pem())

    assert loaded.access_token == loaded.id_token
    assert loaded.id_token.alg == "ES256"
    assert len(loaded.public_jwks()) == 1
    with pytest.raises(ValueError, match="RS256 needs an RSA"):
        keys.load(p256_pem(), "RS256")


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


def test_derivation_does_not_depend_on_how_d_was_computed() -> None:
    """Some tools store d = e⁻¹ mod φ(n), others mod λ(n): both are the same RSA key."""
    private = serialization.load_pem_private_key(RSA_PEM.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    numbers = private.private_numbers()
    p, q, e = numbers.p, numbers.q, numbers.public_numbers.e
    d_phi = pow(e, -1, (p - 1) * (q - 1))
    other = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d_phi,
        dmp1=rsa.rsa_crt_dmp1(d_phi, p),
        dmq1=rsa.rsa_crt_dmq1(d_phi, q),
        iqmp=numbers.iqmp,
        public_numbers=numbers.public_numbers,
    ).private_key()
    assert other.private_numbers().d != numbers.d or d_phi == numbers.d
    pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()

    assert keys.load(pem).access_token.kid == keys.load(RSA_PEM).access_token.kid


def test_workers_racing_for_the_dev_key_all_read_one_complete_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        pems = list(pool.map(lambda _: keys._dev_key_pem(tmp_path), range(8)))

    assert len(set(pems)) == 1
    assert keys.load(pems[0]).id_token.alg == "RS256"
    assert [path.name for path in tmp_path.iterdir()] == ["oauth_signing_key.pem"]

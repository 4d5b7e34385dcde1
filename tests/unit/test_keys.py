"""The provider's keys: the configured key signs ID tokens, a derived P-256 key access tokens."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.errors import BadSignatureError

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


CLAIMS = {"iss": "https://forum.example", "sub": "01HX", "scope": "openid é", "exp": 2**40}


@pytest.mark.parametrize(
    ("pem", "access_alg"), [(RSA_PEM, "ES256"), (RSA_PEM, "RS256"), (p256_pem(), "ES256")]
)
def test_compact_jwts_verify_with_joserfc_and_carry_exactly_their_header(
    pem: str, access_alg: str
) -> None:
    loaded = keys.load(pem, access_alg)
    for key in (loaded.access_token, loaded.id_token):
        token = keys.compact_jwt(key, "at+jwt", CLAIMS)
        decoded = jwt.decode(token, key.key, algorithms=[key.alg])
        assert decoded.header == {"alg": key.alg, "typ": "at+jwt", "kid": key.kid}
        assert decoded.claims == CLAIMS
        assert "=" not in token and token.count(".") == 2
        # The other provider key (or the other algorithm) does not verify it.
        other = (
            keys._es256(keys._pem(ec.generate_private_key(ec.SECP256R1())))
            if key.alg == "ES256"
            else keys.load(keys._generate_pem(), "RS256").id_token
        )
        with pytest.raises(BadSignatureError):
            jwt.decode(token, other.key, algorithms=[key.alg])


def test_es256_signatures_are_raw_r_and_s_not_der() -> None:
    """RFC 7518 §3.4: the JWS signature is R || S, 32 octets each, whatever DER would say."""
    key = keys.load(RSA_PEM).access_token
    for _ in range(20):  # DER lengths vary with leading zero bytes; the JWS form never does
        signature = keys.compact_jwt(key, "at+jwt", CLAIMS).rsplit(".", 1)[1]
        assert len(base64.urlsafe_b64decode(signature + "==")) == 64


def test_access_tokens_are_signed_without_joserfc_encoding_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(*_args: object, **_kwargs: object) -> str:
        raise AssertionError("jwt.encode called")

    monkeypatch.setattr(jwt, "encode", refused)
    key = keys.load(RSA_PEM).access_token
    token = keys.compact_jwt(key, "at+jwt", CLAIMS)
    assert jwt.decode(token, key.key, algorithms=["ES256"]).claims == CLAIMS

"""A resource server and an OAuth client built only from independent libraries, configured with
nothing but patd's URL: PyJWT's PyJWKClient verifies patd's access tokens (signature, issuer,
audience, type) from the RFC 8414 discovery document and the JWKS it names, and Authlib
introspects (RFC 7662) and revokes (RFC 7009) through the endpoints that document names.
Run by sdk-checks/run."""

import os
import time

import jwt
import requests
from authlib.integrations.requests_client import OAuth2Session
from common import URL, check, finish

RS_ID, RS_SECRET = os.environ["PATD_RS_ID"], os.environ["PATD_RS_SECRET"]
ALICE_ID, ALICE_SECRET = os.environ["PATD_ALICE_ID"], os.environ["PATD_ALICE_SECRET"]
SHORT_ID, SHORT_SECRET = os.environ["PATD_SHORT_ID"], os.environ["PATD_SHORT_SECRET"]
BOB_ID, BOB_SECRET = os.environ["PATD_BOB_ID"], os.environ["PATD_BOB_SECRET"]

# Discovery is all the configuration either side gets.
METADATA = requests.get(f"{URL}/.well-known/oauth-authorization-server", timeout=10).json()


def client(client_id, client_secret):
    """An Authlib client of patd, authenticating with HTTP Basic (client_secret_basic)."""
    return OAuth2Session(
        client_id,
        client_secret,
        token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic",
    )


def mint(client_id, client_secret):
    """An access token, fetched by Authlib from the discovered token endpoint."""
    token = client(client_id, client_secret).fetch_token(
        METADATA["token_endpoint"], grant_type="client_credentials"
    )
    return token["access_token"]


def verify(token, audience):
    """What a resource server does with PyJWT: the key from the discovered JWKS by `kid`, then
    the signature, `exp`, `iss` and `aud`, and RFC 9068's `typ`."""
    jwks = jwt.PyJWKClient(METADATA["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(token)
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt", header
    return jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience=audience,
        issuer=METADATA["issuer"],
        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti", "client_id"]},
    )


def introspect(as_client, token):
    response = as_client.introspect_token(METADATA["introspection_endpoint"], token=token)
    return response.status_code, response.json()


def active(token):
    status, body = introspect(client(RS_ID, RS_SECRET), token)
    assert status == 200, (status, body)
    if not body["active"]:
        assert body == {"active": False}, body
    return body["active"]


short_lived = mint(SHORT_ID, SHORT_SECRET)
short_minted = time.monotonic()


@check("discovery: issuer, endpoints, grant type and auth methods")
def _():
    assert METADATA["issuer"] == URL, METADATA
    assert METADATA["token_endpoint"] == f"{URL}/oauth/token"
    assert METADATA["grant_types_supported"] == ["client_credentials"]
    assert "client_secret_basic" in METADATA["token_endpoint_auth_methods_supported"]
    openid = requests.get(f"{URL}/.well-known/openid-configuration", timeout=10).json()
    assert openid == METADATA


@check("PyJWKClient verifies a patd token with its audience checked, from discovery alone")
def _():
    token = mint(ALICE_ID, ALICE_SECRET)
    claims = verify(token, audience=URL)
    assert claims["client_id"] == ALICE_ID
    assert claims["sub"] == claims["identity_id"]
    try:
        verify(token, audience="https://someone-else.example.com")
    except jwt.InvalidAudienceError:
        pass
    else:
        raise AssertionError("a token for patd verified for another audience")


@check("Authlib introspection: an active token, with its claims")
def _():
    token = mint(ALICE_ID, ALICE_SECRET)
    status, body = introspect(client(RS_ID, RS_SECRET), token)
    assert status == 200, body
    claims = jwt.decode(token, options={"verify_signature": False})
    assert body["active"] is True, body
    for name in ["client_id", "sub", "exp", "iat", "iss", "jti"]:
        assert body[name] == claims[name], (name, body, claims)
    assert body["username"] == claims["user_name"]
    assert body["scope"] == " ".join(claims["scope"])
    assert body["token_type"] == "Bearer"


@check("Authlib introspection: garbage is inactive, with no reason")
def _():
    for token in ["garbage", "a.b.c", ALICE_SECRET]:
        assert active(token) is False, token


@check("Authlib introspection: a caller without patd:token-introspection gets 403")
def _():
    status, body = introspect(client(BOB_ID, BOB_SECRET), mint(ALICE_ID, ALICE_SECRET))
    assert status == 403 and body["error"] == "insufficient_scope", (status, body)
    status, body = introspect(client(BOB_ID, "patd_not_a_secret"), "garbage")
    assert status == 401 and body["error"] == "invalid_client", (status, body)


@check("Authlib revocation: the revoked token is inactive and refused; its PAT lives on")
def _():
    token = mint(ALICE_ID, ALICE_SECRET)
    assert active(token) is True
    response = client(ALICE_ID, ALICE_SECRET).revoke_token(
        METADATA["revocation_endpoint"], token=token, token_type_hint="access_token"
    )
    assert response.status_code == 200 and response.content == b"", response.text
    assert active(token) is False
    listed = requests.get(
        f"{URL}/v3/personal-access-tokens",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert listed.status_code == 401, listed.status_code
    assert active(mint(ALICE_ID, ALICE_SECRET)) is True


@check("Authlib revocation: another client may not revoke a token it was not issued")
def _():
    token = mint(ALICE_ID, ALICE_SECRET)
    response = client(BOB_ID, BOB_SECRET).revoke_token(METADATA["revocation_endpoint"], token=token)
    assert response.status_code == 400, response.status_code
    assert response.json()["error"] == "unauthorized_client"
    assert active(token) is True


@check("Authlib introspection: a deleted PAT's token is inactive")
def _():
    token = mint(ALICE_ID, ALICE_SECRET)
    created = requests.post(
        f"{URL}/v3/personal-access-tokens",
        headers={"Authorization": f"Bearer {token}"},
        json={"name": "doomed", "scope": ["sp:scopes:all"]},
        timeout=10,
    ).json()
    doomed = mint(created["id"], created["secret"])
    assert active(doomed) is True
    deleted = requests.delete(
        f"{URL}/v3/personal-access-tokens/{created['id']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert deleted.status_code == 204, deleted.status_code
    assert active(doomed) is False


@check("Authlib introspection: an expired token is inactive, and PyJWT refuses it")
def _():
    assert active(short_lived) is True
    # accessTokenValiditySeconds is 15 for this PAT.
    time.sleep(max(0.0, 16 - (time.monotonic() - short_minted)))
    assert active(short_lived) is False
    try:
        verify(short_lived, audience=URL)
    except jwt.ExpiredSignatureError:
        pass
    else:
        raise AssertionError("an expired token verified")


finish()

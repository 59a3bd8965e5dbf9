"""sailpoint==2.1.72's `shared_signals_framework_ssf` module, unmodified, against patd's Shared
Signals transmitter: metadata, JWKS, a push stream to a receiver this script runs
(http.server on 127.0.0.1), get/put/patch/status/verify/delete, and a poll stream whose
acknowledged SETs are not sent again. Every SET's signature is verified against /ssf/v1/jwks
with PyJWT (an independent JWT library), with its typ, iss, aud and event type checked."""

import base64
import datetime
import http.server
import json
import os
import threading
import time
import urllib.request
import uuid

import jwt
from sailpoint.personal_access_tokens import ApiClient as PatApiClient
from sailpoint.personal_access_tokens import (CreatePersonalAccessTokenRequest,
                                              PersonalAccessTokensApi)
from sailpoint.shared_signals_framework_ssf import (ApiClient, CreateStreamDeliveryRequest,
                                                    CreateStreamRequest, DeliveryRequest,
                                                    ReplaceStreamConfigurationRequest,
                                                    ReplaceStreamConfigurationRequestDelivery,
                                                    SharedSignalsFrameworkSSFApi,
                                                    UpdateStreamConfigurationRequest,
                                                    UpdateStreamStatusRequest, VerificationRequest)
from sailpoint.shared_signals_framework_ssf import exceptions

from common import check, configuration, expect_raises, finish, in_days

URL = os.environ["PATD_SSF_URL"]
ADMIN_ID = os.environ["PATD_SSF_ID"]
ADMIN_SECRET = os.environ["PATD_SSF_SECRET"]
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
CREDENTIAL_CHANGE = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
RECEIVER_AUTHORIZATION = "Bearer receiver-" + uuid.uuid4().hex

ADMIN = configuration(ADMIN_ID, ADMIN_SECRET, URL)
JWKS = jwt.PyJWKClient(URL + "/ssf/v1/jwks")


class Receiver(http.server.BaseHTTPRequestHandler):
    """An RFC 8935 push receiver: keeps every request, answers 202."""

    received = []
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
        with Receiver.lock:
            Receiver.received.append((dict(self.headers), body))
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


SERVER = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=SERVER.serve_forever, daemon=True).start()
RECEIVER_URL = f"http://127.0.0.1:{SERVER.server_address[1]}/events"


def verify(token, audience):
    """PyJWT's verdict on a SET: its signature against /ssf/v1/jwks, typ, iss and aud."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "secevent+jwt", header
    assert header["alg"] == "RS256", header
    key = JWKS.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=URL,
                        options={"require": ["iss", "aud", "iat", "jti"]})
    assert len(claims["events"]) == 1, claims
    return claims


def pushed(count, within=10.0):
    """The first `count` pushed SETs, each checked for RFC 8935's framing and verified."""
    deadline = time.time() + within
    while time.time() < deadline:
        with Receiver.lock:
            if len(Receiver.received) >= count:
                break
        time.sleep(0.05)
    with Receiver.lock:
        got = list(Receiver.received)
    assert len(got) >= count, f"{len(got)} of {count} SETs arrived"
    claims = []
    for headers, body in got:
        lowered = {name.lower(): value for name, value in headers.items()}
        assert lowered["content-type"] == "application/secevent+jwt", lowered
        assert lowered["authorization"] == RECEIVER_AUTHORIZATION
        claims.append(verify(body, ADMIN_ID))
    return claims


def event_type(claims):
    return next(iter(claims["events"]))


def raw(method, path, token, body=None, content_type="application/json"):
    request = urllib.request.Request(URL + path if path.startswith("/") else path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": "Bearer " + token,
                                              "Content-Type": content_type})
    with urllib.request.urlopen(request) as response:
        text = response.read().decode()
        return response.status, (json.loads(text) if text else None)


STATE = {}


def report_leak(secret):
    """A GitHub-style secret-scanning report of `secret`, signed with ECDSA P-256 by the key the
    server was given (cryptography, not patd, signs)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    body = json.dumps([{"token": secret, "type": "patd_personal_access_token",
                        "url": "https://github.com/octo/repo/blob/main/ci.yml",
                        "source": "content"}]).encode()
    with open(os.environ["PATD_SCAN_KEY"], "rb") as pem:
        key = serialization.load_pem_private_key(pem.read(), None)
    signature = base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
    request = urllib.request.Request(URL + "/patd/v1/secret-scanning/reports", data=body, headers={
        "Content-Type": "application/json", "Github-Public-Key-Identifier": "sdk-check",
        "Github-Public-Key-Signature": signature})
    with urllib.request.urlopen(request) as response:
        labels = json.loads(response.read())
    assert labels[0]["label"] == "true_positive", labels


def basic(client_id, client_secret):
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def exchange(client_id, client_secret):
    form = b"grant_type=client_credentials"
    request = urllib.request.Request(URL + "/oauth/token", data=form, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": basic(client_id, client_secret)})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())["access_token"]


def revoke_access_token(client_id, client_secret, token):
    request = urllib.request.Request(URL + "/oauth/revoke", data=f"token={token}".encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": basic(client_id, client_secret)})
    with urllib.request.urlopen(request) as response:
        assert response.status == 200


@check("ssf: transmitter metadata and JWKS through the SDK's models")
def metadata():
    with ApiClient(ADMIN) as api_client:
        api = SharedSignalsFrameworkSSFApi(api_client)
        found = api.get_ssf_configuration_v1()
        assert found.spec_version == "1_0" and found.issuer == URL, found
        assert found.jwks_uri == URL + "/ssf/v1/jwks"
        assert found.configuration_endpoint == URL + "/ssf/v1/streams"
        assert found.status_endpoint == URL + "/ssf/v1/streams/status"
        assert found.verification_endpoint == URL + "/ssf/v1/streams/verify"
        assert PUSH in found.delivery_methods_supported and POLL in found.delivery_methods_supported
        assert "urn:ietf:rfc:6750" in [scheme.spec_urn for scheme in found.authorization_schemes]
        keys = api.get_jwks_data_v1().keys
        assert keys and all(key.kty == "RSA" and key.alg == "RS256" and key.n and key.e and key.kid
                            for key in keys), keys


@check("ssf: create a push stream, one per client id (409 for a second)")
def create():
    with ApiClient(ADMIN) as api_client:
        api = SharedSignalsFrameworkSSFApi(api_client)
        request = CreateStreamRequest(
            delivery=CreateStreamDeliveryRequest(method=PUSH, endpoint_url=RECEIVER_URL,
                                                 authorization_header=RECEIVER_AUTHORIZATION),
            events_requested=[SESSION_REVOKED, CREDENTIAL_CHANGE], description="sdk check")
        created = api.create_stream_v1(request)
        assert created.stream_id and created.iss == URL and created.aud == ADMIN_ID, created
        assert created.delivery.method == PUSH and created.delivery.endpoint_url == RECEIVER_URL
        assert created.events_delivered == [SESSION_REVOKED, CREDENTIAL_CHANGE]
        STATE["push"] = created.stream_id
        expect_raises(exceptions.ApiException, 409, lambda: api.create_stream_v1(request))


@check("ssf: get one and all, replace, update")
def read_replace_update():
    stream_id = STATE["push"]
    with ApiClient(ADMIN) as api_client:
        api = SharedSignalsFrameworkSSFApi(api_client)
        one = api.get_stream_v1(stream_id=stream_id).actual_instance
        assert one.stream_id == stream_id and one.description == "sdk check", one
        every = api.get_stream_v1().actual_instance
        assert stream_id in [stream.stream_id for stream in every], every
        replaced = api.set_stream_configuration_v1(ReplaceStreamConfigurationRequest(
            stream_id=stream_id,
            delivery=ReplaceStreamConfigurationRequestDelivery(
                method=PUSH, endpoint_url=RECEIVER_URL, authorization_header=RECEIVER_AUTHORIZATION),
            events_requested=[SESSION_REVOKED, CREDENTIAL_CHANGE], description="replaced"))
        assert replaced.description == "replaced" and replaced.updated_at is not None, replaced
        updated = api.update_stream_configuration_v1(UpdateStreamConfigurationRequest(
            stream_id=stream_id, description="patched", delivery=DeliveryRequest(endpoint_url=RECEIVER_URL)))
        assert updated.description == "patched" and updated.delivery.endpoint_url == RECEIVER_URL
        assert updated.events_requested == [SESSION_REVOKED, CREDENTIAL_CHANGE]
        expect_raises(exceptions.NotFoundException, 404,
                      lambda: api.get_stream_v1(stream_id="0123456789abcdef0123456789abcdef"))


@check("ssf: status read, paused and enabled again")
def status():
    stream_id = STATE["push"]
    with ApiClient(ADMIN) as api_client:
        api = SharedSignalsFrameworkSSFApi(api_client)
        assert api.get_stream_status_v1(stream_id=stream_id).status == "enabled"
        paused = api.update_stream_status_v1(UpdateStreamStatusRequest(
            stream_id=stream_id, status="paused", reason="sdk check"))
        assert paused.status == "paused" and paused.reason == "sdk check", paused
        enabled = api.update_stream_status_v1(UpdateStreamStatusRequest(stream_id=stream_id, status="enabled"))
        assert enabled.status == "enabled"


@check("ssf: verification SET carries the state, signature verified by PyJWT")
def verification():
    stream_id = STATE["push"]
    with ApiClient(ADMIN) as api_client:
        api = SharedSignalsFrameworkSSFApi(api_client)
        api.send_stream_verification_v1(VerificationRequest(stream_id=stream_id, state="sdk-state"))
    claims = pushed(1)[0]
    assert event_type(claims) == VERIFICATION, claims
    assert claims["events"][VERIFICATION]["state"] == "sdk-state"
    assert claims["sub_id"] == {"format": "opaque", "id": stream_id}


@check("ssf: one SET per change (deleted, revoked by secret, rotated, scope patched, leaked, "
       "access token revoked, expired), verified")
def changes():
    before = len(Receiver.received)
    with PatApiClient(ADMIN) as pat_client:
        pats = PersonalAccessTokensApi(pat_client)
        new = lambda name: pats.create_personal_access_token_v1(CreatePersonalAccessTokenRequest(
            name=f"{name} {uuid.uuid4().hex[:8]}", scope=["sp:scopes:all"], expiration_date=in_days(30)))
        deleted = new("deleted")
        pats.delete_personal_access_token_v1(deleted.id)
        revoked = new("revoked")
        form = f"token={revoked.secret}".encode()
        with urllib.request.urlopen(urllib.request.Request(URL + "/oauth/revoke", data=form, headers={
                "Content-Type": "application/x-www-form-urlencoded"})) as response:
            assert response.status == 200
        rotated = new("rotated")
        status, _ = raw("POST", f"/patd/v1/personal-access-tokens/{rotated.id}/rotate", ADMIN.access_token)
        assert status == 200
        scoped = new("scoped")
        # The SDK's patch-value model takes no array of strings, so the scope patch goes raw.
        status, _ = raw("PATCH", f"/personal-access-tokens/v1/{scoped.id}", ADMIN.access_token,
                        [{"op": "replace", "path": "/scope", "value": ["sp:my-personal-access-tokens:read"]}],
                        "application/json-patch+json")
        assert status == 200
        leaked = new("leaked")
        report_leak(leaked.secret)
        minted = new("minted")
        token = exchange(minted.id, minted.secret)
        revoke_access_token(minted.id, minted.secret, token)
        # Expires in a few seconds; the server's expiry scan (every 30 s) tells of it.
        expiring = pats.create_personal_access_token_v1(CreatePersonalAccessTokenRequest(
            name=f"expiring {uuid.uuid4().hex[:8]}", scope=["sp:scopes:all"],
            expiration_date=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)))
    expected = [(deleted.id, SESSION_REVOKED), (revoked.id, SESSION_REVOKED),
                (rotated.id, CREDENTIAL_CHANGE), (scoped.id, CREDENTIAL_CHANGE),
                (leaked.id, SESSION_REVOKED), (minted.id, SESSION_REVOKED),
                (expiring.id, SESSION_REVOKED)]
    got = pushed(before + len(expected), within=60.0)[before:]
    seen = [(claims["sub_id"]["id"], event_type(claims)) for claims in got]
    assert seen == expected, seen
    # The revoked access token is named by its jti; the PATs' own ends name the PAT alone.
    assert got[5]["sub_id"]["jti"] == jwt.decode(token, options={"verify_signature": False})["jti"]
    assert all("jti" not in claims["sub_id"] for i, claims in enumerate(got) if i != 5)
    for claims in got:
        body = claims["events"][event_type(claims)]
        assert isinstance(body["event_timestamp"], int)
        if event_type(claims) == CREDENTIAL_CHANGE:
            assert body["credential_type"] == "password" and body["change_type"] == "update", body


@check("ssf: a poll stream returns SETs until acknowledged, never after")
def poll():
    with PatApiClient(ADMIN) as pat_client:
        pats = PersonalAccessTokensApi(pat_client)
        receiver_pat = pats.create_personal_access_token_v1(CreatePersonalAccessTokenRequest(
            name=f"poller {uuid.uuid4().hex[:8]}", scope=["sp:scopes:all"], expiration_date=in_days(30)))
        poller = configuration(receiver_pat.id, receiver_pat.secret, URL)
        with ApiClient(poller) as api_client:
            api = SharedSignalsFrameworkSSFApi(api_client)
            created = api.create_stream_v1(CreateStreamRequest(
                delivery=CreateStreamDeliveryRequest(method=POLL, endpoint_url=""),
                events_requested=[SESSION_REVOKED]))
            assert created.delivery.method == POLL and created.aud == receiver_pat.id, created
            endpoint = created.delivery.endpoint_url
            assert endpoint.startswith(URL + "/ssf/v1/streams/poll"), endpoint
            ids = []
            for n in range(2):
                pat = pats.create_personal_access_token_v1(CreatePersonalAccessTokenRequest(
                    name=f"polled {n} {uuid.uuid4().hex[:8]}", expiration_date=in_days(30)))
                pats.delete_personal_access_token_v1(pat.id)
                ids.append(pat.id)
            _, first = raw("POST", endpoint, poller.access_token, {"returnImmediately": True, "maxEvents": 10})
            sets = first["sets"]
            assert len(sets) == 2 and first["moreAvailable"] is False, first
            subjects = []
            for jti, token in sets.items():
                claims = verify(token, receiver_pat.id)
                assert claims["jti"] == jti and event_type(claims) == SESSION_REVOKED
                subjects.append(claims["sub_id"]["id"])
            assert sorted(subjects) == sorted(ids), subjects
            _, again = raw("POST", endpoint, poller.access_token, {"returnImmediately": True})
            assert again["sets"] == sets, "not acknowledged: sent again"
            _, after = raw("POST", endpoint, poller.access_token, {"ack": list(sets), "returnImmediately": True})
            assert after["sets"] == {}, after
            _, later = raw("POST", endpoint, poller.access_token, {"returnImmediately": True})
            assert later == {"sets": {}, "moreAvailable": False}, later
            api.delete_stream_v1(stream_id=created.stream_id)


@check("ssf: delete the push stream")
def delete():
    stream_id = STATE["push"]
    with ApiClient(ADMIN) as api_client:
        api = SharedSignalsFrameworkSSFApi(api_client)
        api.delete_stream_v1(stream_id=stream_id)
        expect_raises(exceptions.NotFoundException, 404, lambda: api.get_stream_v1(stream_id=stream_id))
        expect_raises(exceptions.NotFoundException, 404, lambda: api.delete_stream_v1(stream_id=stream_id))


finish()

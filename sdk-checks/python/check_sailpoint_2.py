"""sailpoint==2.1.72 against patd: the `personal_access_tokens` module (the
/personal-access-tokens/v1 routes), every operation including the bulk update, and the error
paths, authenticating from a base URL, client id and secret."""

import json
import uuid

from sailpoint.personal_access_tokens import (ApiClient, BulkUpdatePersonalAccessTokensRequest,
                                              CreatePersonalAccessTokenRequest, JsonPatchOperation,
                                              PersonalAccessTokensApi)
from sailpoint.personal_access_tokens import exceptions

from common import (ADMIN_ID, ADMIN_SECRET, LIMITED_ID, LIMITED_SECRET, LIMITED_URL, READER_ID,
                    READER_SECRET, check, configuration, expect_raises, finish, in_days)




ADMIN = configuration(ADMIN_ID, ADMIN_SECRET)
READER = configuration(READER_ID, READER_SECRET)


def op(operation, path, value=None):
    document = {"op": operation, "path": path}
    if value is not None or operation == "replace":
        document["value"] = value
    return JsonPatchOperation.from_dict(document)


@check("v1: create, list, patch, delete")
def crud():
    with ApiClient(ADMIN) as api_client:
        api = PersonalAccessTokensApi(api_client)
        name = f"sdk v1 {uuid.uuid4().hex[:8]}"
        created = api.create_personal_access_token_v1(CreatePersonalAccessTokenRequest(
            name=name, scope=["sp:scopes:all"], access_token_validity_seconds=600, expiration_date=in_days(400)))
        assert created.secret.startswith("patd_") and created.name == name
        listed = api.list_personal_access_tokens_v1(owner_id="me", filters=f'name eq "{name}"')
        assert [item.id for item in listed] == [created.id]
        assert listed[0].user_aware_token_never_expires is False
        patched = api.patch_personal_access_token_v1(created.id, [op("replace", "/name", f"{name} renamed")])
        assert patched.name == f"{name} renamed"
        with ApiClient(configuration(created.id, created.secret)) as own_client:
            mine = PersonalAccessTokensApi(own_client).list_personal_access_tokens_v1(owner_id="me")
            assert created.id in [item.id for item in mine]
        api.delete_personal_access_token_v1(created.id)
        assert created.id not in [item.id for item in api.list_personal_access_tokens_v1()]


@check("v1: never-expiring create (the create-response model needs a date: read the raw body)")
def never_expiring():
    with ApiClient(ADMIN) as api_client:
        api = PersonalAccessTokensApi(api_client)
        request = CreatePersonalAccessTokenRequest(name=f"forever {uuid.uuid4().hex[:8]}", user_aware_token_never_expires=True)
        # The published create-response schema requires expirationDate, so the typed call cannot
        # read the (correct) null the server returns for a never-expiring PAT...
        try:
            api.create_personal_access_token_v1(request)
        except Exception as error:  # pydantic's ValidationError inside the SDK
            assert "expiration" in str(error).lower(), error
        else:
            raise AssertionError("the SDK read a null expirationDate")
        # ...so use the raw response, which the SDK offers for exactly this.
        request.name = f"forever {uuid.uuid4().hex[:8]}"
        response = api.create_personal_access_token_v1_without_preload_content(request)
        assert response.status == 200
        body = json.loads(response.data)
        assert body["expirationDate"] is None and body["secret"].startswith("patd_")
        listed = api.list_personal_access_tokens_v1(filters=f'name eq "{body["name"]}"')
        assert listed[0].expiration_date is None and listed[0].user_aware_token_never_expires is True


@check("v1: bulk update, all or nothing")
def bulk():
    with ApiClient(ADMIN) as api_client:
        api = PersonalAccessTokensApi(api_client)
        ids = [api.create_personal_access_token_v1(CreatePersonalAccessTokenRequest(
            name=f"bulk {n} {uuid.uuid4().hex[:6]}", expiration_date=in_days(10))).id for n in range(3)]
        updated = api.update_bulk_personal_access_tokens_v1(BulkUpdatePersonalAccessTokensRequest(
            ids=ids, patch=[op("replace", "/expirationDate", in_days(500).isoformat())]))
        assert sorted(item.id for item in updated) == sorted(ids)
        cleared = api.update_bulk_personal_access_tokens_v1(BulkUpdatePersonalAccessTokensRequest(
            ids=ids, patch=[op("remove", "/expirationDate"), op("replace", "/userAwareTokenNeverExpires", True)]))
        assert all(item.expiration_date is None for item in cleared)
        error = expect_raises(exceptions.BadRequestException, 400, lambda: api.update_bulk_personal_access_tokens_v1(
            BulkUpdatePersonalAccessTokensRequest(ids=ids + ["86f1dc6fe8f54414950454cbb11278fa"],
                                                  patch=[op("replace", "/expirationDate", in_days(9).isoformat())])))
        assert "86f1dc6fe8f54414950454cbb11278fa" in str(error.body)
        for pat_id in ids:
            api.delete_personal_access_token_v1(pat_id)


@check("v1: errors raise the SDK's typed exceptions")
def errors():
    with ApiClient(ADMIN) as api_client:
        api = PersonalAccessTokensApi(api_client)
        expect_raises(exceptions.NotFoundException, 404,
                      lambda: api.delete_personal_access_token_v1("86f1dc6fe8f54414950454cbb11278fa"))
        error = expect_raises(exceptions.BadRequestException, 400,
                              lambda: api.create_personal_access_token_v1(CreatePersonalAccessTokenRequest(name="no date")))
        assert "userAwareTokenNeverExpires" in str(error.body)
    with ApiClient(READER) as api_client:
        reader = PersonalAccessTokensApi(api_client)
        expect_raises(exceptions.ForbiddenException, 403, lambda: reader.list_personal_access_tokens_v1())
        expect_raises(exceptions.ForbiddenException, 403, lambda: reader.update_bulk_personal_access_tokens_v1(
            BulkUpdatePersonalAccessTokensRequest(ids=["86f1dc6fe8f54414950454cbb11278fa"],
                                                  patch=[op("replace", "/expirationDate", in_days(9).isoformat())])))
    bogus = configuration(ADMIN_ID, ADMIN_SECRET)
    bogus.access_token = "not.a.jwt"
    with ApiClient(bogus) as api_client:
        expect_raises(exceptions.UnauthorizedException, 401,
                      lambda: PersonalAccessTokensApi(api_client).list_personal_access_tokens_v1())


@check("v1: 429 raised without retries")
def rate_limited():
    limited = configuration(LIMITED_ID, LIMITED_SECRET, LIMITED_URL)
    limited.retries = 0
    with ApiClient(limited) as api_client:
        api = PersonalAccessTokensApi(api_client)
        for _ in range(5):
            try:
                api.list_personal_access_tokens_v1(owner_id="me")
            except exceptions.ApiException as error:
                assert error.status == 429, error.status
                return
        raise AssertionError("the limit was never reached")


finish()

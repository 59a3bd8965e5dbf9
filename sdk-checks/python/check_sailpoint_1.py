"""sailpoint==1.3.9 against patd: modules v3, beta, v2024 and v2025, every PAT operation and the
error paths, each module authenticating from a base URL, client id and secret."""

import uuid

import sailpoint.beta
import sailpoint.v2024
import sailpoint.v2025
import sailpoint.v3

from common import (ADMIN_ID, ADMIN_SECRET, LIMITED_ID, LIMITED_SECRET, LIMITED_URL, READER_ID,
                    READER_SECRET, check, configuration, expect_raises, finish, in_days)




ADMIN = configuration(ADMIN_ID, ADMIN_SECRET)
READER = configuration(READER_ID, READER_SECRET)
MODULES = {"v3": sailpoint.v3, "beta": sailpoint.beta, "v2024": sailpoint.v2024, "v2025": sailpoint.v2025}


def patch_op(module, op, path, value):
    # The value's wrapper class is named differently in each module; from_dict finds it.
    return module.JsonPatchOperation.from_dict({"op": op, "path": path, "value": value})


for name, module in MODULES.items():
    exceptions = module.exceptions

    @check(f"{name}: create, list, patch, delete")
    def crud(module=module, name=name):
        with module.ApiClient(ADMIN) as api_client:
            api = module.PersonalAccessTokensApi(api_client)
            token_name = f"sdk {name} {uuid.uuid4().hex[:8]}"
            request = module.CreatePersonalAccessTokenRequest(
                name=token_name,
                scope=["sp:scopes:all"],
                access_token_validity_seconds=600,
                expiration_date=in_days(30),
            )
            created = api.create_personal_access_token(request)
            assert len(created.id) == 32 and created.secret.startswith("patd_")
            assert created.name == token_name and created.access_token_validity_seconds == 600
            assert created.owner.id and created.owner.type == "IDENTITY"

            listed = api.list_personal_access_tokens(owner_id="me", filters=f'name eq "{token_name}"')
            assert [item.id for item in listed] == [created.id]
            assert listed[0].last_used is None and listed[0].managed is False
            everyone = api.list_personal_access_tokens()
            assert created.id in [item.id for item in everyone]
            assert api.list_personal_access_tokens(filters="lastUsed isnull") is not None

            renamed = f"{token_name} renamed"
            patched = api.patch_personal_access_token(created.id, [patch_op(module, "replace", "/name", renamed)])
            assert patched.name == renamed

            # The new PAT mints its own tokens through the SDK's own exchange.
            own = configuration(created.id, created.secret)
            with module.ApiClient(own) as own_client:
                mine = module.PersonalAccessTokensApi(own_client).list_personal_access_tokens(owner_id="me")
                assert created.id in [item.id for item in mine]

            assert api.delete_personal_access_token(created.id) is None
            assert created.id not in [item.id for item in api.list_personal_access_tokens()]

    @check(f"{name}: errors raise the SDK's typed exceptions")
    def errors(module=module, exceptions=exceptions):
        with module.ApiClient(ADMIN) as api_client:
            api = module.PersonalAccessTokensApi(api_client)
            error = expect_raises(exceptions.NotFoundException, 404,
                                  lambda: api.delete_personal_access_token("86f1dc6fe8f54414950454cbb11278fa"))
            assert "404" in str(error.body)
            error = expect_raises(exceptions.BadRequestException, 400,
                                  lambda: api.create_personal_access_token(module.CreatePersonalAccessTokenRequest(name=" ")))
            assert "name must not be blank" in str(error.body)
            target = api.create_personal_access_token(module.CreatePersonalAccessTokenRequest(
                name=f"target {uuid.uuid4().hex[:8]}", expiration_date=in_days(3)))
            error = expect_raises(exceptions.BadRequestException, 400,
                                  lambda: api.patch_personal_access_token(target.id, [patch_op(module, "replace", "/id", "x")]))
            assert "path '/id' is not patchable" in str(error.body)
            api.delete_personal_access_token(target.id)
        with module.ApiClient(READER) as api_client:
            reader = module.PersonalAccessTokensApi(api_client)
            expect_raises(exceptions.ForbiddenException, 403,
                          lambda: reader.create_personal_access_token(
                              module.CreatePersonalAccessTokenRequest(name="nope", expiration_date=in_days(1))))
            expect_raises(exceptions.ForbiddenException, 403, lambda: reader.list_personal_access_tokens())
        bogus = configuration(ADMIN_ID, ADMIN_SECRET)
        bogus.access_token = "not.a.jwt"
        with module.ApiClient(bogus) as api_client:
            expect_raises(exceptions.UnauthorizedException, 401,
                          lambda: module.PersonalAccessTokensApi(api_client).list_personal_access_tokens())

    @check(f"{name}: 429 is waited out by default, and raised without retries")
    def rate_limited(module=module, exceptions=exceptions):
        limited = configuration(LIMITED_ID, LIMITED_SECRET, LIMITED_URL)
        # urllib3 honours Retry-After on a 429 by default: every call ends in success.
        with module.ApiClient(limited) as api_client:
            api = module.PersonalAccessTokensApi(api_client)
            for _ in range(4):
                api.list_personal_access_tokens(owner_id="me")
        limited.retries = 0
        with module.ApiClient(limited) as api_client:
            api = module.PersonalAccessTokensApi(api_client)
            for _ in range(5):
                try:
                    api.list_personal_access_tokens(owner_id="me")
                except exceptions.ApiException as error:
                    assert error.status == 429, error.status
                    assert "Rate Limit Exceeded" in str(error.body)
                    assert int(error.headers["Retry-After"]) >= 1
                    return
            raise AssertionError("the limit was never reached")


@check("bad credentials: the SDK's token fetch is refused")
def bad_credentials():
    # The 1.x SDK catches the 401 from /oauth/token, prints "Unable to fetch access token.
    # Unauthorized when retrieving access token." and leaves the configuration without a token;
    # it has no typed exception for this case.
    refused = configuration(ADMIN_ID, "patd_wrong")
    assert refused.access_token is None


@check("never-expiring PATs read back with a null expirationDate in v3 and v2025")
def never_expiring():
    # 1.3.9's v2025 request model predates userAwareTokenNeverExpires, so a create without a date
    # is refused with the rule that names it; such PATs are made with v1 (sailpoint 2.x) or
    # `patd token create --expires never`, and every module lists them.
    with sailpoint.v2025.ApiClient(ADMIN) as api_client:
        api = sailpoint.v2025.PersonalAccessTokensApi(api_client)
        error = expect_raises(sailpoint.v2025.exceptions.BadRequestException, 400,
                              lambda: api.create_personal_access_token(
                                  sailpoint.v2025.CreatePersonalAccessTokenRequest(name="no date")))
        assert "userAwareTokenNeverExpires" in str(error.body)
        listed = api.list_personal_access_tokens(filters='name eq "forever"')
        assert len(listed) == 1 and listed[0].expiration_date is None
    with sailpoint.v3.ApiClient(ADMIN) as api_client:
        listed = sailpoint.v3.PersonalAccessTokensApi(api_client).list_personal_access_tokens(filters='name eq "forever"')
        assert len(listed) == 1 and listed[0].expiration_date is None


finish()

// sailpoint-api-client (the official TypeScript SDK) against patd: the PersonalAccessTokens API
// of v3, beta and v2024, every operation and the error paths. The SDK authenticates itself from a
// base URL, client id and secret (a multipart POST /oauth/token).
"use strict";

const sdk = require("sailpoint-api-client");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const URL = env("PATD_URL");
const results = { passed: 0, failed: 0 };

async function check(name, body) {
  try {
    await body();
    results.passed += 1;
    console.log(`ok   ${name}`);
  } catch (error) {
    results.failed += 1;
    console.log(`FAIL ${name}\n     ${error && error.stack ? error.stack : error}`);
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

function configuration(clientId, clientSecret, baseurl = URL) {
  return new sdk.Configuration({ baseurl, clientId, clientSecret, tokenUrl: `${baseurl}/oauth/token` });
}

// The SDK rejects with an AxiosError whose `response` carries the status and the body.
async function expectStatus(status, promise) {
  try {
    await promise;
  } catch (error) {
    assert(error.isAxiosError, `an AxiosError, got ${error}`);
    assert(error.response && error.response.status === status, `status ${error.response && error.response.status}, wanted ${status}`);
    return error.response.data;
  }
  throw new Error(`no error, wanted ${status}`);
}

const inDays = (days) => new Date(Date.now() + days * 86400 * 1000).toISOString();
const suffix = () => Math.random().toString(16).slice(2, 10);

const APIS = {
  v3: sdk.PersonalAccessTokensApi,
  beta: sdk.PersonalAccessTokensBetaApi,
  v2024: sdk.PersonalAccessTokensV2024Api,
};

async function main() {
  const admin = configuration(env("PATD_ADMIN_ID"), env("PATD_ADMIN_SECRET"));
  const reader = configuration(env("PATD_READER_ID"), env("PATD_READER_SECRET"));

  for (const [version, Api] of Object.entries(APIS)) {
    const requestKey = {
      v3: "createPersonalAccessTokenRequest",
      beta: "createPersonalAccessTokenRequestBeta",
      v2024: "createPersonalAccessTokenRequestV2024",
    }[version];
    const patchKey = { v3: "jsonPatchOperation", beta: "jsonPatchOperationBeta", v2024: "jsonPatchOperationV2024" }[version];

    await check(`${version}: create, list, patch, delete`, async () => {
      const api = new Api(admin);
      const name = `ts ${version} ${suffix()}`;
      const created = (await api.createPersonalAccessToken({
        [requestKey]: { name, scope: ["sp:scopes:all"], accessTokenValiditySeconds: 900, expirationDate: inDays(30) },
      })).data;
      assert(created.id.length === 32 && created.secret.startsWith("patd_"), "id and secret");
      assert(created.name === name && created.accessTokenValiditySeconds === 900, "fields");
      assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(created.created), "millisecond timestamps");

      const listed = (await api.listPersonalAccessTokens({ ownerId: "me", filters: `name eq "${name}"` })).data;
      assert(listed.length === 1 && listed[0].id === created.id, "listed");
      assert(listed[0].lastUsed === null && listed[0].managed === false, "nulls present");

      const patched = (await api.patchPersonalAccessToken({
        id: created.id,
        [patchKey]: [{ op: "replace", path: "/name", value: `${name} renamed` }],
      })).data;
      assert(patched.name === `${name} renamed`, "patched");

      // The new PAT authenticates the SDK in its turn.
      const own = new Api(configuration(created.id, created.secret));
      const mine = (await own.listPersonalAccessTokens({ ownerId: "me" })).data;
      assert(mine.some((pat) => pat.id === created.id), "own list");

      const deleted = await api.deletePersonalAccessToken({ id: created.id });
      assert(deleted.status === 204, `delete status ${deleted.status}`);
    });

    await check(`${version}: errors carry the right status and body`, async () => {
      const api = new Api(admin);
      let body = await expectStatus(404, api.deletePersonalAccessToken({ id: "86f1dc6fe8f54414950454cbb11278fa" }));
      assert(body.detailCode === "404 Not found", "404 body");
      body = await expectStatus(400, api.createPersonalAccessToken({ [requestKey]: { name: " " } }));
      assert(body.causes[0].text === "name must not be blank", "400 cause");
      await expectStatus(403, new Api(reader).createPersonalAccessToken({ [requestKey]: { name: "nope", expirationDate: inDays(1) } }));
      await expectStatus(403, new Api(reader).listPersonalAccessTokens({}));
      const forged = new sdk.Configuration({ baseurl: URL, accessToken: "not.a.jwt" });
      body = await expectStatus(401, new Api(forged).listPersonalAccessTokens({}));
      assert(body.error.startsWith("JWT validation failed"), "401 body");
    });
  }

  await check("bad credentials: the token fetch is refused", async () => {
    const refused = configuration(env("PATD_ADMIN_ID"), "patd_wrong");
    let failed = false;
    try {
      await refused.accessToken;
    } catch (error) {
      failed = true;
    }
    assert(failed, "the access token promise rejects");
  });

  await check("v3: 429 is reported with its status and Retry-After", async () => {
    const limited = configuration(env("PATD_LIMITED_ID"), env("PATD_LIMITED_SECRET"), env("PATD_LIMITED_URL"));
    const api = new sdk.PersonalAccessTokensApi(limited);
    for (let n = 0; n < 6; n += 1) {
      try {
        await api.listPersonalAccessTokens({ ownerId: "me" });
      } catch (error) {
        assert(error.response.status === 429, `status ${error.response.status}`);
        assert(error.response.data.message === " Rate Limit Exceeded ", "429 body");
        assert(Number(error.response.headers["retry-after"]) >= 1, "Retry-After");
        return;
      }
    }
    throw new Error("the limit was never reached");
  });

  await check("default failure limits: wrong secrets never lock out the right one", async () => {
    const url = env("PATD_DEFAULTS_URL");
    const id = env("PATD_DEFAULTS_ID");
    // Another server's secret: its checksum holds, so each try counts as a failure of this id.
    const wrong = env("PATD_ADMIN_SECRET");
    const quiet = console.error;
    console.error = () => {}; // the SDK reports each refused token fetch there
    try {
      // Past the default limit of 10 failures per client id and IP.
      for (let n = 0; n < 11; n += 1) {
        let failed = false;
        try {
          await configuration(id, wrong, url).accessToken;
        } catch (error) {
          failed = true;
        }
        assert(failed, "a wrong secret is refused");
      }
    } finally {
      console.error = quiet;
    }
    // The SDK hides the token endpoint's status; ask it directly: this id's failures are limited.
    const form = new URLSearchParams({ grant_type: "client_credentials", client_id: id, client_secret: wrong });
    const refused = await fetch(`${url}/oauth/token`, { method: "POST", body: form });
    assert(refused.status === 429, `status ${refused.status}, wanted 429`);
    assert(Number(refused.headers.get("retry-after")) >= 1, "Retry-After");
    // The right secret is never refused: the SDK authenticates and works from the same IP.
    const api = new sdk.PersonalAccessTokensApi(configuration(id, env("PATD_DEFAULTS_SECRET"), url));
    const mine = (await api.listPersonalAccessTokens({ ownerId: "me" })).data;
    assert(mine.some((pat) => pat.id === id), "own list");
  });

  console.log(`sdk: ${results.passed} passed, ${results.failed} failed`);
  process.exit(results.failed ? 1 : 0);
}

main().catch((error) => {
  console.log(`FAIL setup: ${error && error.stack ? error.stack : error}`);
  console.log(`sdk: ${results.passed} passed, ${results.failed + 1} failed`);
  process.exit(1);
});

// The peer: node oidc-provider issuing JWT access tokens (EdDSA, like patd) for the
// client_credentials grant, on 127.0.0.1:$PORT.
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const port = Number(process.env.PORT || 18902);
const { privateKey } = generateKeyPairSync("ed25519");
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "bench", alg: "EdDSA", use: "sig" };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: "bench",
    client_secret: "bench-secret-bench-secret-bench-secret",
    grant_types: ["client_credentials"],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: "client_secret_post",
    id_token_signed_response_alg: "EdDSA",
  }],
  jwks: { keys: [jwk] },
  ttl: { ClientCredentials: 43200 },
  enabledJWA: { requestObjectSigningAlgValues: ["EdDSA"], idTokenSigningAlgValues: ["EdDSA"] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => "urn:patd:bench",
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "api",
        accessTokenFormat: "jwt",
        accessTokenTTL: 43200,
        jwt: { sign: { alg: "EdDSA" } },
      }),
    },
  },
});
provider.listen(port, "127.0.0.1", () => console.error(`peer listening on http://127.0.0.1:${port}`));

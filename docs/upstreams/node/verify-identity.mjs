// Verify keygate's X-Keygate-Identity header in a Node upstream.
//
// keygate signs every request it forwards with a short-lived EdDSA JWT:
// issuer "keygate", audience the API's name in keygate's config. Verify it
// against keygate's JWKS before trusting anything about the caller.
// Needs the jose package (npm install jose).
import { createRemoteJWKSet, jwtVerify } from "jose";

const keySets = new Map();

// Fetched once, cached, refetched when a JWT names an unknown key id.
function keySet(jwksURL) {
  if (!keySets.has(jwksURL)) keySets.set(jwksURL, createRemoteJWKSet(new URL(jwksURL)));
  return keySets.get(jwksURL);
}

// verifyIdentity returns the identity claims of a request, or throws.
//   headerValue: the request's X-Keygate-Identity header
//   jwksURL: keygate's https://<admin>/.well-known/jwks.json
//   api: the API's name in keygate's config (the JWT's audience)
export async function verifyIdentity(headerValue, jwksURL, api) {
  if (!headerValue) throw new Error("no X-Keygate-Identity header");
  const { payload } = await jwtVerify(headerValue, keySet(jwksURL), {
    algorithms: ["EdDSA"],
    issuer: "keygate",
    audience: api,
    clockTolerance: 5,
    requiredClaims: ["exp", "iat", "sub"],
  });
  return payload;
}

// In an Express handler, for example:
//
//   const claims = await verifyIdentity(req.get("X-Keygate-Identity"), JWKS_URL, "cannmenus");
//   const { org, scopes } = claims;
//   const allowedStates = claims.entitlements.states; // [] means unrestricted

// node verify-identity.mjs JWKS_URL API < header-value
if (import.meta.url === `file://${process.argv[1]}`) {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  try {
    const c = await verifyIdentity(input.trim(), process.argv[2], process.argv[3]);
    console.log(JSON.stringify({ org: c.org, org_slug: c.org_slug, plan: c.plan, scopes: c.scopes, entitlements: c.entitlements }));
  } catch (e) {
    console.error(`refused: ${e.message}`);
    process.exit(1);
  }
}

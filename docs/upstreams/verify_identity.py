"""Verify keygate's X-Keygate-Identity header in a Python upstream.

keygate signs every request it forwards with a short-lived EdDSA JWT:
issuer "keygate", audience the API's name in keygate's config. Verify it
against keygate's JWKS before trusting anything about the caller.

Needs PyJWT 2 with cryptography (Debian: python3-jwt python3-cryptography;
pip: "pyjwt[crypto]").
"""

import json
import sys

import jwt

# Fetched once, cached, refetched when a JWT names an unknown key id.
_jwks = {}


def jwks_client(jwks_url):
    if jwks_url not in _jwks:
        _jwks[jwks_url] = jwt.PyJWKClient(jwks_url, cache_keys=True)
    return _jwks[jwks_url]


def verify_identity(header_value, jwks_url, api):
    """Return the identity claims of a request, or raise jwt.InvalidTokenError.

    header_value: the request's X-Keygate-Identity header.
    jwks_url: keygate's https://<admin>/.well-known/jwks.json
    api: the API's name in keygate's config (the JWT's audience).
    """
    if not header_value:
        raise jwt.InvalidTokenError("no X-Keygate-Identity header")
    key = jwks_client(jwks_url).get_signing_key_from_jwt(header_value)
    return jwt.decode(
        header_value,
        key.key,
        algorithms=["EdDSA"],
        audience=api,
        issuer="keygate",
        leeway=5,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )


# In a Flask view, for example:
#
#   claims = verify_identity(request.headers.get("X-Keygate-Identity"), JWKS_URL, "cannmenus")
#   org, scopes = claims["org"], claims["scopes"]
#   allowed_states = claims["entitlements"]["states"]   # [] means unrestricted

if __name__ == "__main__":
    # python3 verify_identity.py JWKS_URL API < header-value
    try:
        claims = verify_identity(sys.stdin.read().strip(), sys.argv[1], sys.argv[2])
    except jwt.InvalidTokenError as e:
        print("refused: %s" % e, file=sys.stderr)
        sys.exit(1)
    print(json.dumps({
        "org": claims["org"],
        "org_slug": claims["org_slug"],
        "plan": claims["plan"],
        "scopes": claims["scopes"],
        "entitlements": claims["entitlements"],
    }))

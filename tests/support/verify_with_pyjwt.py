#!/usr/bin/env python3
"""Verifies a claimd access token the way an independent service would, with PyJWT.

    verify_with_pyjwt.py ISSUER TOKEN AUDIENCE

Fetches ISSUER/.well-known/openid-configuration, checks that it names ISSUER, follows its
`jwks_uri` with a fresh `jwt.PyJWKClient`, picks the key by the token's `kid` and decodes the
token with the algorithms the metadata advertises, the audience and the issuer (signature,
`exp`, `iat`, `nbf`, `aud`, `iss` all checked).

Exit codes: 0 verified (prints the `sub`), 1 the token does not verify, 2 usage or
discovery failed (not the token's fault), 3 PyJWT is not installed.
"""

import json
import sys
import urllib.request

try:
    import jwt
except ImportError as err:  # pragma: no cover - depends on the machine
    print(f"PyJWT is not installed: {err}", file=sys.stderr)
    sys.exit(3)


def fail(code, message):
    print(message, file=sys.stderr)
    sys.exit(code)


def main(argv):
    if len(argv) != 4:
        fail(2, "usage: verify_with_pyjwt.py ISSUER TOKEN AUDIENCE")
    issuer, token, audience = argv[1], argv[2], argv[3]

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            metadata = json.load(resp)
    except Exception as err:  # noqa: BLE001 - any discovery failure is exit 2
        fail(2, f"discovery failed: {url}: {err}")
    if metadata.get("issuer") != issuer:
        fail(2, f"metadata names issuer {metadata.get('issuer')!r}, not {issuer!r}")
    jwks_uri = metadata.get("jwks_uri")
    if not jwks_uri:
        fail(2, f"metadata has no jwks_uri: {metadata}")
    # The algorithms the issuer signs tokens with (RFC 8414 / OpenID Discovery names).
    algorithms = sorted(
        {
            alg
            for key in (
                "access_token_signing_alg_values_supported",
                "id_token_signing_alg_values_supported",
            )
            for alg in (metadata.get(key) or [])
            if isinstance(alg, str) and alg != "none"
        }
    )
    if not algorithms:
        fail(2, f"metadata advertises no signing algorithm: {metadata}")

    client = jwt.PyJWKClient(jwks_uri, cache_keys=False, cache_jwk_set=False)
    try:
        signing_key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=algorithms,
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWKClientConnectionError as err:
        fail(2, f"cannot fetch {jwks_uri}: {err}")
    except jwt.PyJWTError as err:
        fail(1, f"token does not verify: {type(err).__name__}: {err}")
    print(claims["sub"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

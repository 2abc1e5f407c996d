"""Drives claimd's token endpoint with Authlib, a standard OAuth 2.0 client library.

Usage: authlib_client.py BASE_URL REFRESH_TOKEN CLIENT_ID CLIENT_SECRET

Finds the token endpoint through discovery, then:
1. refreshes a user's session with OAuth2Session.refresh_token (RFC 6749 §6, a public
   client: no client authentication);
2. fetches a service token with fetch_token(grant_type="client_credentials"), once with
   client_secret_basic and once with client_secret_post;
3. checks that a bad refresh token and a wrong secret raise OAuthError with the RFC 6749
   §5.2 error codes (invalid_grant, invalid_client).

Prints the rotated refresh token and the service's access token, one a line, for the Rust
test to check against claimd; exits 1 with a message on the first failure.
"""

import sys

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def main():
    base, refresh_token, client_id, client_secret = sys.argv[1:5]
    meta = requests.get(f"{base}/.well-known/openid-configuration", timeout=30).json()
    token_endpoint = meta["token_endpoint"]
    for grant in ("refresh_token", "client_credentials"):
        if grant not in meta["grant_types_supported"]:
            fail(f"{grant} not advertised: {meta}")

    # 1. A user's refresh, as a public client.
    user = OAuth2Session(token={"refresh_token": refresh_token, "token_type": "Bearer"})
    token = user.refresh_token(token_endpoint, refresh_token=refresh_token)
    if token.get("token_type") != "Bearer" or not token.get("access_token"):
        fail(f"refresh answer: {dict(token)}")
    rotated = token.get("refresh_token")
    if not rotated or rotated == refresh_token:
        fail(f"no rotated refresh token: {dict(token)}")

    # 2. A service's token, by either client authentication method.
    service_token = None
    for method in ("client_secret_basic", "client_secret_post"):
        service = OAuth2Session(
            client_id, client_secret, token_endpoint_auth_method=method
        )
        token = service.fetch_token(token_endpoint, grant_type="client_credentials")
        if not token.get("access_token") or "refresh_token" in token:
            fail(f"client_credentials answer ({method}): {dict(token)}")
        if not token.get("expires_at"):
            fail(f"Authlib found no expiry ({method}): {dict(token)}")
        service_token = token["access_token"]

    # 3. The error shape: OAuthError with the §5.2 code.
    try:
        OAuth2Session().refresh_token(token_endpoint, refresh_token="not-a-refresh-token")
        fail("a bad refresh token was accepted")
    except OAuthError as err:
        if err.error != "invalid_grant":
            fail(f"expected invalid_grant, got {err.error!r}: {err.description!r}")
    try:
        OAuth2Session(client_id, "not-the-secret").fetch_token(
            token_endpoint, grant_type="client_credentials"
        )
        fail("a wrong secret was accepted")
    except OAuthError as err:
        if err.error != "invalid_client":
            fail(f"expected invalid_client, got {err.error!r}: {err.description!r}")

    print(rotated)
    print(service_token)


if __name__ == "__main__":
    main()

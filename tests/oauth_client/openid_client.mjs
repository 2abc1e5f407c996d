// Drives claimd's token, introspection and revocation endpoints with openid-client 6
// (panva's OAuth 2.0 / OpenID Connect client for Node), as
// tests/api/clients/openid_client.rs runs it.
//
// Usage: node openid_client.mjs BASE_URL REFRESH_TOKEN CLIENT_ID CLIENT_SECRET
//
// BASE_URL is claimd's issuer (plain http://127.0.0.1:PORT in the tests, hence
// allowInsecureRequests); REFRESH_TOKEN a user's; CLIENT_ID and CLIENT_SECRET a service
// credential. Everything is found through discovery (/.well-known/openid-configuration):
//
// 1. a public client (client.None()) refreshes the user's session with refreshTokenGrant
//    (RFC 6749 §6) and gets a rotated refresh token;
// 2. the service gets a token with clientCredentialsGrant (§4.4), once by
//    client_secret_basic and once by client_secret_post;
// 3. tokenIntrospection (RFC 7662, as the service) finds the service's token, the user's new
//    access token and the rotated refresh token active, and garbage exactly {active: false};
// 4. tokenRevocation (RFC 7009) of the basic-minted service token by the service and of the
//    user's new access token by the public client: both introspect inactive afterwards, the
//    post-minted service token stays active;
// 5. every error reaches the caller as the library's OAuth error, which it only builds from
//    an RFC 6749 §5.2 answer (Content-Type: application/json with an `error` member):
//    invalid_grant (400) for a bad refresh token, invalid_scope (400),
//    unsupported_grant_type (400), invalid_client (401) for a wrong secret at the token,
//    introspection and revocation endpoints; each body also carries claimd's own
//    `code`, `title`, `status` and `detail`;
// 6. discovery's `audience` is the `aud` of the tokens claimd issued.
//
// Prints `name=value` lines for the Rust test to check against claimd:
//   rotated_refresh_token, user_access_token (revoked), service_token (active),
//   revoked_service_token.
// Exits 1 with a message on the first failure (2 for bad usage).

import * as client from 'openid-client';

function fail(message, detail) {
  console.error(`openid-client check failed: ${message}`);
  if (detail !== undefined) {
    console.error(detail);
  }
  process.exit(1);
}

function describe(err) {
  if (!(err instanceof Error)) {
    return String(err);
  }
  const parts = [`${err.name}: ${err.message}`];
  if (err.code) parts.push(`code=${err.code}`);
  if (err.status) parts.push(`status=${err.status}`);
  if (err.error) parts.push(`error=${err.error}`);
  if (err.cause !== undefined) {
    let cause;
    try {
      cause = JSON.stringify(err.cause);
    } catch {
      cause = String(err.cause);
    }
    parts.push(`cause=${cause}`);
  }
  return parts.join(' ');
}

/** Runs `step`, turning an unexpected exception into a failure naming `what`. */
async function expectOk(what, step) {
  try {
    return await step();
  } catch (err) {
    fail(`${what} threw`, describe(err));
  }
}

function jwtClaims(token) {
  const segments = token.split('.');
  if (segments.length !== 3) {
    fail(`not a JWS compact token: ${token}`);
  }
  return JSON.parse(Buffer.from(segments[1], 'base64url').toString('utf8'));
}

/** The members claimd's problem carries beside §5.2's `error` and `error_description`. */
function checkClaimdMembers(what, body, status, error) {
  if (body.error !== error) {
    fail(`${what}: expected error ${error}`, JSON.stringify(body));
  }
  if (typeof body.error_description !== 'string' || body.error_description === '') {
    fail(`${what}: no error_description`, JSON.stringify(body));
  }
  if (body.code !== error) {
    fail(`${what}: claimd's code is not ${error}`, JSON.stringify(body));
  }
  if (body.status !== status) {
    fail(`${what}: claimd's status member is not ${status}`, JSON.stringify(body));
  }
  for (const member of ['title', 'detail']) {
    if (typeof body[member] !== 'string' || body[member] === '') {
      fail(`${what}: claimd's ${member} member is missing`, JSON.stringify(body));
    }
  }
}

function checkJsonMediaType(what, response) {
  const type = (response.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/json') {
    fail(`${what}: Content-Type is ${type}, RFC 6749 §5.2 says application/json`);
  }
}

/**
 * Runs `step`, which must fail with the OAuth error `error` and HTTP `status`.
 *
 * openid-client reports an error answer as ResponseBodyError, which it builds only from an
 * application/json body with an `error` member (anything else is a ClientError such as
 * OAUTH_RESPONSE_IS_NOT_JSON). An answer that also carries a WWW-Authenticate challenge
 * (claimd's `Basic realm="claimd"` on invalid_client, as RFC 6749 §5.2 asks) is reported
 * as WWWAuthenticateChallengeError before the body is read; its unread response is then
 * held to the same §5.2 shape here.
 */
async function expectOAuthError(what, step, status, error) {
  let err;
  try {
    await step();
  } catch (caught) {
    err = caught;
  }
  if (err === undefined) {
    fail(`${what} was accepted; expected ${error} (${status})`);
  }
  if (err instanceof client.ResponseBodyError) {
    if (err.status !== status || err.error !== error) {
      fail(`${what}: expected ${error} (${status})`, describe(err));
    }
    checkJsonMediaType(what, err.response);
    checkClaimdMembers(what, err.cause, status, error);
    return;
  }
  if (err instanceof client.WWWAuthenticateChallengeError) {
    if (err.status !== status) {
      fail(`${what}: expected ${error} (${status})`, describe(err));
    }
    if (!err.cause.some((challenge) => challenge.scheme === 'basic')) {
      fail(`${what}: challenge is not Basic`, describe(err));
    }
    checkJsonMediaType(what, err.response);
    let body;
    try {
      body = await err.response.json();
    } catch (cause) {
      fail(`${what}: the challenged answer's body is not JSON`, describe(cause));
    }
    checkClaimdMembers(what, body, status, error);
    return;
  }
  fail(`${what}: expected the OAuth error ${error} (${status}), got`, describe(err));
}

async function discover(base, clientId, secret, auth) {
  return expectOk(`discovery for ${clientId}`, () =>
    client.discovery(new URL(base), clientId, secret, auth, {
      execute: [client.allowInsecureRequests],
      timeout: 30,
    }),
  );
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length !== 4) {
    console.error('usage: node openid_client.mjs BASE_URL REFRESH_TOKEN CLIENT_ID CLIENT_SECRET');
    process.exit(2);
  }
  const [base, refreshToken, clientId, clientSecret] = args;

  // Discovery: a public client (no client authentication) and the service, by either
  // token-endpoint method. The library checks that the issuer is the URL it was given.
  const publicClient = await discover(base, 'openid-client-test', undefined, client.None());
  const basic = await discover(base, clientId, clientSecret, client.ClientSecretBasic());
  const post = await discover(base, clientId, clientSecret, client.ClientSecretPost());
  const meta = publicClient.serverMetadata();
  for (const grant of ['refresh_token', 'client_credentials']) {
    if (!meta.grant_types_supported?.includes(grant)) {
      fail(`${grant} not advertised`, JSON.stringify(meta));
    }
  }
  for (const endpoint of ['token_endpoint', 'introspection_endpoint', 'revocation_endpoint']) {
    if (typeof meta[endpoint] !== 'string') {
      fail(`no ${endpoint} in discovery`, JSON.stringify(meta));
    }
  }

  // 1. A user's refresh, as a public client.
  const refreshed = await expectOk('refreshTokenGrant', () =>
    client.refreshTokenGrant(publicClient, refreshToken),
  );
  if (refreshed.token_type !== 'bearer' || typeof refreshed.access_token !== 'string') {
    fail('refresh answer', JSON.stringify(refreshed));
  }
  if (!(refreshed.expiresIn() > 0)) {
    fail('the library found no expiry in the refresh answer', JSON.stringify(refreshed));
  }
  const rotated = refreshed.refresh_token;
  if (typeof rotated !== 'string' || rotated === '' || rotated === refreshToken) {
    fail('no rotated refresh token', JSON.stringify(refreshed));
  }
  const userAccess = refreshed.access_token;

  // 2. A service's token, by either client authentication method.
  const serviceTokens = {};
  for (const [method, config] of [
    ['client_secret_basic', basic],
    ['client_secret_post', post],
  ]) {
    const answer = await expectOk(`clientCredentialsGrant (${method})`, () =>
      client.clientCredentialsGrant(config),
    );
    if (answer.token_type !== 'bearer' || typeof answer.access_token !== 'string') {
      fail(`client_credentials answer (${method})`, JSON.stringify(answer));
    }
    if (answer.refresh_token !== undefined) {
      fail(`a refresh token for a service (${method})`, JSON.stringify(answer));
    }
    if (!(answer.expiresIn() > 0)) {
      fail(`the library found no expiry (${method})`, JSON.stringify(answer));
    }
    serviceTokens[method] = answer.access_token;
  }

  // 3. Introspection, as the service (claimd takes client_secret_basic there).
  const introspect = (what, token) =>
    expectOk(`tokenIntrospection of ${what}`, () => client.tokenIntrospection(basic, token));
  for (const [method, token] of Object.entries(serviceTokens)) {
    const answer = await introspect(`the service token (${method})`, token);
    if (answer.active !== true || answer.client_id !== clientId || answer.sub !== clientId) {
      fail(`the service token (${method}) does not introspect active`, JSON.stringify(answer));
    }
  }
  const userAnswer = await introspect("the user's access token", userAccess);
  if (userAnswer.active !== true || userAnswer.token_type !== 'access_token') {
    fail("the user's new access token does not introspect active", JSON.stringify(userAnswer));
  }
  if (userAnswer.sub !== jwtClaims(userAccess).sub) {
    fail("the user's access token introspects another sub", JSON.stringify(userAnswer));
  }
  const refreshAnswer = await introspect('the rotated refresh token', rotated);
  if (refreshAnswer.active !== true || refreshAnswer.token_type !== 'refresh_token') {
    fail('the rotated refresh token does not introspect active', JSON.stringify(refreshAnswer));
  }
  const garbage = await introspect('garbage', 'not-a-token');
  if (JSON.stringify(garbage) !== '{"active":false}') {
    fail('garbage does not introspect exactly {"active":false}', JSON.stringify(garbage));
  }

  // 4. Revocation: by the service (client_secret_basic) and by the holder (none).
  const revokedService = serviceTokens.client_secret_basic;
  const activeService = serviceTokens.client_secret_post;
  await expectOk('tokenRevocation of the service token', () =>
    client.tokenRevocation(basic, revokedService),
  );
  await expectOk("tokenRevocation of the user's access token by the public client", () =>
    client.tokenRevocation(publicClient, userAccess),
  );
  for (const [what, token] of [
    ['the revoked service token', revokedService],
    ["the revoked user's access token", userAccess],
  ]) {
    const answer = await introspect(what, token);
    if (answer.active !== false) {
      fail(`${what} is still active`, JSON.stringify(answer));
    }
  }
  if ((await introspect('the other service token', activeService)).active !== true) {
    fail('revoking one service token took the other with it');
  }

  // 5. Errors, each as the library's OAuth error with claimd's members.
  await expectOAuthError(
    'a bad refresh token',
    () => client.refreshTokenGrant(publicClient, 'not-a-refresh-token'),
    400,
    'invalid_grant',
  );
  await expectOAuthError(
    'a scope',
    () => client.clientCredentialsGrant(basic, { scope: 'admin' }),
    400,
    'invalid_scope',
  );
  await expectOAuthError(
    'the password grant',
    () => client.genericGrantRequest(publicClient, 'password', { username: 'u', password: 'p' }),
    400,
    'unsupported_grant_type',
  );
  const wrongBasic = await discover(base, clientId, 'not-the-secret', client.ClientSecretBasic());
  const wrongPost = await discover(base, clientId, 'not-the-secret', client.ClientSecretPost());
  await expectOAuthError(
    'a wrong secret by client_secret_basic',
    () => client.clientCredentialsGrant(wrongBasic),
    401,
    'invalid_client',
  );
  await expectOAuthError(
    'a wrong secret by client_secret_post',
    () => client.clientCredentialsGrant(wrongPost),
    401,
    'invalid_client',
  );
  await expectOAuthError(
    'introspection with a wrong secret',
    () => client.tokenIntrospection(wrongBasic, activeService),
    401,
    'invalid_client',
  );
  await expectOAuthError(
    'introspection by a public client',
    () => client.tokenIntrospection(publicClient, activeService),
    401,
    'invalid_client',
  );
  await expectOAuthError(
    'revocation with a wrong secret',
    () => client.tokenRevocation(wrongBasic, activeService),
    401,
    'invalid_client',
  );

  // 6. Discovery names the audience claimd puts in `aud`, so a client can check it.
  const audience = meta.audience;
  if (typeof audience !== 'string' || audience === '') {
    fail('discovery names no audience', JSON.stringify(meta));
  }
  for (const [what, token] of [
    ["the user's access token", userAccess],
    ['the service token', activeService],
  ]) {
    const aud = jwtClaims(token).aud;
    const matches = Array.isArray(aud) ? aud.includes(audience) : aud === audience;
    if (!matches) {
      fail(`${what}'s aud ${JSON.stringify(aud)} is not discovery's audience ${audience}`);
    }
  }

  console.log(`rotated_refresh_token=${rotated}`);
  console.log(`user_access_token=${userAccess}`);
  console.log(`service_token=${activeService}`);
  console.log(`revoked_service_token=${revokedService}`);
}

main().catch((err) => fail('unexpected exception', describe(err)));

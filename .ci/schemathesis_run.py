#!/usr/bin/env python3
"""Schemathesis against a live claimd: GET /openapi.json, then generated requests for every
operation, checking that nothing answers 5xx and that every answer (status, content type,
body) is one the document describes.

Starts the debug binary `cargo test` built (or the one given as the first argument) on
127.0.0.1:0 with a fresh data directory and a bootstrap admin, reads the port from its
`listening on` line, logs in, and runs three passes:

1. generated requests (coverage and fuzzing phases) for every operation but the ones
   that end the caller's own sessions, with the admin's Bearer token, so the admin
   routes get past authorisation;
2. the stateful phase with the same token: sequences that follow the links Schemathesis
   infers (create a tenant, then read, change and delete it...);
3. the operations that spoil the token they are called with (`PATCH /me` makes it stale,
   password change, logout and logout-all revoke it), each in a pass of its own with the
   token of an ordinary user of its own, last;
4. on a second claimd in cookie mode (`tokens.refresh_cookie = true`): login, the token
   endpoint and logout, with the refresh cookie a login set.

Schemathesis reuses the ids it sees in answers, so it would soon revoke, disable or delete
the very users whose tokens the run uses; .ci/schemathesis_hooks.py steers requests away
from their ids.

Bounded: a fixed number of examples per operation and a timeout around each pass (about
half a minute in all on a 2-core machine). Settings through the environment:
SCHEMATHESIS_MAX_EXAMPLES (50), SCHEMATHESIS_SEED (1), SCHEMATHESIS_CHECKS (the five
below; `all` adds the stricter ones), SCHEMATHESIS_REPORT (junit, or har to see every
request), SCHEMATHESIS_REPORT_DIR (kept after the run).
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ADMIN = "admin"
ADMIN_PASSWORD = "a long admin passphrase"
USER = "schemathesis-user"
USER_PASSWORD = "a long user passphrase"
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50")
PASS_TIMEOUT_SECS = int(os.environ.get("SCHEMATHESIS_PASS_TIMEOUT", "240"))
CHECKS = os.environ.get("SCHEMATHESIS_CHECKS") or ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)
# Operations that spoil the caller's token, in the order their passes run.
SESSION_ENDING = ["patchMe", "changePassword", "logout", "logoutAll"]
# An endless Server-Sent Events stream: a fuzzer's request would wait on it for ever.
# tests/api/nodes/events.rs reads it as a verifier does.
STREAMING = ["changeFeed"]


def start_claimd(binary, workdir, extra_env=None):
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMD__")}
    env.update(
        {
            "CLAIMD__SERVER__BIND": "127.0.0.1:0",
            "CLAIMD__STORAGE__PATH": str(workdir / "data"),
            "CLAIMD__BOOTSTRAP__ADMIN_USERNAME": ADMIN,
            "CLAIMD__BOOTSTRAP__ADMIN_PASSWORD": ADMIN_PASSWORD,
            "NO_COLOR": "1",
            # Registrations from one address are limited to 10 an hour by default, and the
            # run registers more than that. The limit itself has its own tests.
            "CLAIMD__AUTH__REGISTER_LIMIT": "100000/1s",
            # Mail on (into an outbox: no mail server needed), so the mail operations are
            # fuzzed as a deployment that sends mail answers them; with mail off they all
            # answer 501 mail_disabled (tests/api/mail/flows.rs). Their budget is lifted
            # like registration's.
            "CLAIMD__MAIL__TRANSPORT": "outbox",
            "CLAIMD__AUTH__MAIL_LIMIT": "100000/1s",
        }
    )
    env.update(extra_env or {})
    env.pop("RUST_LOG", None)
    # Run in the temporary directory, whose config.toml opens a self-service field, so
    # that PATCH /me can succeed.
    (workdir / "config.toml").write_text('[claims.self_service]\nplan = ["free", "pro"]\n')
    proc = subprocess.Popen(
        [binary],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=open(workdir / "claimd.log", "wb"),
        text=True,
    )
    deadline = time.monotonic() + 60
    port = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"listening on http://[^\s]*:(\d+)", line)
        if match:
            port = int(match.group(1))
            break
    if port is None:
        proc.kill()
        log = (workdir / "claimd.log").read_text(errors="replace")
        sys.exit(f"claimd did not start:\n{log}")
    # Keep draining stdout so the child never blocks on a full pipe.
    threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
    return proc, port


def get_json(base, path, bearer):
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {bearer}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def post_json(base, path, body, bearer=None, with_headers=False):
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
        return (answer, response.headers) if with_headers else answer


def run_pass(base, headers, phases, operations_flag, workdir, name, protected):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.abspath(__file__)), env.get("PYTHONPATH", "")]
    )
    env["SCHEMATHESIS_HOOKS"] = "schemathesis_hooks"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ left beside the hooks
    env["CLAIMD_PROTECTED_IDS"] = ",".join(protected)
    # Through the interpreter, not the `st` script: pip may have put that off PATH.
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{base}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        os.environ.get("SCHEMATHESIS_SEED", "1"),
        *[arg for header in headers for arg in ("--header", header)],
        "--request-timeout",
        "30",
        "--workers",
        "1",
        "--phases",
        phases,
        "--report",
        os.environ.get("SCHEMATHESIS_REPORT", "junit"),
        "--report-dir",
        os.path.join(os.environ.get("SCHEMATHESIS_REPORT_DIR", str(workdir)), name),
        *operations_flag,
    ]
    print(f"== schemathesis pass: {name}", flush=True)
    try:
        # In the scratch directory: Schemathesis keeps a cache of crashes in its cwd.
        return subprocess.run(command, env=env, cwd=workdir, timeout=PASS_TIMEOUT_SECS).returncode
    except subprocess.TimeoutExpired:
        print(f"schemathesis pass {name} took over {PASS_TIMEOUT_SECS}s", flush=True)
        return 1


def main():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(target, "debug", "claimd")
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no claimd binary at {binary}: run `cargo build` (or `cargo test`) first")
    try:
        import schemathesis
    except ImportError:
        sys.exit("schemathesis is not installed: python3 -m pip install 'schemathesis>=4,<5'")
    if not schemathesis.__version__.startswith("4."):
        sys.exit(f"schemathesis {schemathesis.__version__}: this script speaks version 4's CLI")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="claimd-schemathesis-"))
    outcomes = [main_server(binary, workdir / "main"), cookie_server(binary, workdir / "cookie")]
    if any(outcomes):
        print(f"reports and logs in {workdir}", flush=True)
        sys.exit(1)
    shutil.rmtree(workdir, ignore_errors=True)
    print("schemathesis: no 5xx, every answer as documented", flush=True)


def stop(proc, workdir, failed):
    """Stops claimd; on failure shows the end of its log. Returns whether the run failed."""
    alive = proc.poll() is None
    if not alive:
        print("claimd died during the run", flush=True)
    proc.kill()
    proc.wait()
    if failed or not alive:
        log = (workdir / "claimd.log").read_text(errors="replace")
        print(f"claimd's log (last 4000 chars):\n{log[-4000:]}", flush=True)
    return failed or not alive


def main_server(binary, workdir):
    """The passes against a server with the shipped settings. Returns whether any failed."""
    proc, port = start_claimd(binary, workdir)
    base = f"http://127.0.0.1:{port}"
    passes = []
    try:
        admin = post_json(base, "/auth/login", {"username": ADMIN, "password": ADMIN_PASSWORD})
        excluded = [
            flag for op in SESSION_ENDING + STREAMING for flag in ("--exclude-operation-id", op)
        ]
        admin_token = admin["access_token"]
        # One user per session-ending operation, logged in now: after the passes below,
        # failed logins from this address are past the rate limit.
        users = {}
        for operation in SESSION_ENDING:
            login = {"username": f"{USER}-{operation}", "password": USER_PASSWORD}
            post_json(base, "/auth/register", login)
            users[operation] = post_json(base, "/auth/login", login)["access_token"]
        # They and the admin must survive the run: see .ci/schemathesis_hooks.py.
        protected = [
            get_json(base, "/me", token)["user"]["id"] for token in [admin_token, *users.values()]
        ]
        admin = [f"Authorization: Bearer {admin_token}"]
        passes.append(
            run_pass(base, admin, "coverage,fuzzing", excluded, workdir, "admin", protected)
        )
        passes.append(run_pass(base, admin, "stateful", excluded, workdir, "stateful", protected))
        for operation, token in users.items():
            only = ["--include-operation-id", operation]
            user = [f"Authorization: Bearer {token}"]
            passes.append(
                run_pass(base, user, "coverage,fuzzing", only, workdir, operation, protected)
            )
    finally:
        failed = stop(proc, workdir, any(code != 0 for code in passes) or len(passes) < 6)
    return failed


def cookie_server(binary, workdir):
    """Cookie mode (`tokens.refresh_cookie`): login, the token endpoint and logout, with the
    refresh cookie a login set (Schemathesis sends `X-Requested-With` or not, so both the
    answer and the `csrf_refused` refusal come up). Returns whether any pass failed."""
    proc, port = start_claimd(binary, workdir, {"CLAIMD__TOKENS__REFRESH_COOKIE": "true"})
    base = f"http://127.0.0.1:{port}"
    passes = []
    try:
        login = {"username": USER, "password": USER_PASSWORD}
        post_json(base, "/auth/register", login)

        def browser_session():
            answer, headers = post_json(base, "/auth/login", login, with_headers=True)
            assert "refresh_token" not in answer, "cookie mode left the refresh token in the body"
            cookie = next(
                value.split(";")[0]
                for value in headers.get_all("Set-Cookie") or []
                if value.startswith("claimd_refresh=")
            )
            return [f"Cookie: {cookie}", f"Authorization: Bearer {answer['access_token']}"]

        # Logout last, with a session of its own (logged in now: the login pass soon has
        # this address past the rate limit), as it ends the session it is called with.
        sessions = [browser_session(), browser_session()]
        for headers, name, operations in [
            (sessions[0], "cookie", ["login", "refreshToken"]),
            (sessions[1], "cookie-logout", ["logout"]),
        ]:
            only = [flag for op in operations for flag in ("--include-operation-id", op)]
            # The examples phase too: the document's example of the token endpoint is the
            # browser's own request (`X-Requested-With: claimd`, body `{}`).
            phases = "examples,coverage,fuzzing"
            passes.append(run_pass(base, headers, phases, only, workdir, name, []))
    finally:
        failed = stop(proc, workdir, any(code != 0 for code in passes) or len(passes) < 2)
    return failed


if __name__ == "__main__":
    main()

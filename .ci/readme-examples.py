#!/usr/bin/env python3
"""Runs every example in README.md and docs/*.md as printed (Python 3 standard library only).

    python3 .ci/readme-examples.py [--claimd PATH] [FILE.md ...]

With no FILE: README.md, then every docs/*.md in name order, then claimd-verify/README.md.
Each file is one reader's session of its own: a fresh temporary copy of the repository
(so `./config.toml` and `./data` are fresh), one bash session, and the claimd that file's
blocks start, stopped when the file ends. A page therefore starts claimd itself (the quick
start's command) and defines every variable it uses; nothing carries over from another
page. A file with no runnable block is still read: its tags and links are checked.

Fenced blocks, by their language tag, in file order:

  sh, bash  run in ONE bash session per file (`set -euo pipefail`) in the repository copy.
            A comment line right after a curl command, `# STATUS` or `# STATUS {JSON}`
            (prose may follow), is an expected answer: the status must match and the listed
            JSON members must be a subset of the answer's body. In expected JSON `…`
            elides: `"…"` is any string, `"eyJ…"` any string of that shape, `"exp":…` any
            value, `{…}` any object, `,…` further members. Such a line anywhere else fails
            the runner: it would go unchecked.
  js        saved as a file in the session's current directory (where the page's earlier
            commands left it, as a reader saves a script beside their app) and run there
            with node as an ES module, against the same claimd. Nothing is installed or
            linked for it: a block that imports `@claimd/client` works only once the page's
            own printed install command (`npm install --install-links …/clients/js`) has run.
  python    likewise, run with python3.
  toml      parsed with tomllib; one whose top-level tables are all sections of the
            shipped config.toml is claimd configuration, and claimd must start with it
            (`--config FILE` on a free port and a scratch store) and listen. Any other TOML
            (a Cargo dependency line) must parse.
  nginx     checked with `nginx -t` (tests/api/http/nginx.rs runs the forward-auth one
            against a real nginx).
  json      parsed (with `…` elisions allowed as above).
  console   a transcript: each `$ COMMAND` line runs in a fresh bash in the repository
            copy (`cargo run --release` in the foreground this time, for at most 20 s),
            and what it writes (stdout and stderr) must be the lines that follow it.
  text, or no tag: prose, not an example.

Any other tag fails the runner, so nothing slips through. A block preceded by the line
`<!-- example: not run (REASON) -->` is skipped and listed with its reason.

Links: every relative link and image of every file read (`[text](path)`, `[text](path#anchor)`,
`[text](#anchor)`, `![alt](path)`, reference definitions) must name a file or directory of
the repository, and an anchor a heading of the Markdown file it points into (GitHub's
heading ids). Links outside code, to http(s) or mailto, are not fetched.

claimd in the session: `cargo` is a shell function that stands for the binary CI has
already built (`--claimd`, default `$CARGO_TARGET_DIR/debug/claimd` or
`target/debug/claimd`), never a build:
  - `cargo run --release` (optionally `-- [--config PATH] [serve]`) is the server start.
    A reader leaves it running in a second terminal; the runner starts it in the
    background with the environment given on the line and returns once
    http://127.0.0.1:8080/readyz answers 200. A later server start replaces the running
    one, as stopping it (Ctrl-C) and starting again in that terminal would.
  - `cargo run --release -- COMMAND …` runs the binary with COMMAND in the foreground.
  - `cargo run -p claimd-verify --example NAME -- ARGS` is a second server a reader leaves
    running in a third terminal: the example binary the tests built beside claimd
    (`…/debug/examples/NAME`) starts in the background with the environment on the line,
    and the runner goes on once it prints `listening on`. The runner refuses a binary
    older than claimd-verify's sources (`cargo build -p claimd-verify --example NAME`,
    or `cargo test`, rebuilds it).
  - `cargo test …` is CI's own test step: it is announced and not run a second time.
  - anything else fails: mark such a block not run.
The servers are stopped when the file's session ends. The rate limits are the server's
own: a file that registers accounts stays under `auth.register_limit` (10 an hour from
one address) per server start.

Each block is printed with its file and line before it runs; a failure names the file and
line of the failing command and shows the end of claimd's log.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHELL_TAGS = {"sh", "bash"}
KNOWN_TAGS = SHELL_TAGS | {"js", "python", "toml", "nginx", "json", "console", "text", ""}
NOT_RUN = re.compile(r"^<!--\s*example:\s*not run\s*\((?P<reason>.+)\)\s*-->\s*$")
EXPECT = re.compile(r"^#\s+(?P<status>[1-5]\d\d)(?:\s+(?P<rest>.*))?$")
ANY = "\x00any"  # the value of `"name":…` in expected JSON
SERVER = "127.0.0.1:8080"


@dataclass
class Block:
    line: int  # README line of the opening fence
    tag: str
    lines: list[str]
    skip: str | None  # the not-run reason


def parse(readme: Path) -> list[Block]:
    """The fenced blocks of `readme`; fails on an unknown tag or an unclosed fence."""
    text = readme.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(text):
        fence = re.match(r"^```\s*([A-Za-z0-9_+-]*)\s*$", text[i])
        if not fence:
            i += 1
            continue
        start = i
        prev = start - 1
        while prev >= 0 and not text[prev].strip():
            prev -= 1
        marker = NOT_RUN.match(text[prev].strip()) if prev >= 0 else None
        body = []
        i += 1
        while i < len(text) and not re.match(r"^```\s*$", text[i]):
            body.append(text[i])
            i += 1
        if i == len(text):
            fail(readme, start + 1, "the fence opened here is never closed")
        i += 1
        tag = fence.group(1).lower()
        skip = marker.group("reason").strip() if marker else None
        if skip is None and tag not in KNOWN_TAGS:
            fail(
                readme,
                start + 1,
                f"a ```{tag} block: the runner knows {', '.join(sorted(t for t in KNOWN_TAGS if t))}"
                " (and untagged text); run it as one of them or mark it"
                " `<!-- example: not run (reason) -->`",
            )
        blocks.append(Block(start + 1, tag, body, skip))
    return blocks


def shown(path: Path | str) -> str:
    """A file as messages name it: relative to the repository when inside it."""
    if isinstance(path, str):
        return path
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def fail(readme: Path | str, line: int, why: str) -> None:
    print(f"\nREADME EXAMPLE FAILED at {shown(readme)}:{line}: {why}", file=sys.stderr)
    sys.exit(1)


# ---- links ----


def heading_ids(path: Path) -> set[str]:
    """The ids GitHub gives the headings of a Markdown file (outside code blocks)."""
    ids: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for row in path.read_text(encoding="utf-8").split("\n"):
        if re.match(r"^```", row):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", row)
        if not m:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # a link: its text
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        ids.add(slug if n == 0 else f"{slug}-{n}")
    return ids


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")


def check_links(doc: Path) -> list[str]:
    """Every relative link of `doc` that does not resolve, as `FILE:LINE: why`."""
    broken = []
    fenced = False
    for number, row in enumerate(doc.read_text(encoding="utf-8").split("\n"), 1):
        if re.match(r"^```", row):
            fenced = not fenced
            continue
        if fenced:
            continue
        prose = re.sub(r"(`+).*?\1", "", row)  # inline code is not a link
        targets = [m.group(1) for m in LINK.finditer(prose)]
        ref = REFERENCE.match(prose)
        if ref:
            targets.append(ref.group(1))
        for target in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # http:, https:, mailto:: not fetched
            path_part, _, anchor = target.partition("#")
            where = f"{shown(doc)}:{number}: the link `{target}`"
            linked = (doc.parent / path_part).resolve() if path_part else doc.resolve()
            if path_part and not linked.exists():
                broken.append(f"{where} names {shown(linked)}, which does not exist")
                continue
            if anchor:
                if linked.suffix.lower() != ".md" or not linked.is_file():
                    broken.append(f"{where} has an anchor into something that is not a Markdown file")
                elif anchor not in heading_ids(linked):
                    broken.append(f"{where}: {shown(linked)} has no heading with the id `{anchor}`")
    return broken


# ---- expected answers ----


def expected_json(text: str):
    """Parses expected JSON with `…` elisions; returns (value, rest of the line)."""
    strings: list[str] = []

    def keep(m: re.Match) -> str:
        strings.append(m.group(0))
        return f'"\x01{len(strings) - 1}"'

    skeleton = re.sub(r'"(?:[^"\\]|\\.)*"', keep, text)
    skeleton = re.sub(r":\s*…", ':"\x01any"', skeleton)
    skeleton = re.sub(r"\{\s*…\s*\}", "{}", skeleton)
    skeleton = re.sub(r"\[\s*…\s*\]", '"\x01any"', skeleton)
    skeleton = re.sub(r",\s*…", "", skeleton)
    skeleton = re.sub(r"…\s*,", "", skeleton)

    def restore(m: re.Match) -> str:
        key = m.group(1)
        return json.dumps(ANY) if key == "any" else strings[int(key)]

    rebuilt = re.sub(r'"\x01(any|\d+)"', restore, skeleton)
    value, end = json.JSONDecoder().raw_decode(rebuilt)
    return value, rebuilt[end:].strip()


def matches(expected, actual) -> bool:
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and matches(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual))
        )
    if isinstance(expected, str) and "…" in expected:
        pattern = ".*".join(re.escape(part) for part in expected.split("…"))
        return isinstance(actual, str) and re.fullmatch(pattern, actual, re.S) is not None
    return type(expected) is type(actual) and expected == actual


def check(line: str, status: str, expected_file: str, trace: str, out: str) -> int:
    """The session's `__expect`: the last curl's answer against the README's comment."""
    statuses = re.findall(
        r"^0000: HTTP/[\d.]+ (\d{3})", Path(trace).read_text(errors="replace"), re.M
    )
    body = Path(out).read_text(errors="replace")
    got = statuses[-1] if statuses else "no answer"
    where = f"{os.environ.get('__README', 'README.md')}:{line}"
    if got != status:
        print(f"{where}: expected status {status}, claimd answered {got}: {body[:2000]}", file=sys.stderr)
        return 1
    text = Path(expected_file).read_text()
    if not text:
        return 0
    expected, _ = expected_json(text)
    try:
        actual = json.loads(body)
    except json.JSONDecodeError:
        print(f"{where}: expected a JSON body, got: {body[:2000]}", file=sys.stderr)
        return 1
    if not matches(expected, actual):
        print(
            f"{where}: the answer does not hold what the README shows\n"
            f"  README: {text}\n  claimd: {json.dumps(actual)}",
            file=sys.stderr,
        )
        return 1
    return 0


# ---- the other kinds of block ----


def claimd_config_sections() -> set[str]:
    with open(REPO / "config.toml", "rb") as f:
        return set(tomllib.load(f))


def check_toml(path: str, claimd: str) -> int:
    with open(path, "rb") as f:
        try:
            parsed = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            print(f"not valid TOML: {e}", file=sys.stderr)
            return 1
    if not parsed or not set(parsed) <= claimd_config_sections():
        print("  valid TOML (not claimd configuration)")
        return 0
    with tempfile.TemporaryDirectory() as store:
        # A scratch store, and a free port: the block's own bind with port 0 (so a bad
        # address still fails), or 127.0.0.1:0 when it names none.
        env = dict(os.environ, CLAIMD__STORAGE__PATH=store)
        config = Path(store) / "config.toml"
        if "bind" in parsed.get("server", {}):
            text = Path(path).read_text()
            config.write_text(re.sub(r'(?m)^(\s*bind\s*=\s*"[^"\n]*:)\d+"', r'\g<1>0"', text))
        else:
            shutil.copyfile(path, config)
            env["CLAIMD__SERVER__BIND"] = "127.0.0.1:0"
        env["CLAIMD__STORAGE__PATH"] = str(Path(store) / "data")
        child = subprocess.Popen(
            [claimd, "--config", str(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seen = []
        # A claimd that neither listens nor exits is killed, which ends the reading below.
        watchdog = threading.Timer(30, child.kill)
        watchdog.start()
        assert child.stdout is not None
        try:
            for row in child.stdout:
                seen.append(row)
                if row.startswith("claimd listening on "):
                    print("  claimd starts with it")
                    return 0
        finally:
            watchdog.cancel()
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        print("claimd does not start with it:\n" + "".join(seen[-20:]), file=sys.stderr)
        return 1


CONSOLE_PRELUDE = r"""
cargo() {
  if [ "${1:-}" = run ] && [ "${2:-}" = --release ]; then
    shift 2
    [ "${1:-}" = -- ] && shift
    timeout 20 "$__CLAIMD" "$@"
  else
    echo "README runner: cannot run \`cargo $*\` in a transcript" >&2
    return 2
  fi
}
"""


def check_console(path: str) -> int:
    """Runs each `$ COMMAND` of a transcript and compares its output with the lines after it."""
    steps: list[tuple[str, list[str]]] = []
    for row in Path(path).read_text().splitlines():
        if row.startswith("$ "):
            steps.append((row[2:], []))
        elif steps:
            steps[-1][1].append(row.rstrip())
        elif row.strip():
            print(f"a transcript starts with `$ COMMAND`, not: {row}", file=sys.stderr)
            return 1
    for command, expected in steps:
        while expected and not expected[-1]:
            expected.pop()
        result = subprocess.run(
            ["bash", "-c", CONSOLE_PRELUDE + command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
        )
        got = [row.rstrip() for row in result.stdout.rstrip("\n").split("\n")] if result.stdout else []
        if got != expected:
            print(
                f"`{command}` wrote:\n" + "\n".join(got) + "\nthe README shows:\n" + "\n".join(expected),
                file=sys.stderr,
            )
            return 1
    return 0


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )


# ---- the session ----

PRELUDE = r"""
set -Eeuo pipefail
__at=0
trap 'echo "$__at" > "$__T/failed_at"' ERR
__stop_server() {
  if [ -s "$__T/claimd.pid" ]; then
    local pid; pid=$(cat "$__T/claimd.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    : > "$__T/claimd.pid"
  fi
}
__stop_examples() {
  local pid
  for pid in $(cat "$__T/examples.pid" 2>/dev/null); do
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  : > "$__T/examples.pid"
}
trap '__stop_examples; __stop_server' EXIT
# An example program of the workspace that serves (claimd-verify's protected_service): a
# second server a reader leaves running in a third terminal, started in the background and
# ready once it prints `listening on`.
__serve_example() {
  local name=$1 log="$__T/example-$1.log"; shift
  local binary; binary="$(dirname "$__CLAIMD")/examples/$name"
  echo "  (runner: the example $name started in the background; its log: $log)"
  : > "$log"
  "$binary" "$@" >> "$log" 2>&1 &
  local pid=$!
  echo "$pid" >> "$__T/examples.pid"
  for _ in $(seq 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the example $name exited at start:" >&2; tail -n 20 "$log" >&2; return 1
    fi
    if grep -q '^listening on ' "$log"; then grep '^listening on ' "$log" | sed 's/^/  /'; return 0; fi
    sleep 0.1
  done
  echo "the example $name did not print \`listening on\` within 30 s" >&2; tail -n 20 "$log" >&2; return 1
}
__serve() {
  __stop_server
  echo "  (runner: claimd${*:+ $*} started in the background; its log: $__T/claimd.log)"
  "$__CLAIMD" "$@" >> "$__T/claimd.log" 2>&1 &
  echo $! > "$__T/claimd.pid"
  for _ in $(seq 300); do
    if ! kill -0 "$(cat "$__T/claimd.pid")" 2>/dev/null; then
      echo "claimd exited at start:" >&2; tail -n 20 "$__T/claimd.log" >&2; return 1
    fi
    [ "$(command curl -s -o /dev/null -w '%{http_code}' http://__SERVER__/readyz || true)" = 200 ] && return 0
    sleep 0.1
  done
  echo "claimd did not become ready on http://__SERVER__ within 30 s" >&2; return 1
}
cargo() {
  if [ "${1:-}" = run ] && [ "${2:-}" = --release ]; then
    shift 2
    [ "${1:-}" = -- ] && shift
    local args=("$@") i=0
    while [ $i -lt ${#args[@]} ] && [ "${args[$i]}" = --config ]; do i=$((i + 2)); done
    if [ $i -ge ${#args[@]} ] || [ "${args[$i]}" = serve ]; then
      __serve "$@"
    else
      "$__CLAIMD" "$@"
    fi
  elif [ "${1:-}" = run ] && [ "${2:-}" = -p ] && [ "${3:-}" = claimd-verify ] && [ "${4:-}" = --example ] && [ -n "${5:-}" ]; then
    local name=$5
    shift 5
    [ "${1:-}" = -- ] && shift
    __serve_example "$name" "$@"
  elif [ "${1:-}" = test ]; then
    echo "  (runner: \`cargo $*\` is CI's test step; not run a second time)"
  else
    echo "README runner: cannot run \`cargo $*\`; mark the block <!-- example: not run (reason) -->" >&2
    return 2
  fi
}
curl() {
  : > "$__T/trace"
  command curl --trace-ascii "$__T/trace" "$@" | tee "$__T/out"
  # Keep the runner's own output readable; what the command's stdout gets is untouched.
  if [ -s "$__T/out" ] && [ -n "$(tail -c1 "$__T/out")" ]; then echo >&2; fi
}
__expect() {
  python3 "$__RUNNER" --check "$1" "$2" "$__T/expect-$1" "$__T/trace" "$__T/out"
}
"""


def command_ends(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) index of each complete shell command of a block: the shortest run of
    lines that `bash -n` accepts and that does not end in a `\\` continuation."""
    spans = []
    i = 0
    while i < len(lines):
        j = i
        while j + 1 < len(lines):
            text = "\n".join(lines[i : j + 1]) + "\n"
            complete = not lines[j].rstrip().endswith("\\") and (
                subprocess.run(["bash", "-n"], input=text, text=True, capture_output=True).returncode == 0
            )
            if complete:
                break
            j += 1
        spans.append((i, j))
        i = j + 1
    return spans


def session_script(blocks: list[Block], name: str, work: Path, scratch: Path, claimd: str) -> str:
    """The bash script of one file's session; `$__at` holds the line being run."""
    out = PRELUDE.replace("__SERVER__", SERVER).split("\n")

    def emit(text: str, readme_line: int) -> None:
        out.append(f"__at={readme_line}")
        out.append(text)

    runner = shlex.quote(str(Path(__file__).resolve()))
    for block in blocks:
        if block.skip is not None or block.tag in ("text", ""):
            continue
        header = f"{name}:{block.line} {block.tag}"
        shown = "\n".join("  | " + row for row in block.lines)
        emit(f"printf '\\n%s\\n%s\\n' {shlex.quote('── ' + header)} {shlex.quote(shown)}", block.line)
        if block.tag in SHELL_TAGS:
            spans = command_ends(block.lines)
            attached = set()
            for first, last in spans:
                command = "\n".join(block.lines[first : last + 1])
                if command.strip() and not command.lstrip().startswith("#"):
                    emit(command, block.line + 1 + first)
                after = last + 1
                head = block.lines[first].lstrip()
                if after < len(block.lines) and re.match(r"^(\w+=\$\()?curl\b", head):
                    m = EXPECT.match(block.lines[after].strip())
                    if m:
                        line = block.line + 1 + after
                        attached.add(after)
                        rest = (m.group("rest") or "").strip()
                        expect = rest if rest.startswith(("{", "[")) else ""
                        if expect:
                            try:
                                expected_json(expect)
                            except json.JSONDecodeError as e:
                                fail(name, line, f"the expected answer is not JSON ({e})")
                        (scratch / f"expect-{line}").write_text(expect)
                        emit(f"__expect {line} {m.group('status')}", line)
            for k, row in enumerate(block.lines):
                if k not in attached and EXPECT.match(row.strip()):
                    fail(
                        name,
                        block.line + 1 + k,
                        "an expected answer (`# STATUS …`) must come right after the curl"
                        " command it is about, or it would go unchecked",
                    )
            continue
        ext = {"js": "mjs", "python": "py", "toml": "toml", "nginx": "conf", "json": "json", "console": "txt"}[block.tag]
        path = scratch / f"example-{block.line}.{ext}"
        path.write_text("\n".join(block.lines) + "\n")
        quoted = shlex.quote(str(path))
        # A script runs from where the page's commands left the reader, saved there (so
        # `import "@claimd/client"` resolves from that directory's node_modules, if any).
        here = f"./.readme-example-{block.line}.{ext}"
        command = {
            "js": f"cp {quoted} {here} && node {here}",
            "python": f"cp {quoted} {here} && python3 {here}",
            "toml": f"python3 {runner} --toml {quoted} --claimd {shlex.quote(claimd)}",
            "nginx": f"{shlex.quote(nginx_binary() or 'nginx')} -t -q -e stderr -c {quoted}",
            "json": f"python3 {runner} --json {quoted}",
            "console": f"python3 {runner} --console {quoted}",
        }[block.tag]
        emit(command, block.line)
    return "\n".join(out) + "\n"


def copy_repo(into: Path) -> None:
    try:
        names = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        ).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(REPO, into, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git", "target", "data", "node_modules"))
        return
    for name in filter(None, names):
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def port_free(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        # As the server binds: connections of a previous run in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


EXAMPLE_RUN = re.compile(r"\bcargo run -p claimd-verify --example (\S+)")


def examples_used(parsed: list[tuple[Path, list[Block]]]) -> set[str]:
    """The workspace examples that run blocks start (`cargo run -p claimd-verify --example NAME`)."""
    return {
        m.group(1)
        for _, blocks in parsed
        for b in blocks
        if b.skip is None and b.tag in SHELL_TAGS
        for m in EXAMPLE_RUN.finditer("\n".join(b.lines))
    }


def example_is_stale(binary: Path) -> str | None:
    """Why `binary` cannot stand for its source (missing, or older than claimd-verify's code)."""
    rebuild = f"cargo build -p claimd-verify --example {binary.name} (cargo test builds it too)"
    if not binary.is_file():
        return f"no example binary at {binary}: {rebuild}"
    built = binary.stat().st_mtime
    sources = [f for d in ("src", "examples") for f in (REPO / "claimd-verify" / d).rglob("*") if f.is_file()]
    newer = [f for f in sources if f.stat().st_mtime > built]
    if newer:
        return f"{binary} is older than {shown(newer[0])}: {rebuild}"
    return None


def documents(files: list[str]) -> list[Path]:
    """The files to run: those named, else README.md, docs/*.md and claimd-verify/README.md."""
    if files:
        return [Path(f).resolve() for f in files]
    found = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "claimd-verify" / "README.md"]
    return [f for f in found if f.is_file()]


def run_session(doc: Path, blocks: list[Block], claimd: str) -> float | None:
    """Runs one file's blocks in a session of their own; the time taken, or None on failure."""
    name = shown(doc)
    with tempfile.TemporaryDirectory(prefix="claimd-readme-") as tmp:
        work = Path(tmp) / "repo"
        scratch = Path(tmp) / "session"
        work.mkdir()
        scratch.mkdir()
        copy_repo(work)
        script = session_script(blocks, name, work, scratch, claimd)
        (scratch / "session.sh").write_text(script)
        env = dict(os.environ, __README=name, __T=str(scratch), __CLAIMD=claimd, __RUNNER=str(Path(__file__).resolve()))
        print(f"\n══ {name}: its own session, in a fresh copy of the repository")
        started = time.monotonic()
        result = subprocess.run(["bash", str(scratch / "session.sh")], cwd=work, env=env)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            failed_at = scratch / "failed_at"
            line = failed_at.read_text().strip() if failed_at.exists() else None
            log = scratch / "claimd.log"
            if log.exists():
                tail = log.read_text(errors="replace").splitlines()[-30:]
                print("\nclaimd's log, last lines:\n" + "\n".join(tail), file=sys.stderr)
            where = f"{name}:{line}" if line else f"{name} (see the output above)"
            print(f"\nREADME EXAMPLE FAILED at {where}: exit status {result.returncode}", file=sys.stderr)
            return None
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", metavar="FILE.md", help="default: README.md, docs/*.md, claimd-verify/README.md")
    parser.add_argument("--readme", action="append", default=[], help="a file to run (same as FILE.md)")
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    parser.add_argument("--claimd", default=str(Path(target) / "debug" / "claimd"))
    parser.add_argument("--check", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--toml", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    parser.add_argument("--console", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.check:
        return check(*args.check)
    if args.toml:
        return check_toml(args.toml, args.claimd)
    if args.console:
        return check_console(args.console)
    if args.json:
        try:
            expected_json(Path(args.json).read_text())
        except json.JSONDecodeError as e:
            print(f"not JSON: {e}", file=sys.stderr)
            return 1
        return 0

    docs = documents(args.readme + args.files)
    parsed = [(doc, parse(doc)) for doc in docs]  # every file's tags, before anything runs
    broken = [why for doc in docs for why in check_links(doc)]
    if broken:
        print("\nREADME EXAMPLE FAILED: links that do not resolve:\n  " + "\n  ".join(broken), file=sys.stderr)
        return 1
    runnable = [(doc, blocks) for doc, blocks in parsed if any(b.skip is None and b.tag not in ("text", "") for b in blocks)]
    claimd = str(Path(args.claimd).resolve())
    if runnable and not os.access(claimd, os.X_OK):
        print(f"no claimd binary at {claimd}: build it first (cargo build), or pass --claimd", file=sys.stderr)
        return 1
    if any(b.tag == "nginx" and b.skip is None for _, blocks in parsed for b in blocks) and nginx_binary() is None:
        print("nginx is needed for the ```nginx blocks (.ci/run installs it)", file=sys.stderr)
        return 1

    for name in sorted(examples_used(parsed)):
        stale = example_is_stale(Path(claimd).parent / "examples" / name)
        if stale:
            print(stale, file=sys.stderr)
            return 1

    took: dict[Path, float] = {}
    for doc, blocks in runnable:
        if not port_free(SERVER):
            print(f"{SERVER} is in use: the examples' claimd listens there; stop what holds it", file=sys.stderr)
            return 1
        elapsed = run_session(doc, blocks, claimd)
        if elapsed is None:
            return 1
        took[doc] = elapsed

    total_ran = 0
    kinds: dict[str, int] = {}
    lines = []
    for doc, blocks in parsed:
        name = shown(doc)
        ran = [b for b in blocks if b.skip is None and b.tag not in ("text", "")]
        skipped = [b for b in blocks if b.skip is not None]
        text = [b for b in blocks if b.skip is None and b.tag in ("text", "")]
        total_ran += len(ran)
        for b in ran:
            kinds[b.tag] = kinds.get(b.tag, 0) + 1
        if ran:
            lines.append(f"  {name}: {len(ran)} run and passed in {took[doc]:.1f} s")
        else:
            lines.append(f"  {name}: nothing to run; links checked")
        for b in skipped:
            lines.append(f"    not run: {name}:{b.line} {b.tag or 'text'}: {b.skip}")
        if text:
            lines.append(f"    prose, not examples (untagged or text): lines {', '.join(str(b.line) for b in text)}")
    print(
        f"\nREADME examples: {total_ran} blocks in {len(docs)} file{'' if len(docs) == 1 else 's'} run and passed in"
        f" {sum(took.values()):.1f} s ({', '.join(f'{n} {t}' for t, n in sorted(kinds.items()))}); every link resolves"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

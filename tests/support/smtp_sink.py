#!/usr/bin/env python3
r"""A real SMTP server on loopback that keeps every mail it accepts, for the mail tests.

    smtp_sink.py --dir DIR [--port PORT] [--bind-timeout SECONDS] [--stop-on-stdin-eof]

Listens on 127.0.0.1:PORT (default 0: a free port) with aiosmtpd and prints the port it
listens on as the first line of stdout, flushed, once it answers. Exits 0 on SIGTERM or
SIGINT (and, with --stop-on-stdin-eof, when its standard input reaches end of file: the
test that started it has gone), 2 on bad usage or a port it cannot bind within
--bind-timeout (default 5 s: a port just freed by a killed sink may still be held for a
moment by a client's connection), 3 when aiosmtpd is not installed.

Every accepted mail N (1, 2, ... in order of acceptance; a sink started again on the same
DIR carries on after the highest N there) is written as two files, each atomically
(written under a temporary name, then renamed):

  DIR/N.eml   the message's bytes exactly as received (after SMTP's dot-unstuffing)
  DIR/N.json  written second, so its presence means the mail is complete:
              {"from": envelope sender, "to": [envelope recipients],
               "headers": [[name, decoded value], ...] in order,
               "subject": decoded Subject, "text": the text/plain body, "html": the
               text/html body ("" when absent; transfer encoding and charset decoded by
               Python's email package, line ends as "\n"),
               "defects": [what the email package found wrong]}

Control files, checked at each recipient (RCPT TO), so they take effect at the next
transaction without a restart:

  DIR/REJECT  every recipient is refused with `550 5.7.1 message rejected` (permanent)
  DIR/REFUSE  every recipient is refused with `451 4.3.0 try again later` (transient)

REJECT wins when both are present. Each refusal appends one line to DIR/refusals.log:
`CODE RECIPIENT`.
"""

import argparse
import email
import email.policy
import errno
import json
import os
import re
import signal
import sys
import threading
import time

try:
    from aiosmtpd.controller import Controller
except ImportError as err:  # pragma: no cover - depends on the machine
    print(
        f"aiosmtpd is not installed: {err}; run `.ci/run tools` or "
        "`python3 -m pip install 'aiosmtpd>=1.4'`",
        file=sys.stderr,
    )
    sys.exit(3)

REFUSE_REPLY = "451 4.3.0 try again later"
REJECT_REPLY = "550 5.7.1 message rejected"
MAIL_FILE = re.compile(r"^(\d+)\.(eml|json)$")


def write_atomically(path, data):
    """Writes `data` under a temporary name beside `path`, then renames it into place, so a
    reader never sees a partial file."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def decoded(raw):
    """What a test reads of a message: headers, subject and the text and HTML bodies with
    their transfer encoding (quoted-printable, base64) and charset undone."""
    summary = {"headers": [], "subject": "", "text": "", "html": "", "defects": []}
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        summary["headers"] = [[name, str(value)] for name, value in msg.items()]
        summary["subject"] = str(msg.get("Subject", ""))
        for kind in ("plain", "html"):
            part = msg.get_body(preferencelist=(kind,))
            if part is not None:
                content = part.get_content().replace("\r\n", "\n")
                summary["text" if kind == "plain" else "html"] = content
        for part in msg.walk():
            summary["defects"] += [repr(defect) for defect in part.defects]
    except Exception as err:  # noqa: BLE001 - an unparsable mail is reported, not fatal
        summary["defects"].append(f"unparsable: {err!r}")
    return summary


class Sink:
    """The aiosmtpd handler: refuses while a control file says so, keeps the rest."""

    def __init__(self, directory):
        self.dir = directory
        numbers = [
            int(match.group(1))
            for match in map(MAIL_FILE.match, os.listdir(directory))
            if match
        ]
        self.next = max(numbers, default=0) + 1

    def refusal(self):
        if os.path.exists(os.path.join(self.dir, "REJECT")):
            return REJECT_REPLY
        if os.path.exists(os.path.join(self.dir, "REFUSE")):
            return REFUSE_REPLY
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.refusal()
        if reply is not None:
            with open(os.path.join(self.dir, "refusals.log"), "a") as log:
                log.write(f"{reply[:3]} {address}\n")
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n, self.next = self.next, self.next + 1
        raw = envelope.original_content
        base = os.path.join(self.dir, str(n))
        write_atomically(f"{base}.eml", raw)
        record = {"from": envelope.mail_from, "to": list(envelope.rcpt_tos)}
        record.update(decoded(raw))
        write_atomically(f"{base}.json", json.dumps(record).encode())
        return f"250 OK queued as {n}"


class SinkController(Controller):
    """aiosmtpd's Controller, which checks that its server answers by connecting to the
    port it was given: on port 0 that is the port the kernel picked."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def start(sink, port, bind_timeout):
    """Starts the server, retrying a fixed port that is still in use for `bind_timeout`
    seconds. asyncio sets SO_REUSEADDR on Linux, so a port left in TIME_WAIT by a killed
    sink binds at once."""
    deadline = time.monotonic() + bind_timeout
    while True:
        controller = SinkController(
            sink,
            hostname="127.0.0.1",
            port=port,
            server_hostname="smtp-sink.test",  # no FQDN lookup at start-up
        )
        try:
            controller.start()
            return controller
        except OSError as err:
            if err.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                print(f"cannot listen on 127.0.0.1:{port}: {err}", file=sys.stderr)
                sys.exit(2)
            time.sleep(0.05)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="where mails are written")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bind-timeout", type=float, default=5.0)
    parser.add_argument("--stop-on-stdin-eof", action="store_true")
    args = parser.parse_args()
    if not os.path.isdir(args.dir):
        parser.error(f"--dir {args.dir}: not a directory")

    # Blocked before any thread starts, so every thread inherits the mask and the signals
    # wait for sigwait below.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)

    controller = start(Sink(args.dir), args.port, args.bind_timeout)
    print(controller.port, flush=True)
    print(f"smtp sink on 127.0.0.1:{controller.port} writing to {args.dir}", file=sys.stderr)

    if args.stop_on_stdin_eof:

        def watch_stdin():
            # The raw descriptor: a daemon thread blocked in sys.stdin's buffered reader
            # holds its lock, which aborts the interpreter's shutdown.
            while os.read(sys.stdin.fileno(), 4096):
                pass
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch_stdin, daemon=True).start()

    signal.sigwait(stop_signals)
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

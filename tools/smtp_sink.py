#!/usr/bin/env python3
"""A small SMTP server for argent's mail tests (aiosmtpd): it stores every message it
accepts and can be told to refuse chosen recipients.

    smtp_sink.py --dir DIR [--host 127.0.0.1] [--port 0]
                 [--tls-cert CERT --tls-key KEY [--implicit-tls]]
                 [--auth USER:PASS] [--fail ADDR=CODE[:COUNT]]...

It listens on HOST:PORT (port 0: a free one) and prints `PORT <n>` on stdout once it
accepts connections. Each accepted message is stored as DIR/<n>.eml (the bytes received
after DATA) and DIR/<n>.json (mail_from, rcpt_tos, whether TLS and AUTH were in force),
written to a temporary name and renamed, so a reader never sees half a message.

With --tls-cert/--tls-key the server offers STARTTLS and requires it before MAIL;
with --implicit-tls as well, it speaks TLS from the first byte instead. --auth requires
AUTH (PLAIN/LOGIN) with that user and password. --fail ADDR=CODE[:COUNT] answers RCPT TO
ADDR with CODE (e.g. 451 or 550) the first COUNT times (always without COUNT), then
accepts it. Stops on SIGTERM/SIGINT.
"""

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, directory, fails):
        self.directory = directory
        self.fails = fails  # addr -> [code, remaining or None]
        os.makedirs(directory, exist_ok=True)
        self.count = len([f for f in os.listdir(directory) if f.endswith(".eml")])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rule = self.fails.get(address.lower())
        if rule is not None:
            code, remaining = rule
            if remaining is None or remaining > 0:
                if remaining is not None:
                    rule[1] = remaining - 1
                kind = "4.7.1 Try again later" if code < 500 else "5.1.1 No such user here"
                return f"{code} {kind} ({address})"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, f"{self.count:05d}")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None
            or (server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None),
            "authenticated": bool(session.authenticated),
        }
        for ext, data in ((".json", json.dumps(meta).encode()), (".eml", envelope.original_content or b"")):
            tmp = base + ext + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, base + ext)
        return "250 2.0.0 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--auth")
    p.add_argument("--fail", action="append", default=[])
    a = p.parse_args()

    fails = {}
    for rule in a.fail:
        addr, _, spec = rule.partition("=")
        code, _, count = spec.partition(":")
        fails[addr.lower()] = [int(code), int(count) if count else None]
    sink = Sink(a.dir, fails)

    ctx = None
    if a.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)

    authenticator = None
    if a.auth:
        user, _, password = a.auth.partition(":")

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok)

    def factory():
        kwargs = dict(hostname="sink.test", authenticator=authenticator,
                      auth_required=authenticator is not None,
                      auth_require_tls=ctx is not None)
        if ctx is not None and not a.implicit_tls:
            kwargs.update(tls_context=ctx, require_starttls=True)
        return SMTP(sink, **kwargs)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(factory, host=a.host, port=a.port,
                           ssl=ctx if a.implicit_tls else None))
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    server.close()
    loop.run_until_complete(server.wait_closed())
    return 0


if __name__ == "__main__":
    sys.exit(main())

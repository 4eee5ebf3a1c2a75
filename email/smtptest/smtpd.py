"""A real SMTP server for keygate's email tests (aiosmtpd).

Usage: smtpd.py OUTDIR PORT [--host HOST] [--cert CERT --key KEY] [--implicit-tls]
                [--user USER --password PASSWORD] [--refuse-links]

Binds HOST:PORT (HOST 127.0.0.1 by default, an IPv4 or IPv6 address; PORT
0: any free port), prints "PORT <n>" once listening,
and writes each message it accepts to OUTDIR as JSON: envelope sender,
recipients, whether the session was TLS and authenticated, and the raw
message. With a certificate it offers STARTTLS and requires it (or, with
--implicit-tls, speaks TLS from the first byte); with a user it requires
AUTH over TLS. With --refuse-links it refuses every message that holds a
link, quoting the link in its reply, as some content filters do.
"""
import argparse
import asyncio
import email
import json
import os
import re
import socket
import ssl
import sys
import uuid

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    p = argparse.ArgumentParser()
    p.add_argument("outdir")
    p.add_argument("port", type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--refuse-links", action="store_true")
    a = p.parse_args()

    tls = None
    if a.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.cert, a.key)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            if a.refuse_links:
                msg = email.message_from_bytes(envelope.content)
                for part in msg.walk():
                    body = part.get_payload(decode=True) or b""
                    m = re.search(rb"https?://[^\s<>\"]+", body)
                    if m:
                        return "550 5.7.1 Message refused: it links to " + m.group(0).decode()
            rec = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                "authenticated": bool(session.authenticated),
                "data": envelope.content.decode("utf-8", "replace"),
            }
            name = uuid.uuid4().hex
            tmp = os.path.join(a.outdir, "." + name)
            with open(tmp, "w") as f:
                json.dump(rec, f)
            os.rename(tmp, os.path.join(a.outdir, name + ".json"))
            return "250 Message accepted for delivery"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        )
        return AuthResult(success=ok)

    def factory():
        kw = {"hostname": "keygate-test-smtpd"}
        if tls is not None and not a.implicit_tls:
            kw.update(tls_context=tls, require_starttls=True)
        if a.user:
            # With implicit TLS the connection is encrypted before SMTP
            # starts, which aiosmtpd's own check does not see.
            kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=not a.implicit_tls)
        return SMTP(Handler(), **kw)

    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.host, a.port))
    sock.listen(64)

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(factory, sock=sock, ssl=tls if a.implicit_tls else None)
    )
    print("PORT", sock.getsockname()[1], flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    sys.exit(main())

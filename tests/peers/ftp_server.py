#!/usr/bin/env python3
"""pyftpdlib (an FTP server nobody on this team wrote) as a test peer.

    ftp_server.py ROOT COMMAND_LOG [--tls DIR] [--user NAME:PASSWORD] [faults]

Faults, for the adapter's tests: --hostile (listings also name `../etc/passwd`, `a/b` and
`..`), --twice (every listing names each entry twice), --many N (listings start with N made-up entries), --truncate-once NAME (the first
download of NAME ends early, as a server that lost the file's tail), --grow NAME (every
download of NAME is longer than its listing), --stall NAME (a download of NAME blocks the
server for 5 s).

Serves ROOT on 127.0.0.1 (a free port) and writes every command it receives, one JSON line
each, to COMMAND_LOG. The user has every permission, so a write would succeed if a client
sent one: the log is the proof that none was sent. With --tls a throw-away self-signed
certificate is made in DIR and explicit FTPS (AUTH TLS) offered. Prints `PORT <n>` and,
with --tls, `FINGERPRINT <SHA-256 of the certificate, AA:BB:...>`, then serves until killed.
"""

import argparse
import datetime
import hashlib
import json
import os
import sys

import time

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
from pyftpdlib.servers import FTPServer


def make_cert(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    os.makedirs(d, exist_ok=True)
    certfile, keyfile = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(keyfile, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return certfile, keyfile, ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("log")
    ap.add_argument("--tls")
    ap.add_argument("--user", default="plc:secret")
    ap.add_argument("--hostile", action="store_true")
    ap.add_argument("--twice", action="store_true")
    ap.add_argument("--many", type=int, default=0)
    ap.add_argument("--truncate-once")
    ap.add_argument("--grow")
    ap.add_argument("--stall")
    ap.add_argument("--endless")
    ap.add_argument("--cut-then-change")
    args = ap.parse_args()
    truncated = set()

    class Wrapped:
        """A file that reads differently: cut short, or longer than it is."""

        def __init__(self, f, cut=None, extra=b""):
            self.f, self.cut, self.extra, self.name, self.done = f, cut, extra, f.name, 0

        def read(self, n=-1):
            b = self.f.read(n)
            if self.cut is not None:
                b = b[: max(0, self.cut - self.done)]
            if not b and self.extra:
                b, self.extra = self.extra, b""
            self.done += len(b)
            return b

        def close(self):
            self.f.close()

        @property
        def closed(self):
            return self.f.closed

    class Endless:
        """A download that never ends (a server streaming past the listed size)."""

        def __init__(self, f):
            self.f, self.name = f, f.name

        def read(self, n=65536):
            return b"E" * (n if n and n > 0 else 65536)

        def close(self):
            self.f.close()

        @property
        def closed(self):
            return self.f.closed

    class CutWithError(Wrapped):
        """The first 100 bytes, then the transfer fails (the server answers 426)."""

        def read(self, n=-1):
            if self.done >= 100:
                raise OSError("disk gone")
            return super().read(n)

    class FaultyFS(AbstractedFS):
        def format_mlsx(self, basedir, listing, perms, facts, ignore_err=True):
            for i in range(args.many):
                yield f"type=file;size=1; made-up-{i}\r\n".encode()
            if args.hostile:
                for name in ("../etc/passwd", "a/b", ".."):
                    yield f"type=file;size=5; {name}\r\n".encode()
            yield from super().format_mlsx(basedir, listing, perms, facts, ignore_err)
            if args.twice:
                yield from super().format_mlsx(basedir, listing, perms, facts, ignore_err)

        def open(self, filename, mode):
            f = super().open(filename, mode)
            base = os.path.basename(filename)
            if base == args.truncate_once and filename not in truncated:
                truncated.add(filename)
                return Wrapped(f, cut=100)
            if base == args.grow:
                return Wrapped(f, extra=b"grown")
            if base == args.stall:
                time.sleep(5)
            if base == args.endless:
                return Endless(f)
            if base == args.cut_then_change:
                if filename not in truncated:
                    truncated.add(filename)
                    return CutWithError(f, cut=None)
                # Later downloads: other content of the same length.
                data = f.read()
                f.close()
                import io
                b = io.BytesIO(b"B" * len(data))
                b.name = filename
                return b
            return f
    log = open(args.log, "a", buffering=1)
    base = TLS_FTPHandler if args.tls else FTPHandler

    class Recording(base):
        def pre_process_command(self, line, cmd, arg):
            log.write(json.dumps({"cmd": cmd, "arg": arg}) + "\n")
            return super().pre_process_command(line, cmd, arg)

    user, password = args.user.split(":", 1)
    auth = DummyAuthorizer()
    auth.add_user(user, password, args.root, perm="elradfmwMT")
    Recording.authorizer = auth
    Recording.abstracted_fs = FaultyFS
    Recording.passive_ports = None
    fingerprint = None
    if args.tls:
        Recording.certfile, Recording.keyfile, fingerprint = make_cert(args.tls)
        Recording.tls_control_required = True
        Recording.tls_data_required = True
    server = FTPServer(("127.0.0.1", 0), Recording)
    print("PORT", server.socket.getsockname()[1], flush=True)
    if fingerprint:
        print("FINGERPRINT", fingerprint, flush=True)
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    import logging
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    main()

#!/usr/bin/env python3
"""An independent verifier of plcvault vaults, written from vault/FORMAT.md alone.

It shares no code with plcvault: the standard library, PyNaCl (libsodium) for Ed25519, and
Debian's `zstd` command for decompression. The tests run it beside `plcvault verify` on
the golden vault and on every damaged fixture, and the two must agree finding by finding.

    verify_format.py [--read-data] [--stale-after SECONDS] --trust ROLE:PUBFILE... VAULT
    verify_format.py --evidence --trust ROLE:PUBFILE... DIR

Prints one JSON line per finding ({"kind", "message"}) and a last line {"summary": ...}.
Exit 0: intact; 1: findings; 2: the vault cannot be opened (no or damaged VAULT marker).
"""

import argparse
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

LOG_CONTEXT = b"plcvault-log-entry-v1\x00"
EVIDENCE_CONTEXT = b"plcvault-evidence-v1\x00"
MAX_CHUNK = 4_194_304
MAX_PACK = 128 << 20
MAX_PACK_ENTRIES = 1_000_000
MAX_UNTRUSTED_CHUNKS = 100_000
MAX_ENTRY_VALUES = 250_000
MAX_PER_KIND = 1000
MAX_CHUNK_FINDINGS = 100
LIMITS = {"VAULT": 4096, "entry": 4 << 20, "manifest": 256 << 20, "evidence": 64 << 20}
MAX_ARTIFACTS = 1_000_000
MAX_EVIDENCE_FILES = 1_000_000
SKEW = 300
ROLE_OF = {
    "snapshot": "collector",
    "collect-failed": "collector",
    "heartbeat": "collector",
    "drill": "collector",
    "approval": "approver",
    "recovery": "approver",
    "copy": "collector",
    "forget": "collector",
    "prune": "collector",
}
# Required fields of each known event and a check of their JSON type.
STR, INT, BOOL, LIST, OBJ, HASH = "str", "int", "bool", "list", "obj", "hash"
EVENT_FIELDS = {
    "snapshot": {"device": STR, "started": STR, "finished": STR, "manifest": HASH,
                 "manifest_size": INT, "complete": BOOL, "artifacts": INT, "bytes": INT,
                 "packs": LIST},
    "collect-failed": {"device": STR, "error": STR},
    "heartbeat": {"note": STR},
    "approval": {"device": STR, "snapshot": HASH, "manifest": HASH, "approver": STR,
                 "ticket": STR, "reason": STR, "rules": None, "accepted_suspect": BOOL},
    "drill": {"device": STR, "snapshot": HASH, "manifest": HASH, "target": STR,
              "passed": BOOL, "artifacts": INT, "bytes": INT, "restore_ms": INT,
              "verify_ms": INT, "failures": LIST},
    "recovery": {"accepted": LIST, "reason": STR},
    "copy": {"disk": STR, "label": STR, "target": STR, "size": INT, "head": HASH, "root": HASH,
             "written": INT, "bytes": INT, "total_bytes": INT},
    "forget": {"forgotten": LIST, "policy": None},
    "prune": {"removed": LIST, "packs": LIST, "freed": INT, "written": INT},
}
HEX64 = re.compile(r"[0-9a-f]{64}\Z")


class Unreadable(Exception):
    pass


U32, U64 = (1 << 32) - 1, (1 << 64) - 1
MAX_SEQ = (1 << 63) - 1
MAX_DEPTH = 127


def _pairs(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("a key appears twice")
    return dict(pairs)


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _finite(text):
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return v


def _sane(v, depth=0):
    """Strings are valid UTF-8 (no lone surrogates), nesting at most MAX_DEPTH, every number
    within the range of a 64-bit float."""
    if isinstance(v, int) and not isinstance(v, bool):
        try:
            float(v)
        except OverflowError:
            raise ValueError("number out of range")
    if isinstance(v, (dict, list)):
        if depth + 1 > MAX_DEPTH:
            raise ValueError("nested too deep")
        items = v.items() if isinstance(v, dict) else enumerate(v)
        for k, x in items:
            if isinstance(k, str):
                k.encode("utf-8")
            _sane(x, depth + 1)
    elif isinstance(v, str):
        v.encode("utf-8")


def count_values(v):
    if isinstance(v, dict):
        return 1 + sum(count_values(x) for x in v.values())
    if isinstance(v, list):
        return 1 + sum(count_values(x) for x in v)
    return 1


def strict_json(raw):
    """JSON as FORMAT.md allows it: no repeated key at any level, no NaN or infinities,
    valid UTF-8, at most 127 levels deep. Raises ValueError otherwise."""
    try:
        v = json.loads(raw, object_pairs_hook=_pairs, parse_constant=_no_constant,
                       parse_float=_finite)
        _sane(v)
    except (RecursionError, UnicodeEncodeError, UnicodeDecodeError) as e:
        raise ValueError(str(e))
    return v


def is_hash(v):
    return isinstance(v, str) and HEX64.match(v) is not None


def type_ok(v, t):
    if t is None:
        return True
    if t == STR:
        return isinstance(v, str)
    if t == INT:
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= U64
    if t == BOOL:
        return isinstance(v, bool)
    if t == LIST:
        return isinstance(v, list)
    if t == OBJ:
        return isinstance(v, dict)
    return is_hash(v)


def read_regular(path, limit):
    """The bytes of a regular file of at most `limit` bytes, read without blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Unreadable(f"{path} is not a regular file")
        if st.st_size > limit:
            raise Unreadable(f"{path} is {st.st_size} bytes, over the limit of {limit}")
        chunks, total = [], 0
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            total += len(b)
            if total > limit:
                raise Unreadable(f"{path} grew past the limit of {limit}")
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def sig_ok(pub_hex, msg, sig):
    try:
        VerifyKey(bytes.fromhex(pub_hex)).verify(msg, sig)
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False
    except Exception:  # a key that is not a point
        return False


def parse_time(s):
    if not isinstance(s, str) or not 20 <= len(s) <= 40:
        return None
    m = re.fullmatch(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?Z", s)
    if not m:
        return None
    try:
        t = datetime(*map(int, m.groups()[:6]), tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
    return t + (float(m.group(7)) if m.group(7) else 0.0)


class Verifier:
    def __init__(self, root, trust):
        self.root = root
        self.trust = trust  # public key hex -> set of roles
        self.findings = []

    def find(self, kind, message):
        self.findings.append({"kind": kind, "message": message})

    # --- VAULT -----------------------------------------------------------------------
    def open(self):
        path = os.path.join(self.root, "VAULT")
        if not os.path.lexists(path):
            raise Unreadable(f"{self.root} is not a vault (no VAULT)")
        text = read_regular(path, LIMITS["VAULT"])
        try:
            lines = text.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            raise Unreadable("the VAULT marker is damaged (not UTF-8)")
        if lines[:2] != ["plcvault vault", "format 1"]:
            if (lines[0] == "plcvault vault" and len(lines) > 1
                    and re.fullmatch(r"format \d{1,9}", lines[1]) and lines[1] != "format 1"):
                raise Unreadable(f"the vault uses another format ({lines[1]})")
            raise Unreadable("the VAULT marker is empty or damaged")
        ids = [l[3:] for l in lines[2:] if l.startswith("id ")]
        if not ids or not re.fullmatch(r"[0-9a-fA-F]{32}", ids[0]):
            raise Unreadable("the VAULT marker is damaged: no valid id line")
        self.id = ids[0]

    # --- the log ---------------------------------------------------------------------
    def parse_entry(self, n, raw):
        """(body dict, signature bytes) or a string saying why the entry is malformed."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "not UTF-8"
        if not text.endswith("\n"):
            return "no final newline"
        rest = text[:-1]
        if "\n" not in rest:
            return "no signature line"
        body, sig_hex = rest.split("\n", 1)
        if not re.fullmatch(r"[0-9a-f]{128}", sig_hex):
            return "signature line is not 128 lower-case hex digits"
        try:
            b = strict_json(body)
        except ValueError:
            return "body is not JSON as the format allows"
        if count_values(b) > MAX_ENTRY_VALUES:
            return "body holds more values than an entry may"
        if not isinstance(b, dict):
            return "body is not an object"
        header = {"v": INT, "vault": STR, "seq": INT, "time": STR, "signer": STR}
        for k, t in header.items():
            if k not in b or not type_ok(b[k], t):
                return f"header field {k} missing or of the wrong type"
        if not re.fullmatch(r"[0-9a-f]{64}", b["signer"]):
            return "signer is not a public key in lower-case hex"
        if b["v"] > U32:
            return "v is out of range"
        if b["v"] != 1:
            return f"entry version {b['v']} is not 1"
        if not re.fullmatch(r"[0-9a-fA-F]{32}", b["vault"]):
            return "vault is not a vault id"
        if parse_time(b["time"]) is None:
            return "time is not RFC 3339 UTC"
        t = b.get("type")
        if not isinstance(t, str) or not re.fullmatch(r"[a-z0-9-]{1,64}", t):
            return "no event type"
        if b.get("prev") is not None and not is_hash(b["prev"]):
            return "prev is not a hash"
        if t in EVENT_FIELDS:
            for k, ft in EVENT_FIELDS[t].items():
                if k not in b or not type_ok(b[k], ft):
                    return f"{t} field {k} missing or of the wrong type"
            if "device" in EVENT_FIELDS[t] and not re.fullmatch(r"[A-Za-z0-9._-]{1,255}", b["device"]):
                return "device is not a device name"
            if t == "forget":
                for f in b["forgotten"]:
                    if not (isinstance(f, dict) and isinstance(f.get("device"), str)
                            and isinstance(f.get("snapshots"), list)
                            and all(type_ok(x, INT) for x in f["snapshots"])):
                        return "forget items are not {device, snapshots}"
            if t == "prune":
                if not all(is_hash(x) for x in b["removed"]):
                    return "prune removed is not a list of hashes"
            if t in ("snapshot", "prune"):
                for p in b["packs"]:
                    if not (isinstance(p, dict) and is_hash(p.get("id")) and type_ok(p.get("size"), INT)):
                        return "snapshot packs are not {id, size}"
            if t == "drill":
                for f in b["failures"]:
                    if not (isinstance(f, dict) and isinstance(f.get("artifact"), str)
                            and isinstance(f.get("error"), str)):
                        return "drill failures are not {artifact, error}"
            if t == "collect-failed" and b.get("kind") is not None and not isinstance(b["kind"], str):
                return "collect-failed kind is not a string"
            if t == "recovery":
                for a in b["accepted"]:
                    ok = (isinstance(a, dict) and isinstance(a.get("kind"), str)
                          and isinstance(a.get("message"), str)
                          and (a.get("seq") is None or type_ok(a["seq"], INT))
                          and (a.get("vault") is None or isinstance(a["vault"], str))
                          and (a.get("hash") is None or is_hash(a["hash"])))
                    if not ok:
                        return "recovery accepted items are not {kind, seq?, vault?, hash?, message}"
        return b, bytes.fromhex(sig_hex), body.encode()

    def read_log(self):
        logdir = os.path.join(self.root, "log")
        if os.path.lexists(logdir) and not os.path.isdir(logdir):
            raise Unreadable(f"{logdir} is not a folder")
        names = os.listdir(logdir) if os.path.isdir(logdir) else []
        shaped = [int(n[:20]) for n in names if re.fullmatch(r"[0-9]{20}\.entry", n)]
        for n in sorted(x for x in shaped if not 1 <= x <= MAX_SEQ):
            self.find("malformed-entry", f"log/{n:020}.entry is not a valid entry number")
        seqs = sorted(x for x in shaped if 1 <= x <= MAX_SEQ)
        self.entries = []  # (n, body, hash, trusted)
        expected, prev = 1, None
        for n in seqs:
            if n != expected:
                self.find("missing-entry", f"entries {expected} to {n - 1} are missing")
            expected = n + 1
            path = os.path.join(logdir, f"{n:020}.entry")
            try:
                raw = read_regular(path, LIMITS["entry"])
            except Unreadable as e:
                self.find("malformed-entry", f"entry {n}: {e}")
                prev = (n, hashlib.sha256(b"").digest().hex())
                continue
            h = hashlib.sha256(raw).hexdigest()
            parsed = self.parse_entry(n, raw)
            if isinstance(parsed, str):
                self.find("malformed-entry", f"entry {n}: {parsed}")
                prev = (n, h)
                continue
            b, sig, body = parsed
            trusted = True
            if b["seq"] != n:
                self.find("reordered", f"file {n} holds entry {b['seq']}")
                trusted = False
            if b["vault"] != self.id:
                self.find("wrong-vault", f"entry {n} is of vault {b['vault']}")
                trusted = False
            roles = self.trust.get(b["signer"].lower())
            if roles is None:
                self.find("unknown-signer", f"entry {n} is signed by an unpinned key")
                trusted = False
            elif b["type"] in ROLE_OF and ROLE_OF[b["type"]] not in roles:
                self.find("wrong-role", f"entry {n} ({b['type']}) needs a {ROLE_OF[b['type']]} key")
                trusted = False
            if not sig_ok(b["signer"], LOG_CONTEXT + body, sig):
                self.find("bad-signature", f"entry {n}: the signature does not verify")
                trusted = False
            claimed = b.get("prev")
            after = prev[1] if prev is not None and prev[0] + 1 == n else None
            if n == 1:
                chain = claimed is None
            elif claimed is None:
                chain = False
            else:
                chain = after is None or claimed == after
            if not chain:
                self.find("broken-chain", f"entry {n} does not follow entry {n - 1}")
            prev = (n, h)
            self.entries.append((n, b, h, trusted))

    def check_clocks(self, now, stale_after):
        trusted = [(n, b) for n, b, _, ok in self.entries if ok]
        accepted = set()
        for _, b in trusted:
            if b["type"] == "recovery":
                for a in b["accepted"]:
                    if isinstance(a, dict):
                        accepted.add((a.get("kind"), a.get("seq")))
        sane = None
        for n, b in trusted:
            t = parse_time(b["time"])
            if t is None or ("future-time", n) in accepted:
                continue
            if sane is not None and t + SKEW < sane[1] and ("time-backwards", n) not in accepted:
                self.find("time-backwards", f"entry {n} is dated before entry {sane[0]}")
            if t > now + SKEW:
                if ("future-time", n) not in accepted:
                    self.find("future-time", f"entry {n} is dated ahead of this clock")
            else:
                sane = (n, t)
        if stale_after is not None and sane is not None and now - sane[1] > stale_after:
            self.find("stale", "the newest entry is older than the expected interval")

    # --- packs -----------------------------------------------------------------------
    def pack_path(self, pid):
        return os.path.join(self.root, "packs", pid[:2], f"{pid}.pack")

    @staticmethod
    def parse_trailer(data):
        """The trailer entries, or a string naming the broken invariant."""
        size = len(data)
        if size > MAX_PACK:
            return "larger than a pack can be"
        if size < 36:
            return "truncated"
        if data[:8] != b"PLCVPACK" or int.from_bytes(data[8:12], "little") != 1:
            return "bad header"
        if data[-8:] != b"PLCVEND1":
            return "truncated: no footer"
        t = int.from_bytes(data[-24:-16], "little")
        n = int.from_bytes(data[-16:-12], "little")
        if not (12 <= t <= size - 24) or n > MAX_PACK_ENTRIES or size - 24 - t != 49 * n:
            return "trailer does not match the size"
        entries, at = [], 12
        for i in range(n):
            o = t + 49 * i
            cid = data[o:o + 32].hex()
            off = int.from_bytes(data[o + 32:o + 40], "little")
            stored = int.from_bytes(data[o + 40:o + 44], "little")
            plain = int.from_bytes(data[o + 44:o + 48], "little")
            codec = data[o + 48]
            if codec not in (0, 1):
                return "unknown codec"
            if not 1 <= plain <= MAX_CHUNK:
                return "impossible plain length"
            if codec == 0 and stored != plain or codec == 1 and not 1 <= stored < plain:
                return "impossible stored length"
            if off != at or off + stored > t:
                return "entries not contiguous"
            at = off + stored
            entries.append((cid, off, stored, plain, codec))
        if at != t:
            return "entries do not cover the data"
        return entries

    def index_packs(self):
        """Reads the trailers of the packs every well-formed snapshot entry names."""
        self.index, self.packs, seen = {}, [], set()
        self.versions, self.versions_seen = [], set()
        budget = MAX_UNTRUSTED_CHUNKS
        # The packs the log names, in its order: those of snapshot entries, less those a
        # trusted prune entry removed, plus the ones it wrote.
        named = {}
        for _, b, _, trusted in self.entries:
            if b.get("type") == "prune" and trusted:
                for pid in b["removed"]:
                    named.pop(pid, None)
            if b.get("type") == "snapshot" or (b.get("type") == "prune" and trusted):
                for p in b["packs"]:
                    p0, t0 = named.get(p["id"], (p, False))
                    named[p["id"]] = (p0, t0 or trusted)
        # Packs of trusted entries first, then those only untrusted entries name.
        order = [p for p, t in named.values() if t] + [p for p, t in named.values() if not t]
        for p in order:
            trusted = named[p["id"]][1]
            if p["id"] in seen:
                continue
            seen.add(p["id"])
            path = self.pack_path(p["id"])
            if not os.path.lexists(path):
                self.find("missing-pack", f"pack {p['id'][:12]} is missing")
                continue
            try:
                data = read_regular(path, p["size"])
            except FileNotFoundError:
                self.find("missing-pack", f"pack {p['id'][:12]} is missing")
                continue
            except (Unreadable, OSError) as e:
                kind = "truncated-pack" if "over the limit" in str(e) else "corrupt-pack"
                self.find(kind, f"pack {p['id'][:12]}: {e}")
                continue
            if len(data) != p["size"]:
                self.find("truncated-pack", f"pack {p['id'][:12]} is {len(data)} bytes, the log says {p['size']}")
                continue
            entries = self.parse_trailer(data)
            if isinstance(entries, str):
                kind = "truncated-pack" if entries.startswith("truncated") else "corrupt-pack"
                self.find(kind, f"pack {p['id'][:12]}: {entries}")
                continue
            if not trusted:
                if len(entries) > budget:
                    self.find("corrupt-pack", f"pack {p['id'][:12]}: not indexed, over the untrusted budget")
                    continue
                budget -= len(entries)
            self.packs.append((p["id"], p["size"]))
            for cid, off, stored, plain, codec in entries:
                self.index.setdefault(cid, (p["id"], off, stored, plain, codec))

    @staticmethod
    def decompress(stored, plain_len):
        """zstd output of exactly `plain_len` bytes, or None. The frame comes from a temp
        file and at most `plain_len + 1` bytes are read back: a bomb is cut off, never
        buffered whole."""
        with tempfile.TemporaryFile() as f:
            f.write(stored)
            f.seek(0)
            p = subprocess.Popen(["zstd", "-d", "-c", "-q", "--no-progress", "--format=zstd"], stdin=f,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            out = p.stdout.read(plain_len + 1)
            if len(out) == plain_len:
                # The whole output, and zstd must end cleanly (trailing garbage fails).
                ok = p.wait() == 0
            else:
                p.kill()
                p.wait()
                ok = False
            p.stdout.close()
        return out if ok else None

    def read_data(self):
        for pid, size in self.packs:
            path = self.pack_path(pid)
            try:
                data = read_regular(path, size)
            except (Unreadable, OSError) as e:
                self.find("missing-pack", f"pack {pid[:12]} cannot be read: {e}")
                continue
            if hashlib.sha256(data).hexdigest() != pid:
                self.find("corrupt-pack", f"pack {pid[:12]} does not match its SHA-256")
            entries = self.parse_trailer(data)
            if isinstance(entries, str):
                self.find("corrupt-pack", f"pack {pid[:12]}: {entries}")
                continue
            bad = 0
            for cid, off, stored, plain, codec in entries:
                raw = data[off:off + stored]
                out = raw if codec == 0 else self.decompress(raw, plain)
                if out is None or len(out) != plain or hashlib.sha256(out).hexdigest() != cid:
                    bad += 1
                    if bad <= MAX_CHUNK_FINDINGS:
                        self.find("corrupt-chunk", f"chunk {cid[:12]} in pack {pid[:12]} is damaged")
            if bad > MAX_CHUNK_FINDINGS:
                self.find("corrupt-chunk", f"pack {pid[:12]}: {bad - MAX_CHUNK_FINDINGS} more damaged chunks")
        # Every distinct artifact version, hashed whole from its chunks.
        for n, a in self.versions:
            h = hashlib.sha256()
            ok = True
            for cid, _ in a["chunks"]:
                pid, off, stored, plain, codec = self.index[cid]
                try:
                    with open(self.pack_path(pid), "rb") as f:
                        f.seek(off)
                        raw = f.read(stored)
                except OSError:
                    ok = False
                    break
                out = raw if codec == 0 else self.decompress(raw, plain)
                if out is None or hashlib.sha256(out).hexdigest() != cid:
                    ok = False
                    break
                h.update(out)
            if ok and h.hexdigest() != a["sha256"]:
                self.find("bad-manifest", f"entry {n}: {a['name']!r} does not hash to its sha256")

    # --- manifests -------------------------------------------------------------------
    @staticmethod
    def name_ok(name):
        if not name or name.startswith("/") or "\\" in name or "\0" in name:
            return False
        return all(c not in ("", ".", "..") for c in name.split("/"))

    @staticmethod
    def manifest_shape(m):
        """True when the manifest has exactly the documented fields and types."""
        top = {"v": INT, "device": STR, "adapter": STR, "source": STR, "complete": BOOL,
               "warnings": LIST, "artifacts": LIST}
        if not isinstance(m, dict) or set(m) != set(top):
            return False
        if not all(type_ok(m[k], t) for k, t in top.items()):
            return False
        if not all(isinstance(w, str) for w in m["warnings"]):
            return False
        kinds = {"logic", "config", "recipe", "values", "identity", "image", "other"}
        art = {"name": STR, "kind": STR, "size": INT, "sha256": HASH, "status": STR, "chunks": LIST}
        for a in m["artifacts"]:
            if not isinstance(a, dict) or not set(art) <= set(a) <= set(art) | {"meta"}:
                return False
            if not all(type_ok(a[k], t) for k, t in art.items()):
                return False
            if a["kind"] not in kinds or a["status"] not in ("ok", "unstable"):
                return False
            meta = a.get("meta", {})
            if not isinstance(meta, dict) or not set(meta) <= {"mode", "mtime", "extra"}:
                return False
            extra = meta.get("extra", {})
            if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
                return False
            if "mode" in meta and meta["mode"] is not None and not (
                    type_ok(meta["mode"], INT) and meta["mode"] <= U32):
                return False
            if "mtime" in meta and meta["mtime"] is not None and not isinstance(meta["mtime"], str):
                return False
            for c in a["chunks"]:
                if not (isinstance(c, list) and len(c) == 2 and is_hash(c[0]) and type_ok(c[1], INT)
                        and c[1] <= 0xFFFFFFFF):
                    return False
        return True

    def check_manifests(self):
        done = set()
        forgotten = {(f["device"], s) for _, b, _, trusted in self.entries
                     if trusted and b["type"] == "forget" for f in b["forgotten"] for s in f["snapshots"]}
        for n, b, _, trusted in self.entries:
            if not trusted or b["type"] != "snapshot" or b["manifest"] in done:
                continue
            if (b["device"], n) in forgotten:
                continue
            done.add(b["manifest"])
            path = os.path.join(self.root, "manifests", f"{b['manifest']}.json")
            if not os.path.lexists(path):
                self.find("missing-manifest", f"manifest of entry {n} is missing")
                continue
            try:
                raw = read_regular(path, LIMITS["manifest"])
            except FileNotFoundError:
                self.find("missing-manifest", f"manifest of entry {n} is missing")
                continue
            except (Unreadable, OSError) as e:
                self.find("corrupt-manifest", f"manifest of entry {n}: {e}")
                continue
            if hashlib.sha256(raw).hexdigest() != b["manifest"]:
                self.find("corrupt-manifest", f"manifest of entry {n} does not match its hash")
                continue
            try:
                m = strict_json(raw)
            except ValueError:
                m = None
            if not self.manifest_shape(m) or m["v"] != 1 or len(m["artifacts"]) > MAX_ARTIFACTS:
                self.find("corrupt-manifest", f"manifest of entry {n} does not parse as format 1")
                continue
            if m["device"] != b["device"]:
                self.find("bad-manifest", f"manifest of entry {n} names another device")
            names_in_order = [a["name"] for a in m["artifacts"]]
            if any(x > y for x, y in zip(names_in_order, names_in_order[1:])):
                self.find("bad-manifest", f"entry {n}: the artifacts are not sorted by name")
            names = set()
            for a in m["artifacts"]:
                if not self.name_ok(a["name"]):
                    self.find("bad-manifest", f"entry {n}: unsafe artifact name {a['name']!r}")
                if a["name"] in names:
                    self.find("bad-manifest", f"entry {n}: {a['name']!r} listed twice")
                names.add(a["name"])
                lens = [c[1] for c in a["chunks"]]
                if any(not 1 <= x <= MAX_CHUNK for x in lens) or sum(lens) != a["size"]:
                    self.find("bad-manifest", f"entry {n}: chunks of {a['name']!r} do not add up")
                if any(self.index.get(cid, (None,) * 5)[3] != ln for cid, ln in a["chunks"]):
                    self.find("missing-chunk", f"entry {n}: {a['name']!r} has chunks in no readable pack")
                else:
                    version = (a["sha256"], json.dumps(a["chunks"]))
                    if version not in self.versions_seen:
                        self.versions_seen.add(version)
                        self.versions.append((n, a))


def cap_per_kind(findings):
    """The first MAX_PER_KIND findings of each kind, and one more saying how many followed."""
    out, seen = [], {}
    for f in findings:
        seen[f["kind"]] = seen.get(f["kind"], 0) + 1
        if seen[f["kind"]] <= MAX_PER_KIND:
            out.append(f)
    for kind in sorted(k for k, n in seen.items() if n > MAX_PER_KIND):
        out.append({"kind": kind, "message": f"{seen[kind] - MAX_PER_KIND} more findings of this kind"})
    return out


def verify_vault(root, trust, read_data, stale_after, now):
    v = Verifier(root, trust)
    v.open()
    v.read_log()
    v.check_clocks(now, stale_after)
    v.index_packs()
    v.check_manifests()
    if read_data:
        v.read_data()
    return v


def verify_evidence(root, trust, now):
    """The evidence bundle rules of FORMAT.md, then the log and manifests it holds."""
    problems = []
    raw = read_regular(os.path.join(root, "EVIDENCE.json"), LIMITS["evidence"])
    index = strict_json(raw)
    fields = {"v", "vault", "created", "since", "head_seq", "head_hash", "signer", "files"}
    if not isinstance(index, dict) or set(index) != fields or index["v"] != 1:
        raise Unreadable("EVIDENCE.json is not an evidence index of version 1")
    if not isinstance(index["files"], list) or len(index["files"]) > MAX_EVIDENCE_FILES:
        raise Unreadable("EVIDENCE.json does not parse: files")
    for f in index["files"]:
        if not (isinstance(f, dict) and set(f) == {"path", "sha256", "size"}
                and isinstance(f["path"], str) and is_hash(f["sha256"]) and type_ok(f["size"], INT)):
            raise Unreadable("EVIDENCE.json does not parse: a files item")
    if not (isinstance(index["vault"], str) and isinstance(index["created"], str)
            and (index["since"] is None or isinstance(index["since"], str))
            and (index["head_seq"] is None or type_ok(index["head_seq"], INT))
            and (index["head_hash"] is None or is_hash(index["head_hash"]))
            and isinstance(index["signer"], str) and re.fullmatch(r"[0-9a-f]{64}", index["signer"])):
        raise Unreadable("EVIDENCE.json does not parse")
    try:
        sig_text = read_regular(os.path.join(root, "EVIDENCE.sig"), 4096).decode()
        sig = bytes.fromhex(sig_text[:-1]) if re.fullmatch(r"[0-9a-f]{128}\n", sig_text) else b""
    except (Unreadable, OSError, ValueError):
        sig = b""
    signer = str(index["signer"]).lower()
    if "collector" not in trust.get(signer, set()):
        problems.append("the index is not signed by a key pinned as collector")
    if len(sig) != 64 or not sig_ok(signer, EVIDENCE_CONTEXT + raw, sig):
        problems.append("EVIDENCE.sig does not verify")
    listed = set()
    for f in index["files"]:
        p = f.get("path") if isinstance(f, dict) else None
        if not isinstance(p, str) or not Verifier.name_ok(p):
            problems.append(f"the index names a path outside the folder: {p!r}")
            continue
        listed.add(p)
        if not type_ok(f.get("size"), INT) or f["size"] > LIMITS["manifest"]:
            problems.append(f"{p} is listed larger than any evidence file")
            continue
        try:
            data = read_regular(os.path.join(root, p), f["size"])
            if hashlib.sha256(data).hexdigest() != f["sha256"] or len(data) != f["size"]:
                problems.append(f"{p} was changed")
        except FileNotFoundError:
            problems.append(f"{p} is missing")
        except (Unreadable, OSError) as e:
            problems.append(f"{p} was changed ({e})")
    for d, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(d, name), root)
            if rel not in ("EVIDENCE.json", "EVIDENCE.sig") and rel not in listed:
                problems.append(f"{rel} was added")
    v = Verifier(root, trust)
    v.open()
    v.read_log()
    problems += [f["message"] for f in v.findings]
    if v.id != index["vault"]:
        problems.append("the index names another vault")
    head = (v.entries[-1][0], v.entries[-1][2]) if v.entries else (None, None)
    if head != (index["head_seq"], index["head_hash"]):
        problems.append("the newest entry is not the one the index names")
    for n, b, _, trusted in v.entries:
        if trusted and b["type"] == "snapshot":
            path = os.path.join(root, "manifests", f"{b['manifest']}.json")
            if os.path.lexists(path):
                try:
                    if hashlib.sha256(read_regular(path, LIMITS["manifest"])).hexdigest() != b["manifest"]:
                        problems.append(f"manifest of entry {n} does not match its hash")
                except Unreadable as e:
                    problems.append(str(e))
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path")
    ap.add_argument("--trust", action="append", default=[], metavar="ROLE:PUBFILE")
    ap.add_argument("--read-data", action="store_true")
    ap.add_argument("--evidence", action="store_true")
    ap.add_argument("--stale-after", type=float)
    args = ap.parse_args()
    trust = {}
    for t in args.trust:
        role, path = t.split(":", 1)
        with open(path) as f:
            tag, key = f.read().split()[:2]
        if tag != "plcvault-ed25519-public-v1":
            sys.exit(f"{path} is not a plcvault public key")
        trust.setdefault(key.lower(), set()).add(role)
    try:
        if args.evidence:
            problems = verify_evidence(args.path, trust, time.time())
            for p in problems:
                print(json.dumps({"kind": "evidence", "message": p}))
            print(json.dumps({"summary": "tampered" if problems else "intact"}))
            sys.exit(1 if problems else 0)
        v = verify_vault(args.path, trust, args.read_data, args.stale_after, time.time())
    except (Unreadable, OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        print(json.dumps({"error": str(e)}))
        sys.exit(2)
    for f in cap_per_kind(v.findings):
        print(json.dumps(f))
    print(json.dumps({"summary": "damaged" if v.findings else "intact", "entries": len(v.entries)}))
    sys.exit(1 if v.findings else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks by hand, with nothing of plcvault's, that log entry N of a vault is in the tree
its signed checkpoint commits to — the worked example of vault/FORMAT.md.

usage: check_inclusion.py VAULT PUBLIC_KEY_HEX N PROOF_HEX...

PROOF_HEX: the hashes `plcvault proof inclusion N` prints, from the leaf up (any source
will do: the proof is checked, not trusted). Needs PyNaCl for Ed25519. Prints what it
checked; exits 1 when anything does not hold.
"""
import base64
import hashlib
import os
import sys

import nacl.signing


def main():
    vault, pub_hex, n, proof = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    pub = bytes.fromhex(pub_hex)
    vault_id = next(l[3:] for l in open(f"{vault}/VAULT") if l.startswith("id "))
    vault_id = vault_id.strip()

    # 1. The checkpoint: three lines of text, a blank line, signature lines.
    note = open(f"{vault}/tlog/checkpoint", "rb").read().decode()
    text, sigs = note.split("\n\n", 1)
    text += "\n"
    origin, size, root_b64 = text.splitlines()
    assert origin == f"plcvault/{vault_id}", origin
    size, root = int(size), base64.b64decode(root_b64)

    # 2. The signature line of the key, named plcvault/<vault id>/<first 16 hex digits>.
    name = f"plcvault/{vault_id}/{pub_hex[:16]}"
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + pub).digest()[:4]
    line = next(l for l in sigs.splitlines() if l.startswith(f"\u2014 {name} "))
    sig = base64.b64decode(line.split(" ")[2])
    assert sig[:4] == key_id, "key id"
    nacl.signing.VerifyKey(pub).verify(text.encode(), sig[4:])
    print(f"checkpoint signed by {name}: {size} entries, root {root.hex()}")

    # 3. The leaf: SHA-256 of 0x00 and the whole entry: in its bundle of 256 when there
    #    is one (each entry after its length, two bytes big-endian), else its own file.
    group = (n - 1) // 256
    digits = [f"{group % 1000:03d}"]
    g = group // 1000
    while g:
        digits.insert(0, f"x{g % 1000:03d}")
        g //= 1000
    bundle = os.path.join(vault, "tlog/tile/entries", *digits)
    if os.path.exists(bundle):
        raw, at, entries = open(bundle, "rb").read(), 0, []
        while at < len(raw):
            length = int.from_bytes(raw[at:at + 2], "big")
            entries.append(raw[at + 2:at + 2 + length])
            at += 2 + length
        entry = entries[(n - 1) % 256]
    else:
        entry = open(f"{vault}/log/{n:020d}.entry", "rb").read()
    r = hashlib.sha256(b"\x00" + entry).digest()

    # 4. Up the tree (RFC 9162 2.1.3.2): interior = SHA-256(0x01 || left || right).
    node = lambda left, right: hashlib.sha256(b"\x01" + left + right).digest()
    fn, sn = n - 1, size - 1
    for p in map(bytes.fromhex, proof):
        if sn == 0:
            sys.exit("FAIL: the proof is longer than the tree")
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root:
        sys.exit(f"FAIL: entry {n} is not in the checkpoint's tree")
    print(f"entry {n} is in the tree of {size} entries")


main()

#!/usr/bin/env python3
"""The baseline for the S7 fleet benchmark: python-snap7's client uploading every block of
every CPU in a plcvault config snippet (`plcvault sim --s7 N --write-config`), one CPU
after another: list the blocks of each type, then block info and a full upload of each
block, as a script around python-snap7 would.

usage: s7_client.py FLEET_TOML
prints one JSON line: {"cpus": N, "blocks": N, "bytes": N, "seconds": S}
"""
import json
import sys
import time
import tomllib

from snap7.client import Client
from snap7.type import Block

TYPES = [Block.OB, Block.FB, Block.FC, Block.DB, Block.SDB]


def main(path):
    with open(path, "rb") as f:
        fleet = tomllib.load(f)
    cpus = [d for d in fleet["device"] if d.get("adapter") == "s7"]
    t0 = time.monotonic()
    blocks = size = 0
    for dev in cpus:
        host, port = dev["address"].rsplit(":", 1)
        c = Client()
        c.connect(host, 0, 2, int(port))
        for t in TYPES:
            for n in c.list_blocks_of_type(t, 65535):
                c.get_block_info(t, n)
                data, length = c.full_upload(t, n)
                blocks += 1
                size += length
        c.disconnect()
    print(json.dumps({"cpus": len(cpus), "blocks": blocks, "bytes": size,
                      "seconds": time.monotonic() - t0}))


if __name__ == "__main__":
    main(sys.argv[1])

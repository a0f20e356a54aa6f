#!/usr/bin/env python3
"""The baseline for the EtherNet/IP fleet benchmark: pycomm3's LogixDriver reading every
tag of every controller in a plcvault config snippet (`plcvault sim --enip N
--write-config`), one controller after another: open (identity, program name, the tag
directory of both scopes and the structure templates, as LogixDriver does), then one
read() of every tag it listed, whole arrays included, as a script around pycomm3 would.

usage: enip_client.py FLEET_TOML
prints one JSON line: {"controllers": N, "tags": N, "errors": N, "seconds": S}
"""
import json
import sys
import time
import tomllib

from pycomm3 import LogixDriver


def main(path):
    with open(path, "rb") as f:
        fleet = tomllib.load(f)
    plcs = [d for d in fleet["device"] if d.get("adapter") == "enip"]
    t0 = time.monotonic()
    tags = errors = 0
    for dev in plcs:
        with LogixDriver(dev["address"]) as plc:
            names = []
            for name, t in plc.tags.items():
                names.append(f"{name}{{{t['dim']}}}" if t["dim"] else name)
            for r in plc.read(*names):
                tags += 1
                errors += 1 if r.error else 0
    print(json.dumps({"controllers": len(plcs), "tags": tags, "errors": errors,
                      "seconds": time.monotonic() - t0}))


if __name__ == "__main__":
    main(sys.argv[1])

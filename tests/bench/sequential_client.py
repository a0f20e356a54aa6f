#!/usr/bin/env python3
"""The baseline for the fleet benchmark: a plain sequential pymodbus client that reads
every [[device]] range of a plcvault config snippet, one device after another, 125
registers per request, no rate cap.

usage: sequential_client.py FLEET_TOML
prints one JSON line: {"devices": N, "requests": N, "registers": N, "seconds": S}
"""
import json
import sys
import time
import tomllib

from pymodbus.client import ModbusTcpClient


def main(path):
    with open(path, "rb") as f:
        fleet = tomllib.load(f)
    t0 = time.monotonic()
    requests = registers = 0
    for dev in fleet["device"]:
        host, port = dev["address"].rsplit(":", 1)
        client = ModbusTcpClient(host, port=int(port), timeout=5)
        if not client.connect():
            sys.exit(f"cannot connect to {dev['address']}")
        for rng in dev.get("range", []):
            addr, end = rng["start"], rng["start"] + rng["count"]
            while addr < end:
                n = min(125, end - addr)
                r = client.read_holding_registers(addr, count=n, device_id=1)
                if r.isError() or len(r.registers) != n:
                    sys.exit(f"{dev['name']}: read {addr}+{n} failed: {r}")
                requests += 1
                registers += n
                addr += n
        client.close()
    print(json.dumps({"devices": len(fleet["device"]), "requests": requests,
                      "registers": registers, "seconds": time.monotonic() - t0}))


if __name__ == "__main__":
    main(sys.argv[1])

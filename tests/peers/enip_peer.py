"""EtherNet/IP test peers for the enip adapter, both ways.

  enip_peer.py server SPEC_JSON
      cpppo's Logix simulator on 127.0.0.1 (a port the OS picks) with the tags of SPEC
      ({"tags": {"Recipe": ["DINT", 100], ...}, "values": {"Recipe": [1, 2, ...]},
        "identity": {"Product Name": "...", "Serial Number": 305419896, ...},
        "route": "1/0"}). cpppo prints its bound address itself; once the values are set
      this prints {"ready": true}, then one JSON line per request it processed
      ({"command": c, "services": [s, ...]}: the encapsulation command and every CIP
      service code its parser found in the request, an Unconnected Send's embedded one
      included).

  enip_peer.py client HOST PORT TAGS_JSON
      pycomm3's LogixDriver against a controller (our simulator): its identity, program
      name and tag list as pycomm3 reads them, and the value of each tag of TAGS_JSON
      (["Recipe{100}", "LineSpeed", ...]), printed as one JSON object.
"""

import json
import os
import sys
import tempfile
import threading
import time


def walk(d, prefix=""):
    if isinstance(d, list):
        items = [(f"[{i}]", x) for i, x in enumerate(d)]
    else:
        try:
            items = dict.items(d)
        except TypeError:
            return []
    out = []
    for k, v in items:
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, (dict, list)):
            out += walk(v, key)
        else:
            out.append((key, v))
    return out


def services_of(b):
    """The CIP service codes in a SendRRData or SendUnitData payload as it came off the
    wire: each data item's service (a connected item after its sequence number), an
    Unconnected Send's embedded one, and every service inside a Multiple Service Packet."""
    out = []
    if len(b) < 8:
        return out
    n, at = int.from_bytes(b[6:8], "little"), 8
    for _ in range(n):
        kind = int.from_bytes(b[at : at + 2], "little")
        size = int.from_bytes(b[at + 2 : at + 4], "little")
        d, at = b[at + 4 : at + 4 + size], at + 4 + size
        if kind == 0xB1:
            d = d[2:]
        elif kind != 0xB2:
            continue
        out += message_services(d)
    return out


def message_services(d):
    if not d:
        return []
    out = [d[0]]
    words = d[1]
    body = d[2 + 2 * words :]
    if d[0] == 0x52 and d[2:4] == b"\x20\x06":
        inner = body[4 : 4 + int.from_bytes(body[2:4], "little")]
        out += message_services(inner)
    elif d[0] == 0x0A and len(body) >= 2:
        count = int.from_bytes(body[0:2], "little")
        offs = [int.from_bytes(body[2 + 2 * i : 4 + 2 * i], "little") for i in range(count)]
        for i, o in enumerate(offs):
            end = offs[i + 1] if i + 1 < count else len(body)
            out += message_services(body[o:end])
    return out


def server(spec):
    from cpppo.server.enip import logix
    from cpppo.server.enip import main as cpppo_main

    def recording(addr, data, **kwds):
        result = logix.process(addr, data, **kwds)
        request = dict.get(data, "request") or {}
        flat = dict(walk(request))
        command = flat.get("enip.command")
        if command is not None:
            raw = flat.get("enip.input")
            services = services_of(bytes(raw)) if raw is not None else []
            print(json.dumps({"command": command, "services": services}), flush=True)
        return result

    def set_values():
        while len(cpppo_main.tags) < len(spec["tags"]):
            time.sleep(0.05)
        for name, values in spec.get("values", {}).items():
            attr = dict.__getitem__(cpppo_main.tags, name).attribute
            if isinstance(values, list):
                attr[0 : len(values)] = values
            else:
                attr[0] = values
        print(json.dumps({"ready": True}), flush=True)

    argv = ["-a", "127.0.0.1:0", "-A", "--no-udp"]
    if spec.get("identity"):
        cfg = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
        cfg.write("[Identity]\n")
        for k, v in spec["identity"].items():
            cfg.write(f"{k} = {v}\n")
        cfg.close()
        argv += ["-c", cfg.name]
    if spec.get("route") is not None:
        argv += ["--route-path", spec["route"]]
    for name, (kind, n) in spec["tags"].items():
        argv.append(f"{name}={kind}[{n}]" if n > 1 else f"{name}={kind}")
    threading.Thread(target=set_values, daemon=True).start()
    cpppo_main.main(argv=argv, enip_process=recording)


def plain(v):
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def client(host, port, tags):
    from pycomm3 import LogixDriver

    out = {}
    with LogixDriver(f"{host}:{port}") as plc:
        info = plc.info
        out["info"] = {
            "vendor": info.get("vendor"),
            "product_type": info.get("product_type"),
            "product_code": info.get("product_code"),
            "revision": info.get("revision"),
            "serial": info.get("serial"),
            "product_name": info.get("product_name"),
            "name": info.get("name"),
            "programs": sorted(info.get("programs", {})),
        }
        out["tags"] = {
            name: {
                "data_type": t["data_type_name"],
                "dimensions": t["dimensions"],
                "dim": t["dim"],
            }
            for name, t in plc.tags.items()
        }
        values = {}
        for tag in tags:
            r = plc.read(tag)
            if r.error:
                values[tag] = {"error": str(r.error)}
            else:
                values[tag] = plain(r.value)
        out["values"] = values
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(json.loads(sys.argv[2]))
    elif sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
    else:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} server SPEC | client HOST PORT TAGS")

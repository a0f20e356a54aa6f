"""python-snap7 as a test peer for the s7 adapter, both ways.

  snap7_peer.py server SPEC_JSON
      python-snap7's Server on 127.0.0.1 (a port the OS picks), serving the DBs of SPEC
      ({"dbs": {"10": size, ...}, "seed": n}; byte i of DB n is (i * 7 + n + seed) % 256).
      Prints {"port": P}, then one JSON line per request it receives
      ({"pdu_type": t, "function": f, "group": g, "subfunction": s}).

  snap7_peer.py client HOST PORT SPEC_JSON
      python-snap7's Client against a server (our simulated CPU): identity, block
      lists, block info, full uploads and DB reads, printed as one JSON object.
"""

import json
import sys


def db_bytes(number, size, seed):
    return bytearray((i * 7 + number + seed) % 256 for i in range(size))


def server(spec):
    import snap7
    from snap7.server import Server
    from snap7.type import SrvArea

    class Recording(Server):
        def _process_request(self, request_data, client_address):
            d = bytes(request_data)
            rec = {"pdu_type": d[1] if len(d) > 1 else None}
            if len(d) > 10 and d[1] == 0x01:
                rec["function"] = d[10]
            elif len(d) > 16 and d[1] == 0x07:
                rec["group"] = d[15] & 0x0F
                rec["subfunction"] = d[16]
            print(json.dumps(rec), flush=True)
            return super()._process_request(request_data, client_address)

    srv = Recording(log=False)
    srv.host = "127.0.0.1"
    keep = []
    for number, size in spec.get("dbs", {}).items():
        buf = db_bytes(int(number), int(size), int(spec.get("seed", 0)))
        keep.append(buf)
        srv.register_area(SrvArea.DB, int(number), buf)
    srv.start(tcp_port=0)
    port = srv.server_socket.getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    try:
        sys.stdin.read()
    finally:
        srv.stop()


def client(host, port, spec):
    from snap7.client import Client
    from snap7.type import Block

    c = Client()
    c.connect(host, spec.get("rack", 0), spec.get("slot", 2), int(port))
    out = {"pdu": c.get_pdu_length()}
    info = c.get_cpu_info()
    out["cpu"] = {
        "as_name": info.ASName.decode("latin-1"),
        "module_name": info.ModuleName.decode("latin-1"),
        "serial": info.SerialNumber.decode("latin-1"),
        "module_type": info.ModuleTypeName.decode("latin-1"),
    }
    oc = c.get_order_code()
    out["order_code"] = oc.OrderCode.decode("latin-1")
    out["firmware"] = [oc.V1, oc.V2, oc.V3]
    counts = c.list_blocks()
    out["counts"] = {"OB": counts.OBCount, "FB": counts.FBCount, "FC": counts.FCCount,
                     "DB": counts.DBCount, "SDB": counts.SDBCount}
    out["blocks"] = {}
    for name, t in [("OB", Block.OB), ("FB", Block.FB), ("FC", Block.FC), ("DB", Block.DB), ("SDB", Block.SDB)]:
        numbers = c.list_blocks_of_type(t, 65535)
        for n in numbers:
            bi = c.get_block_info(t, n)
            data, size = c.full_upload(t, n)
            out["blocks"][f"{name}{n}"] = {
                "checksum": bi.CheckSum,
                "mc7_size": bi.MC7Size,
                "load_size": bi.LoadSize,
                "author": bi.Author.decode("latin-1"),
                "bytes": bytes(data[:size]).hex(),
            }
    out["dbs"] = {}
    for number, size in spec.get("dbs", {}).items():
        out["dbs"][number] = bytes(c.db_read(int(number), 0, int(size))).hex()
    c.disconnect()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(json.loads(sys.argv[2]))
    else:
        client(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))

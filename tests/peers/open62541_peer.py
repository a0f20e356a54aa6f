"""OPC UA test peer: open62541's server (through its Python binding `o6`), a second OPC UA
implementation nobody here wrote, beside asyncua.

  open62541_peer.py server SPEC_JSON
      An open62541 server on 127.0.0.1 with a made-up address space under Objects in
      namespace 1:
        Recipes (ns=1;s=Recipes): Recipe1 Int32[10], Speed Double, Name String (these
          three writable), Setpoint Float (read-only), and a Line object with Step UInt16;
        Config (ns=1;s=Config): SPEC["nodes"] Int32 variables C00000... in objects of 500.
      SPEC: {"nodes": N, "security": "None" | "secure" (open62541's defaults with a
             certificate: None, Basic256Sha256, Aes128-Sha256-RsaOaep and more, Sign and
             SignAndEncrypt; a password only over encrypted endpoints) | "secure_only"
             (no None channel, not even for GetEndpoints), "users": {"name": "pw"} (only
             these logins, no anonymous)} ("dir" is ignored: nothing is written).
      Prints {"ready": true, "port": P, "thumbprint": "sha256 hex of its certificate"}
      once it listens, then one JSON line per service request it began
      ({"service": "ReadRequest"}), named by the request's type as open62541 reports it.

  Values change only when the test says so: it writes to standard input lines of
  {"set": "ns=1;s=Recipes.Speed", "value": 2.5} and the server answers {"set": true}.
"""

import asyncio
import datetime
import hashlib
import json
import os
import socket
import sys


def self_signed(uri):
    """A server certificate for `uri` on 127.0.0.1 and localhost: (DER, PEM key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "open62541 test server"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "plcvault tests")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.UniformResourceIdentifier(uri), x509.DNSName("localhost"),
                x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.KeyUsage(True, True, True, True, False, False, False, False, False), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return der, pem


def service_name(type_id):
    """open62541 names a service by its request's type NodeId (ns=0): the request's name."""
    from asyncua import ua  # only its table of standard NodeId names

    ident = int(str(type_id).split("i=")[-1])
    return ua.ObjectIdNames.get(ident, str(type_id)).replace("_Encoding_DefaultBinary", "")


async def maybe(x):
    return await x if hasattr(x, "__await__") else x


async def server(spec):
    import o6

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = "urn:plcvault:open62541-test-server"
    # With a certificate open62541 offers None and the secure policies; "secure_only"
    # refuses None even for GetEndpoints.
    der, pem = self_signed(uri)
    kwargs = {"certificate": der, "privateKey": pem, "acceptAllCertificates": True,
              "secureOnly": spec.get("security") == "secure_only"}
    users = spec.get("users") or {}
    if users:
        class Logins(o6.AccessControl):
            def activateSession(self, endpoint, remoteCertificate, session, token):
                if users.get(getattr(token, "userName", None)) == bytes(getattr(token, "password", b"") or b"").decode(errors="replace"):
                    return None
                raise o6.StatusCodeError(o6.StatusCode("BadUserAccessDenied"))
        kwargs["accessControl"] = Logins(anonymous=False, username=True)
    srv = o6.Server(port=port, applicationUri=uri, **kwargs)

    @srv.onServiceNotification
    def record(n):
        if (n.type & 0xFFFF) == 1:  # begin
            print(json.dumps({"service": service_name(n.payload["service-type"])}), flush=True)

    srv.start()
    await maybe(srv.waitReady())
    objects = srv.objectsNode
    recipes = await maybe(srv.addObject("Recipes", objects, nodeId="ns=1;s=Recipes"))
    nodes = {}

    async def var(parent, path, name, value, dtype, writable):
        nid = f"ns=1;s={path}"
        await maybe(srv.addVariable(name, parent, value, nodeId=nid, dataType=dtype, writable=writable))
        nodes[nid] = dtype

    await var(recipes, "Recipes.Recipe1", "Recipe1", [o6.Int32(i * 10) for i in range(10)], o6.Int32, True)
    await var(recipes, "Recipes.Speed", "Speed", o6.Double(1.5), o6.Double, True)
    await var(recipes, "Recipes.Name", "Name", o6.String("Bottle 0.5l"), o6.String, True)
    await var(recipes, "Recipes.Setpoint", "Setpoint", o6.Float(80.25), o6.Float, False)
    line = await maybe(srv.addObject("Line", recipes, nodeId="ns=1;s=Recipes.Line"))
    await var(line, "Recipes.Line.Step", "Step", o6.UInt16(3), o6.UInt16, True)
    config = await maybe(srv.addObject("Config", objects, nodeId="ns=1;s=Config"))
    n = int(spec.get("nodes", 0))
    for g in range(0, n, 500):
        f = await maybe(srv.addObject(f"G{g // 500:03}", config, nodeId=f"ns=1;s=Config.G{g // 500:03}"))
        for i in range(g, min(n, g + 500)):
            await var(f, f"Config.C{i:05}", f"C{i:05}", o6.Int32(i * 7), o6.Int32, False)
    print(json.dumps({"ready": True, "port": port, "thumbprint": hashlib.sha256(der).hexdigest()}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        cmd = await reader.readline()
        if not cmd:
            break
        cmd = json.loads(cmd)
        dtype = nodes[cmd["set"]]
        v = cmd["value"]
        await maybe(srv.write(cmd["set"], [dtype(x) for x in v] if isinstance(v, list) else dtype(v)))
        print(json.dumps({"set": True}), flush=True)
    await maybe(srv.stop())


if __name__ == "__main__":
    if sys.argv[1:2] == ["server"]:
        asyncio.run(server(json.loads(sys.argv[2])))
    else:
        sys.exit("usage: open62541_peer.py server SPEC")

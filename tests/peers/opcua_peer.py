"""OPC UA test peer for the opcua adapter: the asyncua server (nobody here wrote it).

  opcua_peer.py server SPEC_JSON
      An asyncua server on 127.0.0.1 (a port the OS picks) with a made-up address space
      under Objects (namespace urn:plcvault:test, index 2):
        Recipes (ns=2;s=Recipes): Recipe1 Int32[10], Speed Double, Name String,
          Setpoint Float, Enabled Boolean, Broken (a value read that fails: its status is
          BadInternalError), and a Line folder with Step UInt16 (writable);
        Config (ns=2;s=Config): SPEC["nodes"] Int32 variables C00000... in folders of 500.
      SPEC: {"nodes": N, "security": "None" | "secure" (Basic256Sha256 and
             Aes128-Sha256-RsaOaep, Sign and SignAndEncrypt), "users": {"name": "pw"},
             "user_cert": true (also a user certificate, made in DIR, accepted as an
             X509 identity), "page": K (at most K references per node in one answer,
             the rest behind continuation points served by BrowseNext, which asyncua
             itself lacks; with "stuck": true every BrowseNext answers an empty page
             and a new point), "drop_after_browses": K (the K-th Browse closes the
             connection instead of answering, once), "user_role": "user" (logins are
             asyncua Users, held to the access levels on Write, not Admins),
             "read_only_for_user": [NodeId] (UserAccessLevel read only),
             "access_lies": [NodeId] (AccessLevel read only, UserAccessLevel read and
             write: a Write passes the client's check and is refused by the server),
             "drop_on_write": true (every Write closes the connection unanswered),
             "advertise": "opc.tcp://…" (the EndpointUrl its GetEndpoints answers name),
             "extra_namespace": true (another namespace before the test one, at 2),
             "dir": "FOLDER for the server's key and certificate"}.
      Prints {"ready": true, "port": P, "thumbprint": "sha256 hex of its certificate",
      "user_cert": PATH, "user_key": PATH} once the address space is built, then one
      JSON line per request it processed ({"service": "ReadRequest"}), the NodeIds of
      each Write ({"written": ["ns=2;s=Recipes.Speed"]}), and with "page"
      the continuation points still held after each Browse and BrowseNext
      ({"open_cps": N}).

  Values change only when the test says so: it writes to standard input lines of
  {"set": "ns=2;s=Recipes.Speed", "value": 2.5} and the server answers {"set": true}.
"""

import asyncio
import hashlib
import json
import os
import sys


async def server(spec):
    from asyncua import Server, ua
    from asyncua.crypto import cert_gen
    from asyncua.server import uaprocessor
    from asyncua.crypto.permission_rules import User, UserRole
    from asyncua.server.user_managers import UserManager
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from asyncua.server import internal_session
    from asyncua.ua.ua_binary import struct_from_binary

    original = uaprocessor.UaProcessor._process_message
    page = int(spec.get("page", 0))
    drop_after = int(spec.get("drop_after_browses", 0))
    browses = [0]
    pending = {}

    def cut(result):
        """Keeps `page` references in the answer, the rest behind a continuation point."""
        if page and len(result.References) > page:
            cp = os.urandom(8)
            pending[cp] = result.References[page:]
            result.References = result.References[:page]
            result.ContinuationPoint = cp

    async def recording(self, typeid, requesthdr, seqhdr, body):
        name = ua.ObjectIdNames.get(typeid.Identifier, str(typeid)).replace("_Encoding_DefaultBinary", "")
        print(json.dumps({"service": name}), flush=True)
        if name == "WriteRequest":
            params = struct_from_binary(ua.WriteParameters, body.copy())
            print(json.dumps({"written": [w.NodeId.to_string() for w in params.NodesToWrite]}), flush=True)
            if spec.get("drop_on_write"):
                self._transport.close()
                return True
        if name == "BrowseRequest":
            browses[0] += 1
            if browses[0] == drop_after:
                self._transport.close()
                return True
        if name == "BrowseNextRequest" and page:
            params = struct_from_binary(ua.BrowseNextParameters, body)
            results = []
            for cp in params.ContinuationPoints:
                r = ua.BrowseResult()
                refs = pending.pop(cp, None)
                if refs is None:
                    r.StatusCode = ua.StatusCode(ua.StatusCodes.BadContinuationPointInvalid)
                elif not params.ReleaseContinuationPoints and spec.get("stuck"):
                    # A hostile server: an empty page and a new point, forever.
                    cp = os.urandom(8)
                    pending[cp] = refs
                    r.ContinuationPoint = cp
                elif not params.ReleaseContinuationPoints:
                    r.References = refs
                    cut(r)
                results.append(r)
            response = ua.BrowseNextResponse()
            response.Parameters.Results = results
            self.send_response(requesthdr.RequestHandle, seqhdr, response)
            print(json.dumps({"open_cps": len(pending)}), flush=True)
            return True
        done = await original(self, typeid, requesthdr, seqhdr, body)
        if name == "BrowseRequest" and page:
            print(json.dumps({"open_cps": len(pending)}), flush=True)
        return done

    uaprocessor.UaProcessor._process_message = recording
    if page:
        plain_browse = internal_session.InternalSession.browse

        async def paged_browse(self, params):
            results = await plain_browse(self, params)
            for r in results:
                cut(r)
            return results

        internal_session.InternalSession.browse = paged_browse

    users = spec.get("users") or {}

    folder = spec["dir"]
    user_cert = user_key = None
    user_der = None
    if spec.get("user_cert"):
        user_key = os.path.join(folder, "user-key.pem")
        user_cert = os.path.join(folder, "user-cert.der")
        await cert_gen.setup_self_signed_certificate(
            __import__("pathlib").Path(user_key), __import__("pathlib").Path(user_cert),
            "urn:plcvault:test-user", "127.0.0.1", [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"countryName": "DE", "organizationName": "plcvault tests", "commonName": "backup user"},
        )
        user_der = open(user_cert, "rb").read()

    class Users(UserManager):
        def get_user(self, iserver, username=None, password=None, certificate=None):
            # Every user may write (drills onto writable nodes); the recording shows
            # whether plcvault ever tried.
            # asyncua passes the secure channel's client certificate here too; only
            # an X509 identity equal to the user certificate counts as one (anonymous
            # is not offered then, so no user name means an X509 identity).
            if user_der is not None and username is None:
                return User(role=UserRole.Admin) if certificate == user_der else None
            if not users or (username is not None and users.get(username) == password):
                return User(role=role)
            return None

    # An Admin passes every access check in asyncua; a User is held to AccessLevel and
    # UserAccessLevel on Write.
    role = UserRole.User if spec.get("user_role") == "user" else UserRole.Admin
    srv = Server(user_manager=Users())
    await srv.init()
    srv.set_endpoint("opc.tcp://127.0.0.1:0/plcvault/")
    srv.set_server_name("plcvault test server")
    await srv.set_build_info(
        "urn:plcvault:test-product", "plcvault tests", "asyncua test server", "2.1.0", "4711",
        __import__("datetime").datetime(2026, 11, 1, tzinfo=__import__("datetime").timezone.utc),
    )
    security = spec.get("security", "None")
    key, cert = os.path.join(folder, "server-key.pem"), os.path.join(folder, "server-cert.der")
    await cert_gen.setup_self_signed_certificate(
        __import__("pathlib").Path(key), __import__("pathlib").Path(cert),
        "urn:plcvault:test-server", "127.0.0.1",
        [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
        {"countryName": "DE", "organizationName": "plcvault tests", "commonName": "test server"},
    )
    await srv.load_certificate(cert)
    await srv.load_private_key(key)
    if security == "None":
        srv.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    else:
        # The secure policies only: a client cannot fall back to None.
        srv.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                                 ua.SecurityPolicyType.Basic256Sha256_Sign,
                                 ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt,
                                 ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign])
    tokens = [ua.UserNameIdentityToken] if users else [ua.AnonymousIdentityToken]
    if user_der is not None:
        tokens = [t for t in tokens if t is not ua.AnonymousIdentityToken] + [ua.X509IdentityToken]
    srv.set_identity_tokens(tokens)
    if spec.get("extra_namespace"):
        # Another project's namespace first: the test namespace moves to index 3.
        await srv.register_namespace("urn:plcvault:other-project")
    idx = await srv.register_namespace("urn:plcvault:test")
    objects = srv.nodes.objects
    recipes = await objects.add_folder(ua.NodeId("Recipes", idx), ua.QualifiedName("Recipes", idx))
    nodes = {}

    async def var(parent, name, value, vtype, writable=False):
        n = await parent.add_variable(ua.NodeId(f"Recipes.{name}", idx),
                                      ua.QualifiedName(name, idx), value, vtype)
        if writable:
            await n.set_writable()
        nodes[f"ns={idx};s=Recipes.{name}"] = (n, vtype)
        return n

    await var(recipes, "Recipe1", [i * 10 for i in range(10)], ua.VariantType.Int32, True)
    await var(recipes, "Speed", 1.5, ua.VariantType.Double, True)
    await var(recipes, "Name", "Bottle 0.5l", ua.VariantType.String, True)
    await var(recipes, "Setpoint", 80.25, ua.VariantType.Float)
    await var(recipes, "Enabled", True, ua.VariantType.Boolean)
    broken = await var(recipes, "Broken", 0, ua.VariantType.Int32)
    await broken.write_value(ua.DataValue(ua.Variant(0, ua.VariantType.Int32), StatusCode=ua.StatusCode(ua.StatusCodes.BadInternalError)))
    line = await recipes.add_folder(ua.NodeId("Recipes.Line", idx), ua.QualifiedName("Line", idx))
    step = await line.add_variable(ua.NodeId("Recipes.Line.Step", idx), ua.QualifiedName("Step", idx),
                                   3, ua.VariantType.UInt16)
    await step.set_writable()
    nodes[f"ns={idx};s=Recipes.Line.Step"] = (step, ua.VariantType.UInt16)
    config = await objects.add_folder(ua.NodeId("Config", idx), ua.QualifiedName("Config", idx))
    n = int(spec.get("nodes", 0))
    for g in range(0, n, 500):
        f = await config.add_folder(ua.NodeId(f"Config.G{g // 500:03}", idx),
                                    ua.QualifiedName(f"G{g // 500:03}", idx))
        for i in range(g, min(n, g + 500)):
            await f.add_variable(ua.NodeId(f"Config.C{i:05}", idx), ua.QualifiedName(f"C{i:05}", idx),
                                 i * 7, ua.VariantType.Int32)
    if spec.get("advertise"):
        # A server behind NAT (or a hostile one) names another address in its endpoints.
        plain_endpoints = srv.iserver.get_endpoints

        async def advertised(params=None, sockname=None):
            eps = await plain_endpoints(params, sockname)
            for e in eps:
                e.EndpointUrl = spec["advertise"]
            return eps

        srv.iserver.get_endpoints = advertised
    levels = ua.AccessLevel
    for nid in spec.get("read_only_for_user", []):
        await nodes[nid][0].write_attribute(ua.AttributeIds.UserAccessLevel, ua.DataValue(
            ua.Variant(1 << levels.CurrentRead, ua.VariantType.Byte)))
    for nid in spec.get("access_lies", []):
        await nodes[nid][0].write_attribute(ua.AttributeIds.AccessLevel, ua.DataValue(
            ua.Variant(1 << levels.CurrentRead, ua.VariantType.Byte)))
        await nodes[nid][0].write_attribute(ua.AttributeIds.UserAccessLevel, ua.DataValue(
            ua.Variant((1 << levels.CurrentRead) | (1 << levels.CurrentWrite), ua.VariantType.Byte)))
    async with srv:
        port = srv.bserver._server.sockets[0].getsockname()[1]
        der = open(cert, "rb").read()
        print(json.dumps({"ready": True, "port": port, "namespace": idx,
                          "thumbprint": hashlib.sha256(der).hexdigest(),
                          "user_cert": user_cert, "user_key": user_key}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            cmd = json.loads(line)
            node, vtype = nodes[cmd["set"]]
            await node.write_value(ua.Variant(cmd["value"], vtype))
            print(json.dumps({"set": True}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server(json.loads(sys.argv[2])))
    else:
        sys.exit("usage: opcua_peer.py server SPEC")

#!/usr/bin/env python3
"""The baseline for the OPC UA snapshot benchmark: a plain asyncua client script that
browses a root recursively (children by hierarchical references) and reads each
variable's data type, access level and value, as a script around asyncua's Node API
would (one call per node).

usage: opcua_client.py URL ROOT_NODEID
prints one JSON line: {"nodes": N, "variables": N, "seconds": S}
"""
import asyncio
import json
import sys
import time

from asyncua import Client, ua


async def main(url, root):
    t0 = time.monotonic()
    nodes = variables = 0
    async with Client(url) as client:
        queue = [client.get_node(root)]
        while queue:
            node = queue.pop()
            nodes += 1
            if await node.read_node_class() == ua.NodeClass.Variable:
                await node.read_attributes([ua.AttributeIds.DataType, ua.AttributeIds.AccessLevel,
                                            ua.AttributeIds.Value])
                variables += 1
            queue.extend(await node.get_children())
    print(json.dumps({"nodes": nodes, "variables": variables, "seconds": time.monotonic() - t0}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

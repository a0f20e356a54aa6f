#!/usr/bin/env python3
"""A pymodbus TCP server as a real, independent peer for plcvault's tests.

usage: pymodbus_server.py SPEC_JSON

SPEC_JSON: {"unit": 1, "size": 3000, "seed": 7, "identity": true, "revision": "3.16"}
Serves `size` holding registers, input registers, coils and discrete inputs with
deterministic values (the same formula as `expected_values` below, which the Rust tests
re-implement), binds 127.0.0.1:0, prints one JSON line {"port": N} once listening, then one
JSON line per request it receives: {"fc": F, "unit": U, "address": A, "count": C}.
"""
import asyncio
import json
import sys

from pymodbus import ModbusDeviceIdentification
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def expected_values(size, seed):
    """holding[i], input[i], coil[i], discrete[i]."""
    holding = [(i * 7 + seed) % 65536 for i in range(size)]
    inputs = [(i * 13 + seed * 3) % 65536 for i in range(size)]
    coils = [((i + seed) % 3) == 0 for i in range(size)]
    discrete = [((i + seed) % 2) == 0 for i in range(size)]
    return holding, inputs, coils, discrete


def trace(sending, pdu):
    if not sending:
        record = {
            "fc": pdu.function_code,
            "unit": pdu.dev_id,
            "address": getattr(pdu, "address", 0),
            "count": getattr(pdu, "count", 0),
        }
        if pdu.function_code == 0x2B:
            record["mei"] = getattr(pdu, "sub_function_code", 14)
        print(json.dumps(record), flush=True)
    return pdu


async def main():
    spec = json.loads(sys.argv[1])
    size, seed, unit = spec.get("size", 3000), spec.get("seed", 7), spec.get("unit", 1)
    holding, inputs, coils, discrete = expected_values(size, seed)
    identity = None
    if spec.get("identity", True):
        identity = ModbusDeviceIdentification(
            info_name={
                "VendorName": "pymodbus peer",
                "ProductCode": "PM-316",
                "MajorMinorRevision": spec.get("revision", "3.16"),
                "ProductName": "pymodbus test server",
            }
        )
    device = SimDevice(
        id=unit,
        simdata=(
            [SimData(address=0, values=coils, datatype=DataType.BITS)],
            [SimData(address=0, values=discrete, datatype=DataType.BITS)],
            [SimData(address=0, values=holding, datatype=DataType.REGISTERS)],
            [SimData(address=0, values=inputs, datatype=DataType.REGISTERS)],
        ),
        identity=identity,
    )
    server = ModbusTcpServer(
        device, address=("127.0.0.1", 0), identity=identity, trace_pdu=trace
    )
    await server.serve_forever(background=True)
    port = server.transport.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

"""Subprocess of ``test_crash``: run the embedded network and commit transactions until killed.

Usage: ``python -m tests.network.engine.crash_worker HOME``

Prints ``ready`` once the network is open, then the id of every transaction
that committed as VALID, one per line, written and flushed only after
``submit`` returned -- that is, after the SQLite commit of its block
returned. Those lines are what "reported committed" means in the test.
Several clients submit at once, so blocks hold several transactions, and a
shared counter makes some of them MVCC conflicts (invalid, never printed).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from fabric_chaincode_python.fabric_shim.response import error, success

from crypto.identity import IdentityKind
from network.engine.errors import CommitError
from network.engine.network import EmbeddedNetwork

CHAINCODE = "crashcc"
CLIENTS = 8
COUNTER = "shared-counter"


class CrashChaincode:
    """``put(key, value)`` writes one key; ``incr(key)`` reads and rewrites a counter."""

    @staticmethod
    async def init(stub: Any) -> Any:
        return success(b"")

    @staticmethod
    async def invoke(stub: Any) -> Any:
        function, params = stub.get_function_and_parameters()
        if function == "put":
            await stub.put_state(params[0], params[1].encode())
            return success(b"")
        if function == "incr":
            current = await stub.get_state(params[0])
            value = str(int(current or b"0") + 1).encode()
            await stub.put_state(params[0], value)
            return success(value)
        return error(f"unknown function {function}")


async def main(home: Path) -> None:
    network = EmbeddedNetwork.open(home, chaincodes={CHAINCODE: CrashChaincode})
    officers = network.consortium.identities(kind=IdentityKind.OFFICER)
    print("ready", flush=True)
    pid = os.getpid()

    async def client(number: int) -> None:
        gateway = network.gateway(officers[number % len(officers)])
        sequence = 0
        while True:
            sequence += 1
            if sequence % 4 == 0:
                function, args = "incr", [COUNTER]
            else:
                function, args = "put", [f"k-{pid}-{number}-{sequence}", f"value {sequence}"]
            try:
                result = await gateway.submit(CHAINCODE, function, args)
            except CommitError:
                continue  # an MVCC conflict on the counter: committed, but not VALID
            sys.stdout.write(result.tx_id + "\n")
            sys.stdout.flush()

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

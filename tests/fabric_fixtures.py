"""Location of the Hyperledger Fabric 2.5.16 fixture ledger used as the fidelity oracle.

The blocks, certificates and ``expected.json`` are a verbatim copy of the
project's shared ``fabric-fixtures`` folder (see its README.md), kept in the
repository so a clean clone tests without anything beside it.
"""

from pathlib import Path

FABRIC_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "fabric"

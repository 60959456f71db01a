"""``python -m chaincode``: serve the AccessLedger contract as Fabric chaincode-as-a-service.

See :mod:`chaincode.server` for the environment variables it reads.
"""

import sys

from chaincode.server import main

if __name__ == "__main__":
    sys.exit(main())

"""AccessLedger's profile of HTTP Message Signatures: the fixed choices, in one place.

RFC 9421 leaves an application to decide what must be signed, how keys are
named and how certificates travel. AccessLedger's answers (documented for
integrators in ``docs/authentication.md``):

* algorithm ``ecdsa-p256-sha256`` only, with the caller's Fabric identity key;
* covered components at least ``"@method" "@path" "@query" "content-digest"``
  (the SDK adds ``"content-type"`` when the request has one). ``@path`` and
  ``@query`` rather than ``@target-uri``: TLS terminators and load balancers
  rewrite the scheme and authority, and a consortium gateway is identified by
  the ledger it writes to, not its host name; a deployment that wants the
  host covered adds ``"@authority"`` to its required components;
* metadata parameters ``created``, ``nonce``, ``keyid``, ``alg`` and
  ``tag="accessledger"`` are all required; the tag stops a signature made
  with the same key for some other protocol from being accepted here;
* ``keyid`` is the lowercase hex SHA-256 of the caller's DER certificate, and
  the certificate travels in the ``AccessLedger-Certificate`` header as an
  sf-binary (``:base64(DER):``). The key id is inside the signed parameters,
  so swapping the certificate breaks the signature. Without the header, the
  verifier looks the key id up among the certificates it already knows;
* the signature label is ``accessledger``.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509

from crypto.certificates import certificate_fingerprint as fingerprint_of

#: The only signature algorithm accepted (RFC 9421 section 3.3.4).
ALGORITHM = "ecdsa-p256-sha256"
#: Label of the AccessLedger signature in ``Signature-Input`` and ``Signature``.
LABEL = "accessledger"
#: Required value of the ``tag`` signature parameter.
TAG = "accessledger"
#: Header carrying the caller's certificate (sf-binary of the DER encoding).
CERTIFICATE_HEADER = "AccessLedger-Certificate"
#: Components every request must cover, in the order the SDK signs them.
REQUIRED_COMPONENTS: tuple[str, ...] = ("@method", "@path", "@query", "content-digest")
#: Metadata parameters every signature must carry.
REQUIRED_PARAMETERS: tuple[str, ...] = ("created", "nonce", "keyid", "alg", "tag")
#: How far ``created`` may be from the verifier's clock, either way.
DEFAULT_MAX_SKEW = timedelta(seconds=300)
#: Nonces: 16-128 characters of unpadded base64url, the same grammar the
#: chaincode uses for the nonces of signed documents.
NONCE_PATTERN = r"[A-Za-z0-9_\-]{16,128}"
#: Key ids: lowercase hex SHA-256.
KEYID_PATTERN = r"[0-9a-f]{64}"


def certificate_fingerprint(certificate: x509.Certificate) -> str:
    """The key id of a certificate: :func:`crypto.certificates.certificate_fingerprint`."""
    return fingerprint_of(certificate)

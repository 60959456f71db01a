"""Fabric blocks: header hash, data hash, metadata, orderer signatures, block streams.

Everything here reproduces Hyperledger Fabric byte for byte, and the test
suite checks it against blocks written by Fabric 2.5:

* ``data_hash`` is SHA-256 over the concatenated envelope bytes
  (``protoutil.ComputeBlockDataHash``);
* the header hash is SHA-256 over the ASN.1 DER encoding of
  ``SEQUENCE { INTEGER number, OCTET STRING previous_hash, OCTET STRING data_hash }``
  (``protoutil.BlockHeaderBytes``), and block *n+1*'s ``previous_hash`` is
  block *n*'s header hash;
* the orderer signs ``metadata.value || signature_header || header DER`` where
  ``metadata.value`` is a serialized ``OrdererBlockMetadata`` carrying the last
  config index (Fabric 2.x ``BlockWriter.addBlockSignature``);
* a block stream is each block's bytes preceded by its length as an unsigned
  protobuf varint (Go ``protodelim``, Java ``writeDelimitedTo``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from fabric_protos.common import common_pb2 as _common_pb2
from google.protobuf.message import DecodeError

from crypto.signing import Signer
from network.fabric.errors import BlockFormatError, BlockIntegrityError
from network.fabric.transactions import SignedData

# The generated protobuf modules ship without type stubs; use them untyped.
common_pb2: Any = _common_pb2

_Index: Any = common_pb2.BlockMetadataIndex

#: Metadata slots, as ``common.BlockMetadataIndex``.
SIGNATURES: int = _Index.Value("SIGNATURES")
LAST_CONFIG: int = _Index.Value("LAST_CONFIG")
TRANSACTIONS_FILTER: int = _Index.Value("TRANSACTIONS_FILTER")
ORDERER: int = _Index.Value("ORDERER")
COMMIT_HASH: int = _Index.Value("COMMIT_HASH")
#: Fabric allocates one slot per ``BlockMetadataIndex`` value.
METADATA_SLOTS = len(_Index.keys())

#: Fabric's transaction nonces are 24 random bytes.
NONCE_SIZE = 24


# --- ASN.1 DER -----------------------------------------------------------------


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der_integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("block numbers are unsigned")
    # Minimal two's complement: one extra byte so a set high bit does not read
    # as negative; zero is the single byte 00.
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_length(len(body)) + body


def _der_octet_string(value: bytes) -> bytes:
    return b"\x04" + _der_length(len(value)) + value


def block_header_bytes(header: Any) -> bytes:
    """The DER bytes Fabric hashes (and the orderer signs) for a ``BlockHeader``."""
    body = (
        _der_integer(int(header.number))
        + _der_octet_string(bytes(header.previous_hash))
        + _der_octet_string(bytes(header.data_hash))
    )
    return b"\x30" + _der_length(len(body)) + body


def block_header_hash(header: Any) -> bytes:
    """SHA-256 of :func:`block_header_bytes`: the block's hash, chained by the next block."""
    return hashlib.sha256(block_header_bytes(header)).digest()


def compute_data_hash(data: Any) -> bytes:
    """SHA-256 over the concatenated envelopes (``BlockData`` or a sequence of bytes)."""
    entries: Iterable[bytes] = data.data if hasattr(data, "data") else data
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(entry)
    return digest.digest()


# --- construction -------------------------------------------------------------


def new_block(number: int, previous_hash: bytes, envelopes: Sequence[bytes]) -> Any:
    """A ``common.Block`` holding ``envelopes``, with its data hash and empty metadata slots."""
    block = common_pb2.Block()
    block.header.number = number
    block.header.previous_hash = previous_hash
    block.data.data.extend(envelopes)
    block.header.data_hash = compute_data_hash(envelopes)
    block.metadata.metadata.extend([b""] * METADATA_SLOTS)
    return block


def _ensure_slots(block: Any) -> None:
    missing = METADATA_SLOTS - len(block.metadata.metadata)
    if missing > 0:
        block.metadata.metadata.extend([b""] * missing)


def _metadata_slot(block: Any, index: int) -> bytes:
    slots = block.metadata.metadata
    return bytes(slots[index]) if index < len(slots) else b""


def _decode(message: Any, data: bytes, what: str) -> Any:
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise BlockFormatError(f"cannot decode {what}: {exc}") from exc
    return message


# --- metadata -----------------------------------------------------------------


def signatures_metadata(block: Any) -> Any:
    """The ``common.Metadata`` in the SIGNATURES slot (empty message if the slot is)."""
    return _decode(common_pb2.Metadata(), _metadata_slot(block, SIGNATURES), "SIGNATURES metadata")


def last_config_index(block: Any) -> int:
    """The index of the last config block, as the orderer recorded it.

    Fabric 2.x keeps it in the SIGNATURES slot's ``OrdererBlockMetadata``; the
    legacy LAST_CONFIG slot is the fallback for blocks written by 1.x orderers.
    """
    sig_md = signatures_metadata(block)
    if sig_md.value:
        obm = _decode(common_pb2.OrdererBlockMetadata(), sig_md.value, "OrdererBlockMetadata")
        if obm.HasField("last_config"):
            return int(obm.last_config.index)
    legacy = _metadata_slot(block, LAST_CONFIG)
    if legacy:
        md = _decode(common_pb2.Metadata(), legacy, "LAST_CONFIG metadata")
        lc = _decode(common_pb2.LastConfig(), md.value, "LastConfig")
        return int(lc.index)
    raise BlockFormatError(f"block {block.header.number} records no last config index")


def transactions_filter(block: Any) -> list[int]:
    """The per-transaction ``TxValidationCode`` bytes (empty until a peer validated)."""
    return list(_metadata_slot(block, TRANSACTIONS_FILTER))


def set_transactions_filter(block: Any, codes: Sequence[int]) -> None:
    """Record validation codes, one byte per transaction, as a Fabric peer does."""
    if len(codes) != len(block.data.data):
        raise ValueError("need exactly one validation code per transaction")
    _ensure_slots(block)
    block.metadata.metadata[TRANSACTIONS_FILTER] = bytes(codes)


def commit_hash(block: Any) -> bytes | None:
    """The committing peer's 32-byte commit hash (COMMIT_HASH slot), if recorded."""
    raw = _metadata_slot(block, COMMIT_HASH)
    if not raw:
        return None
    return bytes(_decode(common_pb2.Metadata(), raw, "COMMIT_HASH metadata").value)


class CommittedWrite(Protocol):
    """A state write as the commit hash sees it (``validator.StateWrite`` is one)."""

    @property
    def namespace(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def version(self) -> tuple[int, int]: ...


def _field(number: int, data: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(data)) + data


def _height_bytes(version: tuple[int, int]) -> bytes:
    # Fabric's EncodeOrderPreservingVarUint64 for block and tx number.
    out = b""
    for number in version:
        body = number.to_bytes(8, "big").lstrip(b"\x00")
        out += bytes([len(body)]) + body
    return out


def _update_batch_bytes(writes: Iterable[CommittedWrite]) -> bytes:
    """Fabric's ``deterministicBytesForPubAndHashUpdates`` over one block's writes.

    The message is the peer-internal ``txmgr.Updates`` (repeated ``KVWrite``:
    1 namespace, 2 collection, 3 key, 4 isDelete, 5 value, 6 version_bytes),
    which is not part of fabric-protos; we encode its six fields directly.
    Namespaces and collections are sorted, and each is named only on its
    first entry; later writes to a key replace earlier ones.
    """
    latest: dict[tuple[str, str, bytes], CommittedWrite] = {}
    for w in writes:
        namespace, _, collection = w.namespace.partition("$$h")
        key = bytes.fromhex(w.key) if collection else w.key.encode()
        latest[(namespace, collection, key)] = w
    out = b""
    previous_ns = previous_coll = None
    for namespace, collection, key in sorted(
        latest, key=lambda k: (k[0].encode(), k[1].encode(), k[2])
    ):
        w = latest[(namespace, collection, key)]
        entry = b""
        if namespace != previous_ns:
            entry += _field(1, namespace.encode())
            previous_coll = None
        if collection and collection != previous_coll:
            entry += _field(2, collection.encode())
        entry += _field(3, key) if key else b""
        if w.value is None:
            entry += b"\x20\x01"
        elif w.value:
            entry += _field(5, w.value)
        entry += _field(6, _height_bytes(w.version))
        out += _field(1, entry)
        previous_ns, previous_coll = namespace, collection
    return out


def compute_commit_hash(
    previous: bytes, transactions_filter: bytes, writes: Iterable[CommittedWrite]
) -> bytes:
    """The commit hash a Fabric peer chains through COMMIT_HASH.

    SHA-256 over ``varint(len(filter)) || filter || update-batch bytes ||
    previous commit hash`` (``kvLedger.addBlockCommitHash``); ``writes`` are the
    valid transactions' writes of the block, ``previous`` is empty for block 1.
    """
    data = _encode_varint(len(transactions_filter)) + transactions_filter
    return hashlib.sha256(data + _update_batch_bytes(writes) + previous).digest()


def set_commit_hash(block: Any, value: bytes) -> None:
    """Store a commit hash the way Fabric does (a ``common.Metadata`` whose value it is)."""
    _ensure_slots(block)
    block.metadata.metadata[COMMIT_HASH] = common_pb2.Metadata(value=value).SerializeToString()


# --- orderer signatures -------------------------------------------------------


def sign_block(
    block: Any,
    *,
    signer: Signer,
    creator: bytes,
    last_config: int,
    consenter_metadata: bytes = b"",
    nonce: bytes | None = None,
) -> None:
    """Sign ``block`` as a Fabric 2.x orderer does, filling SIGNATURES and LAST_CONFIG.

    ``creator`` is the orderer's serialized ``SerializedIdentity`` and
    ``signer`` its signing function. The signature covers
    ``OrdererBlockMetadata || SignatureHeader || header DER``.
    """
    _ensure_slots(block)
    value = common_pb2.OrdererBlockMetadata(
        last_config=common_pb2.LastConfig(index=last_config),
        consenter_metadata=consenter_metadata,
    ).SerializeToString()
    signature_header = common_pb2.SignatureHeader(
        creator=creator, nonce=os.urandom(NONCE_SIZE) if nonce is None else nonce
    ).SerializeToString()
    signature = signer(value + signature_header + block_header_bytes(block.header))
    block.metadata.metadata[SIGNATURES] = common_pb2.Metadata(
        value=value,
        signatures=[
            common_pb2.MetadataSignature(signature_header=signature_header, signature=signature)
        ],
    ).SerializeToString()
    # Fabric 2.x still fills the legacy slot, unsigned, for old clients.
    block.metadata.metadata[LAST_CONFIG] = common_pb2.Metadata(
        value=common_pb2.LastConfig(index=last_config).SerializeToString()
    ).SerializeToString()


def block_signatures(block: Any) -> list[SignedData]:
    """The orderer signatures on ``block`` as :class:`SignedData` (empty for genesis blocks).

    Each covers ``metadata.value || signature_header || header DER``; the
    identity is the signature header's creator. Raises
    :class:`BlockFormatError` for signatures that name their signer only by a
    consenter identifier (SmartBFT), which needs the consenter set to resolve.
    """
    md = signatures_metadata(block)
    header = block_header_bytes(block.header)
    out = []
    for ms in md.signatures:
        if not ms.signature_header:
            raise BlockFormatError(
                f"block {block.header.number}: signature identified by consenter id is unsupported"
            )
        shdr = _decode(common_pb2.SignatureHeader(), ms.signature_header, "signature header")
        out.append(
            SignedData(
                identity=bytes(shdr.creator),
                data=bytes(md.value) + bytes(ms.signature_header) + header,
                signature=bytes(ms.signature),
            )
        )
    return out


# --- integrity ----------------------------------------------------------------


def verify_data_hash(block: Any) -> None:
    """Raise :class:`BlockIntegrityError` unless ``header.data_hash`` matches the data."""
    if compute_data_hash(block.data) != bytes(block.header.data_hash):
        number = int(block.header.number)
        raise BlockIntegrityError(
            f"block {number}: data hash does not match the transactions", block_number=number
        )


def verify_chain_link(previous_header: Any, block: Any) -> None:
    """Raise unless ``block`` directly follows the block whose header is ``previous_header``."""
    number = int(block.header.number)
    if number != int(previous_header.number) + 1:
        raise BlockIntegrityError(
            f"block {number} follows block {previous_header.number}", block_number=number
        )
    if bytes(block.header.previous_hash) != block_header_hash(previous_header):
        raise BlockIntegrityError(
            f"block {number}: previous_hash is not the hash of block {previous_header.number}",
            block_number=number,
        )


def verify_chain(blocks: Iterable[Any]) -> int:
    """Check data hashes and the hash chain of consecutive blocks; return how many.

    The first block must be block 0 with an empty ``previous_hash``.
    """
    previous = None
    count = 0
    for block in blocks:
        if previous is None:
            if int(block.header.number) != 0 or block.header.previous_hash:
                raise BlockIntegrityError(
                    f"chain starts at block {block.header.number}, not a genesis block",
                    block_number=int(block.header.number),
                )
        else:
            verify_chain_link(previous, block)
        verify_data_hash(block)
        previous = block.header
        count += 1
    return count


# --- serialisation and streams ------------------------------------------------


def parse_block(data: bytes) -> Any:
    """Decode the bytes of one ``common.Block``."""
    block = _decode(common_pb2.Block(), data, "block")
    if not block.HasField("header"):
        raise BlockFormatError("block has no header")
    return block


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(stream: BinaryIO) -> int | None:
    result = shift = 0
    for position in range(10):
        byte = stream.read(1)
        if not byte:
            if position == 0:
                return None
            raise BlockFormatError("block stream ends inside a length prefix")
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
    raise BlockFormatError("block stream length prefix is longer than 10 bytes")


def iter_delimited(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the raw messages of a varint-length-delimited stream."""
    index = 0
    while (length := _read_varint(stream)) is not None:
        data = stream.read(length)
        if len(data) != length:
            raise BlockFormatError(
                f"block stream truncated in message {index}: {len(data)} of {length} bytes"
            )
        yield data
        index += 1


def read_block_stream(source: str | os.PathLike[str] | BinaryIO) -> Iterator[Any]:
    """Yield the blocks of a length-delimited block file (or open binary stream)."""
    if isinstance(source, str | os.PathLike):
        with Path(source).open("rb") as stream:
            yield from (parse_block(raw) for raw in iter_delimited(stream))
    else:
        yield from (parse_block(raw) for raw in iter_delimited(source))


def encode_delimited(block: Any) -> bytes:
    """One block as it appears in a block stream: varint length, then its bytes."""
    raw = block if isinstance(block, bytes) else block.SerializeToString()
    return _encode_varint(len(raw)) + raw


def write_block_stream(target: str | os.PathLike[str] | BinaryIO, blocks: Iterable[Any]) -> int:
    """Write blocks (messages or their raw bytes) as a length-delimited stream; return count."""
    if isinstance(target, str | os.PathLike):
        with Path(target).open("wb") as stream:
            return write_block_stream(stream, blocks)
    count = 0
    for block in blocks:
        target.write(encode_delimited(block))
        count += 1
    return count

"""Rich gRPC error details (``google.rpc.Status``) carrying Fabric Gateway ``ErrorDetail`` messages.

A Fabric peer's gateway reports a failed call as a gRPC status whose details
(``status.WithDetails`` in Go) hold one ``gateway.ErrorDetail`` per endorser
or orderer that failed. gRPC carries those details in the
``grpc-status-details-bin`` trailer as a serialized ``google.rpc.Status``.

The ``google.rpc`` protos (googleapis-common-protos) are not a dependency, so
this module declares a wire-compatible ``Status`` in a *private* descriptor
pool (never the default one, so it cannot clash if the real package is
installed later). Its ``details`` field is declared as ``repeated bytes``:
an embedded message and a bytes field share the length-delimited wire type,
so each element is exactly a serialized ``google.protobuf.Any``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fabric_protos.gateway import gateway_pb2 as _gateway_pb2
from google.protobuf import any_pb2 as _any_pb2
from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor_pool as _descriptor_pool
from google.protobuf import message_factory as _message_factory

gateway_pb2: Any = _gateway_pb2
any_pb2: Any = _any_pb2
descriptor_pb2: Any = _descriptor_pb2

#: The trailer gRPC uses for a serialized ``google.rpc.Status``.
STATUS_DETAILS_KEY = "grpc-status-details-bin"
_ERROR_DETAIL_TYPE = "gateway.ErrorDetail"
_TYPE_URL_PREFIX = "type.googleapis.com/"


def _status_class() -> Any:
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="accessledger/google_rpc_status.proto", package="google.rpc", syntax="proto3"
    )
    message = file.message_type.add(name="Status")
    message.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    message.field.add(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    message.field.add(name="details", number=3, type=field.TYPE_BYTES, label=field.LABEL_REPEATED)
    pool = _descriptor_pool.DescriptorPool()
    pool.Add(file)
    return _message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


_Status: Any = _status_class()


@dataclass(frozen=True)
class ErrorDetail:
    """One failing node of a gateway call: its address, MSP ID and error message."""

    address: str
    msp_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.address} ({self.msp_id}): {self.message}"


def encode_status(code: int, message: str, details: Sequence[ErrorDetail] = ()) -> bytes:
    """A serialized ``google.rpc.Status`` with ``details`` packed as ``gateway.ErrorDetail``."""
    packed = []
    for detail in details:
        value = gateway_pb2.ErrorDetail(
            address=detail.address, msp_id=detail.msp_id, message=detail.message
        )
        packed.append(
            any_pb2.Any(
                type_url=_TYPE_URL_PREFIX + _ERROR_DETAIL_TYPE, value=value.SerializeToString()
            ).SerializeToString()
        )
    data: bytes = _Status(code=code, message=message, details=packed).SerializeToString()
    return data


def decode_details(
    trailing_metadata: Iterable[tuple[str, str | bytes]] | None,
) -> tuple[ErrorDetail, ...]:
    """The ``gateway.ErrorDetail`` entries of a call's trailers (other detail types are skipped).

    Malformed details are ignored rather than raised: they only enrich an
    error that is being reported anyway.
    """
    for key, value in trailing_metadata or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = _Status.FromString(value)
            found = []
            for raw in status.details:
                packed = any_pb2.Any.FromString(raw)
                if packed.type_url.rsplit("/", 1)[-1] != _ERROR_DETAIL_TYPE:
                    continue
                detail = gateway_pb2.ErrorDetail.FromString(packed.value)
                found.append(ErrorDetail(detail.address, detail.msp_id, detail.message))
        except Exception:  # noqa: S112 -- protobuf DecodeError; details are best effort
            continue
        return tuple(found)
    return ()

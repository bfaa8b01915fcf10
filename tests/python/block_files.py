"""Block files written without bpr_ops: the `SerializedBlock` message by
Google's `protobuf` package (a message class built from a descriptor at run
time), the marker and the little-endian size by this file, the records by
thriftpy2 from the IDL in thrift/. The reader under test is judged against
these, never against its own writer alone.
"""

from __future__ import annotations

import gzip
import struct

import thriftpy2
from google.protobuf import descriptor_pb2, descriptor_pool
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.transport.memory import TMemoryBuffer

from thrift_check import IDL

MARKER = bytes([0x29, 0xD8, 0xD5, 0x06, 0x58, 0xCD, 0x4C, 0x29, 0xB2, 0xBC, 0x57, 0x99, 0x21, 0x71, 0xBD, 0xFF])
CLASS = "com.twitter.ml.api.DataRecord"


def _block_class():
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="bpr_ops_test_block.proto", package="bpr_ops_test", syntax="proto2")
    m = fdp.message_type.add(name="SerializedBlock")
    m.field.add(name="version", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    m.field.add(name="proto_class_name", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="proto_blobs", number=3, type=F.TYPE_BYTES, label=F.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName("bpr_ops_test.SerializedBlock")
    try:
        from google.protobuf.message_factory import GetMessageClass

        return GetMessageClass(desc)
    except ImportError:  # protobuf < 4.21
        from google.protobuf.message_factory import MessageFactory

        return MessageFactory(pool).GetPrototype(desc)


SerializedBlock = _block_class()


def data_record(i: int) -> bytes:
    """Record i: continuous a=i, b=i/2 (odd i only), label i%2, weight 1+i%3,
    binary 'flag' on even i, discrete d=i*7, string s='v{i}'; serialized by thriftpy2."""
    from bpr_ops import feature_id

    rec = IDL.data.DataRecord(
        continuousFeatures={feature_id("a"): float(i), feature_id("label"): float(i % 2),
                            feature_id("weight"): float(1 + i % 3)},
        discreteFeatures={feature_id("d"): i * 7},
        stringFeatures={feature_id("s"): f"v{i}"},
    )
    if i % 2:
        rec.continuousFeatures[feature_id("b")] = i / 2
    if i % 2 == 0:
        rec.binaryFeatures = {feature_id("flag")}
    buf = TMemoryBuffer()
    rec.write(TBinaryProtocol(buf))
    return buf.getvalue()


def block(records, version=1, class_name=CLASS) -> bytes:
    msg = SerializedBlock()
    if version is not None:
        msg.version = version
    if class_name is not None:
        msg.proto_class_name = class_name
    msg.proto_blobs.extend(records)
    body = msg.SerializeToString()
    return MARKER + struct.pack("<i", len(body)) + body


def file_bytes(records, per_block: int) -> bytes:
    return b"".join(block(records[i : i + per_block]) for i in range(0, len(records), per_block))


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def parse_file(data: bytes) -> list[bytes]:
    """The records of a block file, parsed with protobuf (for checking our writer)."""
    out, at = [], 0
    while at < len(data):
        assert data[at : at + 16] == MARKER, at
        (size,) = struct.unpack("<i", data[at + 16 : at + 20])
        msg = SerializedBlock()
        msg.ParseFromString(data[at + 20 : at + 20 + size])
        assert msg.version == 1 and msg.proto_class_name == CLASS
        out.extend(msg.proto_blobs)
        at += 20 + size
    return out


__all__ = ["MARKER", "SerializedBlock", "block", "data_record", "file_bytes", "gz", "parse_file", "thriftpy2"]


def dataset_ops(ds) -> set[str]:
    """The op types in a tf.data.Dataset's graph: which source reads it."""
    from tensorflow.compat.v1 import GraphDef

    g = GraphDef()
    g.ParseFromString(ds._as_serialized_graph().numpy())
    return {n.op for n in g.node}

#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# eventstore_demo.py - a minimal eventfold.EventStore client with Debian's
# python3-grpcio: append one event to a new stream, then read the log.
#
#   protoc -Iproto --python_out=/tmp proto/eventfold.proto
#   PYTHONPATH=/tmp /usr/bin/python3 examples/python/eventstore_demo.py [HOST:PORT]
import sys
import uuid

import grpc
import eventfold_pb2 as pb

target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:2113"
ch = grpc.insecure_channel(target)
append = ch.unary_unary(
    "/eventfold.EventStore/Append",
    request_serializer=pb.AppendRequest.SerializeToString,
    response_deserializer=pb.AppendResponse.FromString)
read_all = ch.unary_unary(
    "/eventfold.EventStore/ReadAll",
    request_serializer=pb.ReadAllRequest.SerializeToString,
    response_deserializer=pb.ReadAllResponse.FromString)

stream = str(uuid.uuid4())
r = append(pb.AppendRequest(
    stream_id=stream,
    expected_version=pb.ExpectedVersion(no_stream=pb.Empty()),
    events=[pb.ProposedEvent(event_id=str(uuid.uuid4()), event_type="Greeted",
                             payload=b'{"hello":"grpc"}')]))
print("appended at global position", r.last_global_position)
for e in read_all(pb.ReadAllRequest(from_position=0, max_count=100)).events:
    print(e.global_position, e.stream_id, e.stream_version, e.event_type,
          e.payload.decode(errors="replace"))

#!/usr/bin/env python3
"""Create and start a task with containerd's runc runtime options, as ctr would.

usage: create_task.py ADDRESS NAMESPACE CONTAINER_ID BINARY_NAME

ctr 1.6 refuses `--runc-binary` with any runtime but io.containerd.runc.v2, so
this sends what ctr would: Tasks.Create with an Any of type
containerd.runc.v1.Options carrying binary_name, then Tasks.Start, for a
container made with `ctr c create`. Prints the task's pid.

Needs the PyPI packages `containerd` (generated API bindings) and `grpcio`.
Exits 0 on success, 1 with containerd's error on stderr otherwise.
"""
import os, sys
# The generated bindings predate current protobuf's C++/upb backend.
os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
import grpc
from google.protobuf import any_pb2
from containerd.services.containers.v1 import containers_pb2, containers_pb2_grpc
from containerd.services.snapshots.v1 import snapshots_pb2, snapshots_pb2_grpc
from containerd.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc

address, ns, cid, binary = sys.argv[1:5]
md = [("containerd-namespace", ns)]
name = binary.encode()
assert len(name) < 128
# containerd.runc.v1.Options { ... string binary_name = 6; ... }
options = any_pb2.Any(type_url="containerd.runc.v1.Options", value=bytes([6 << 3 | 2, len(name)]) + name)
try:
    with grpc.insecure_channel("unix:" + address) as ch:
        c = containers_pb2_grpc.ContainersStub(ch).Get(
            containers_pb2.GetContainerRequest(id=cid), metadata=md, timeout=30).container
        mounts = snapshots_pb2_grpc.SnapshotsStub(ch).Mounts(
            snapshots_pb2.MountsRequest(snapshotter=c.snapshotter, key=c.snapshot_key), metadata=md, timeout=30).mounts
        tasks = tasks_pb2_grpc.TasksStub(ch)
        created = tasks.Create(tasks_pb2.CreateTaskRequest(container_id=cid, rootfs=mounts, options=options),
                               metadata=md, timeout=60)
        tasks.Start(tasks_pb2.StartRequest(container_id=cid), metadata=md, timeout=60)
        print(created.pid)
except grpc.RpcError as e:
    print(f"{e.code().name}: {e.details()}", file=sys.stderr)
    sys.exit(1)

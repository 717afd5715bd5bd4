#!/usr/bin/env python3
"""Call containerd's Tasks.Update (ctr 1.6 has no `task update`).

usage: update_task.py ADDRESS NAMESPACE CONTAINER_ID RESOURCES_JSON

ADDRESS is containerd's grpc unix socket path, RESOURCES_JSON an OCI
LinuxResources object, e.g. '{"memory":{"limit":67108864}}'.  It travels as an
Any with type URL types.containerd.io/opencontainers/runtime-spec/1/LinuxResources
and the JSON text as its value, as containerd's own clients send it.

Needs the PyPI packages `containerd` (generated API bindings) and `grpcio`.
Exits 0 on success, 1 with containerd's error on stderr otherwise, 2 on bad usage.
"""

import os

# The generated bindings predate current protobuf's C++/upb backend.
os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"

import json  # noqa: E402
import sys  # noqa: E402

RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"


def main(argv):
    if len(argv) != 5:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    address, namespace, container_id, resources_json = argv[1:]

    try:
        json.loads(resources_json)
    except ValueError as err:
        print(f"update_task: RESOURCES_JSON is not JSON: {err}", file=sys.stderr)
        return 2

    try:
        import grpc
        from google.protobuf import any_pb2
        from containerd.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
    except ImportError as err:
        print(f"update_task: missing python module ({err}); "
              "run: python3 -m pip install containerd grpcio", file=sys.stderr)
        return 1

    target = address if address.startswith("unix:") else "unix:" + address
    resources = any_pb2.Any(type_url=RESOURCES_TYPE_URL, value=resources_json.encode())
    request = tasks_pb2.UpdateTaskRequest(container_id=container_id, resources=resources)
    try:
        with grpc.insecure_channel(target) as channel:
            stub = tasks_pb2_grpc.TasksStub(channel)
            stub.Update(request, metadata=[("containerd-namespace", namespace)], timeout=30)
    except grpc.RpcError as err:
        code = err.code().name if err.code() else "UNKNOWN"
        print(f"update_task: containerd refused Update of {namespace}/{container_id}: "
              f"{code}: {err.details()}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

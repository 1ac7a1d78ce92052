"""What the in-process path spends crossing the process-local channel as bytes, per call: the
most that passing message objects across instead could save."""

from __future__ import annotations

import timeit

from checkpoint.v1 import checkpoint_service_pb2 as svc

from bench import baselines
from rest_bridge.descriptor_set import default_descriptor_set, load_schema
from server.convert import checkpoint_to_proto


def serialization_cost(checkpoint_id: str, rounds: int = 20_000) -> dict[str, float]:
    """Microseconds the in-process path spends crossing as bytes, per call.

    Request: the bridge's descriptor-built message to bytes, parsed by the server's class;
    response: the server's message to bytes, parsed by the bridge's class. This is all that
    passing message objects across (instead of bytes) could save.
    """
    schema = load_schema(default_descriptor_set())
    bridge_request = schema.message_class(
        schema.pool.FindMessageTypeByName("checkpoint.v1.GetCheckpointRequest")
    )
    bridge_response = schema.message_class(
        schema.pool.FindMessageTypeByName("checkpoint.v1.GetCheckpointResponse")
    )
    request = bridge_request(checkpoint_id=checkpoint_id)
    response = svc.GetCheckpointResponse()
    checkpoint_to_proto(baselines.FIXED, response.checkpoint)

    def once() -> None:
        svc.GetCheckpointRequest.FromString(request.SerializeToString())
        bridge_response.FromString(response.SerializeToString())

    per_call = min(timeit.repeat(once, number=rounds, repeat=3)) / rounds
    return {"us_per_call": round(per_call * 1e6, 2)}

"""The client's event stream ends on an answer retrying cannot change and keeps retrying on one it can."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobqueue.client import APIError, AsyncClient
from jobqueue.client.models import Event
from jobqueue.client.stream import events

BOUND = 10.0  # a stream that retried instead of raising would still be retrying then


def client_for(server: Any, token: str | None = None) -> AsyncClient:
    return AsyncClient(f"http://127.0.0.1:{server.port}", token)


async def all_events(stream: Any) -> list[Event]:
    return [event async for event in stream]


@pytest.mark.gen_test(timeout=30)
async def test_a_wrong_token_ends_the_stream_with_the_servers_error(make_server: Any) -> None:
    server = await make_server(api_tokens=("s3cret",))
    async with client_for(server, "wrong") as client:
        with pytest.raises(APIError) as rest:
            await client.counts()
        with pytest.raises(APIError) as stream:
            await asyncio.wait_for(all_events(client.events()), BOUND)
    assert (stream.value.code, stream.value.status) == (rest.value.code, 401) == ("unauthorized", 401)
    assert stream.value.message == rest.value.message and "JOBQUEUE_API_TOKEN" in str(stream.value)


@pytest.mark.gen_test(timeout=30)
async def test_a_parameter_the_server_refuses_ends_the_stream(make_server: Any) -> None:
    server = await make_server()
    async with client_for(server) as client:
        with pytest.raises(APIError) as refused:
            await asyncio.wait_for(all_events(events(client.transport, query={"taks_id": "x"})), BOUND)
    assert (refused.value.code, refused.value.status) == ("unknown_parameter", 400)
    assert "'taks_id'" in refused.value.message and "did you mean 'task_id'" in refused.value.message


@pytest.mark.gen_test(timeout=30)
async def test_parameters_the_stream_reads_are_sent_and_accepted(make_server: Any) -> None:
    server = await make_server()
    async with client_for(server) as client:
        stream = events(client.transport, ["some-id"], query={"batch": "1"})
        first = await asyncio.wait_for(stream.__anext__(), BOUND)
        await stream.aclose()
    assert first.type == "resync" and first.raw["batch"] is True


@pytest.mark.gen_test(timeout=30)
async def test_a_full_server_is_retried_not_raised(make_server: Any) -> None:
    server = await make_server(max_websockets=1)
    async with client_for(server) as client:
        holder = client.events()
        assert (await asyncio.wait_for(holder.__anext__(), BOUND)).type == "resync"
        # 503 too_many_streams may pass: the one failure allowed is counted and the stream ends without raising
        assert await asyncio.wait_for(all_events(client.events(max_failures=1)), BOUND) == []
        await holder.aclose()

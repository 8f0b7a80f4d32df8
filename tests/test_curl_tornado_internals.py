"""LeanCurlClient (jobqueue/curl_driver.py) subclasses Tornado's CurlAsyncHTTPClient and leans on its private
parts. Each one it reads, writes, overrides or calls is listed here and checked against the installed Tornado,
so an upgrade that renames or reshapes one fails this file, by name, rather than fetches at run time.
pyproject.toml pins Tornado to the minor version these were last checked on."""

from __future__ import annotations

import collections
import inspect
import re

import pycurl
import pytest
from tornado.curl_httpclient import CurlAsyncHTTPClient
from tornado.ioloop import IOLoop

from jobqueue.curl_driver import LeanCurlClient

# instance attributes CurlAsyncHTTPClient.initialize (or AsyncHTTPClient) makes, with the kind LeanCurlClient uses
ATTRIBUTES = {
    "_multi": pycurl.CurlMulti,  # add_handle, remove_handle, socket_action, timeout
    "_curls": list,  # every handle, searched when a JobRequest is abandoned
    "_free_list": list,  # handles free for the next request
    "_requests": collections.deque,  # (request, callback, queued at) waiting for a handle
    "_timeout": type(None),  # the pending loop timeout of curl's timer, None when there is none
    "_closed": bool,  # fetch() refuses once closed
    "io_loop": IOLoop,
}

# methods of CurlAsyncHTTPClient LeanCurlClient overrides (Tornado must call them by these names and arguments)
# or calls itself; each with its parameters after self
METHODS = {
    "initialize": ["max_clients", "defaults", "max_body_size"],  # overridden; calls super
    "_curl_create": [],  # overridden: initialize makes every handle through it
    "_process_queue": [],  # overridden: fetch_impl and _finish_pending_requests call it
    "_finish": ["curl", "curl_error", "curl_message"],  # overridden: _finish_pending_requests calls it
    "_set_timeout": ["msecs"],  # overridden: libcurl's M_TIMERFUNCTION, set in initialize
    "_handle_timeout": [],  # overridden: where Tornado's own timer would land
    "_finish_pending_requests": [],  # called after socket_action
    "_curl_setup_request": ["curl", "request", "buffer", "headers"],  # called for a stock request
    "handle_callback_exception": ["callback"],  # called when a JobRequest's callback raises
    "fetch": ["request", "raise_error", "kwargs"],  # AsyncHTTPClient's, overridden for JobRequests
}

# what a stock request's handle carries in curl.info (LeanCurlClient._start_stock fills it; Tornado reads it)
INFO_KEYS = {"headers", "buffer", "streaming_buffer", "body_too_large", "request", "callback", "queue_start_time",
             "curl_start_time", "curl_start_ioloop_time"}


@pytest.mark.gen_test
async def test_the_private_attributes_exist_with_the_expected_kinds():
    client = LeanCurlClient(force_instance=True, max_clients=2)
    try:
        for name, kind in ATTRIBUTES.items():
            assert hasattr(client, name), f"Tornado's CurlAsyncHTTPClient no longer has {name}"
            assert isinstance(getattr(client, name), kind), f"{name} is {type(getattr(client, name))}, not {kind}"
        assert len(client._curls) == 2 and all(isinstance(curl, pycurl.Curl) for curl in client._curls)
        assert client._free_list == client._curls  # the handles made through our _curl_create
        assert all(getattr(curl, "lean", False) for curl in client._curls)
    finally:
        client.close()


@pytest.mark.parametrize(("name", "parameters"), METHODS.items())
def test_the_private_methods_keep_their_names_and_parameters(name: str, parameters: list[str]):
    method = getattr(CurlAsyncHTTPClient, name, None)
    assert callable(method), f"Tornado's CurlAsyncHTTPClient no longer has {name}()"
    assert list(inspect.signature(method).parameters)[1:] == parameters


def test_tornado_registers_our_timer_and_reads_the_info_keys_we_fill():
    initialize = inspect.getsource(CurlAsyncHTTPClient.initialize)
    assert "M_TIMERFUNCTION, self._set_timeout" in initialize  # looked up on self: our override is the one set
    assert "self._curl_create()" in initialize
    read = set()
    for method in (CurlAsyncHTTPClient._finish, CurlAsyncHTTPClient._curl_setup_request):
        read |= set(re.findall(r'info\["(\w+)"\]', inspect.getsource(method)))
    made = set(re.findall(r'"(\w+)":', inspect.getsource(CurlAsyncHTTPClient._process_queue)))
    ours = set(re.findall(r'"(\w+)":', inspect.getsource(LeanCurlClient._start_stock)))
    assert made == INFO_KEYS and ours == INFO_KEYS, (made, ours)
    assert read <= INFO_KEYS, read - INFO_KEYS

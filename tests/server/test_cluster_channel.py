"""The replicas' direct connections (server/cluster_channel.py), without Ray: answers in order,
the shard's own errors raised at the caller, callers without the key refused before anything
they send is read, and a connection that fails or answers late is dropped, never read for a
later call's answer."""

from __future__ import annotations

import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client

import pytest

from nanhu.engine.errors import InvalidArgument
from nanhu.server.cluster_channel import Channels, ChannelServer, Failed


class Shard:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list]] = []
        self.delay_s = 0.0

    def answer(self, method: str, calls: list) -> list:
        self.calls.append((method, calls))
        time.sleep(self.delay_s)
        if method == "bad":
            raise InvalidArgument("shard-001: keys must be uint32")
        return [(method, shard, args) for shard, args in calls]


@pytest.fixture()
def served():
    shard = Shard()
    server = ChannelServer(shard.answer, threading.Lock(), "127.0.0.1")
    yield shard, server
    server.close()


def ask(channels: Channels, method: str, calls: list, wait_s: float = 5.0):
    conn = channels.send("a", method, calls)
    assert conn is not None
    return channels.receive("a", conn, time.monotonic() + wait_s)


def test_a_connection_answers_in_order_and_raises_the_shards_error(served):
    shard, server = served
    channels = Channels(lambda actor: (server.address, server.authkey))
    assert ask(channels, "lookup", [(0, (1, 2)), (3, ("x",))]) == [("lookup", 0, (1, 2)),
                                                                   ("lookup", 3, ("x",))]
    with pytest.raises(InvalidArgument, match="shard-001"):
        ask(channels, "bad", [(0, ())])
    assert ask(channels, "state", [(1, ())]) == [("state", 1, ())]  # the connection goes on
    assert channels.direct_calls == 2 and channels.fallbacks == 0
    channels.close()


def test_a_caller_without_the_key_is_refused_before_anything_is_read(served):
    shard, server = served
    with pytest.raises(AuthenticationError):
        Client(server.address, family="AF_INET", authkey=b"not the key" * 3)
    assert shard.calls == []
    channels = Channels(lambda actor: (server.address, server.authkey))
    assert ask(channels, "state", [(0, ())]) == [("state", 0, ())]  # still serving


def test_a_late_answer_is_dropped_with_its_connection(served):
    shard, server = served
    channels = Channels(lambda actor: (server.address, server.authkey))
    shard.delay_s = 0.5
    with pytest.raises(Failed):
        ask(channels, "slow", [(0, ())], wait_s=0.05)
    shard.delay_s = 0.0
    # a new connection: the late answer to "slow" never answers this call
    assert ask(channels, "state", [(0, ())]) == [("state", 0, ())]
    assert channels.fallbacks == 1


def test_an_actor_that_cannot_be_reached_sends_its_calls_through_ray_for_a_while(served):
    _, server = served
    opened = []

    def gone(actor):
        opened.append(actor)
        raise ConnectionError("actor restarting")

    channels = Channels(gone)
    assert channels.send("a", "state", [(0, ())]) is None
    assert channels.send("a", "state", [(0, ())]) is None  # not asked again at once
    assert opened == ["a"] and channels.fallbacks == 1
    # the actor's channel closed under an open connection (the actor gone): the call fails,
    # and the fanout asks it through Ray
    channels = Channels(lambda actor: (server.address, server.authkey))
    assert ask(channels, "state", [(0, ())]) == [("state", 0, ())]
    server.close()
    conn = channels.send("a", "state", [(0, ())])
    if conn is not None:  # the send may still go out: no answer comes back
        with pytest.raises(Failed):
            channels.receive("a", conn, time.monotonic() + 5.0)
    assert channels.fallbacks == 1 and channels.direct_calls == 1

"""ContainerClient against the loopback fake container: every route, the reference
implementation's quirks, pagination that always ends, errors, and deadlines."""

from __future__ import annotations

import json
import pickle
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smclient import SMClientError
from smclient.local.containers._client import (
    ContainerClient,
    ContainerError,
    ContainerModel,
    ContainerModelPage,
    ContainerProtocolError,
    ContainerResponse,
    ContainerTimeoutError,
    ContainerUnreachableError,
)
from smclient.testing import Reply, ScriptedRuntime

from .fake_container import MAX_BODY, FakeContainer


@pytest.fixture
def fake() -> Iterator[FakeContainer]:
    with FakeContainer() as container:
        yield container


@pytest.fixture
def client(fake: FakeContainer) -> Iterator[ContainerClient]:
    with ContainerClient(fake.url, timeout=5.0) as c:
        yield c


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeContainer]:
    """One fake for every example of a property test (reset between examples)."""
    with FakeContainer() as container:
        yield container


def _gets(fake: FakeContainer, path: str = "/models") -> int:
    return sum(r.method == "GET" and r.path == path for r in fake.requests)


# -- health and load --------------------------------------------------------------------


def test_ping_true_on_200_false_otherwise(client: ContainerClient) -> None:
    assert client.ping() is True
    with FakeContainer(statuses={"ping": 503}) as sick:
        assert ContainerClient(sick.url, timeout=5.0).ping() is False


def test_load_sends_the_json_body_with_its_content_type(
    fake: FakeContainer, client: ContainerClient
) -> None:
    client.load("m1", "/opt/ml/models/m1/model")
    request = fake.requests[-1]
    assert (request.method, request.path) == ("POST", "/models")
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"model_name": "m1", "url": "/opt/ml/models/m1/model"}
    assert fake.models == {"m1": "/opt/ml/models/m1/model"}


def test_load_twice_raises_409_with_the_containers_message(client: ContainerClient) -> None:
    client.load("m1", "/u")
    with pytest.raises(ContainerError) as info:
        client.load("m1", "/u")
    assert info.value.status == 409
    assert info.value.message == "Model m1 is already registered."
    assert "409" in str(info.value)
    assert isinstance(info.value, SMClientError)


def test_load_over_the_memory_budget_raises_507_and_unload_frees() -> None:
    with FakeContainer(memory_budget=2) as fake, ContainerClient(fake.url, timeout=5.0) as c:
        c.load("a", "/a")
        c.load("b", "/b")
        with pytest.raises(ContainerError) as info:
            c.load("c", "/c")
        assert info.value.status == 507
        c.unload("a")
        c.load("c", "/c")
        assert set(fake.models) == {"b", "c"}


def test_load_of_a_missing_model_directory_is_404() -> None:
    with FakeContainer(known_urls={"/there"}) as fake, ContainerClient(fake.url) as c:
        with pytest.raises(ContainerError) as info:
            c.load("m", "/not-there")
        assert info.value.status == 404
        c.load("m", "/there")


def test_a_container_that_ignores_the_json_body_answers_400() -> None:
    with (
        FakeContainer(json_body=False) as fake,
        ContainerClient(fake.url) as c,
        pytest.raises(ContainerError) as info,
    ):
        c.load("m", "/u")
    assert (info.value.status, info.value.message) == (400, "Parameter url is required.")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"plain text failure", "plain text failure"),
        (b"", "(empty body)"),
        (b'{"code": 500, "type": "X", "message": "from json"}', "from json"),
        (b'{"code": 500}', '{"code": 500}'),
        (b"x" * 2000, "x" * 500),
    ],
)
def test_error_messages_come_from_json_or_text(body: bytes, message: str) -> None:
    with ScriptedRuntime() as server, ContainerClient(server.url) as c:
        server.queue(Reply(500, body))
        with pytest.raises(ContainerError) as info:
            c.load("m", "/u")
    assert (info.value.status, info.value.message) == (500, message)


# -- list -------------------------------------------------------------------------------


def test_list_follows_pages_and_stops_on_the_empty_last_page(fake: FakeContainer) -> None:
    for i in range(4):
        fake.add_model(f"m{i}")
    with ContainerClient(fake.url) as c:
        pages = list(c.iter_pages(limit=2))
        models = c.list_models(limit=2)
    # The reference sends a token on every exactly-full page: the third page is empty.
    assert [len(p.models) for p in pages] == [2, 2, 0]
    assert [m.name for m in models] == ["m0", "m1", "m2", "m3"]
    assert models[0] == ContainerModel("m0", "/opt/ml/models/m0/model")
    assert fake.requests[-1].query == {"next_page_token": "4", "limit": "2"}


def test_list_without_limit_sends_only_the_token(fake: FakeContainer) -> None:
    fake.add_model("m0")
    with ContainerClient(fake.url) as c:
        assert c.list_page() == ContainerModelPage(
            (ContainerModel("m0", "/opt/ml/models/m0/model"),), None
        )
        c.list_page("7")
    assert fake.requests[-2].query == {}
    assert fake.requests[-1].query == {"next_page_token": "7"}


def test_list_with_limit_zero_ends_although_the_token_never_moves(fake: FakeContainer) -> None:
    fake.add_model("m0")
    with ContainerClient(fake.url) as c:
        assert c.list_models(limit=0) == []
    assert _gets(fake) == 1


@pytest.mark.parametrize("pagination", ["repeat_token", "endless"])
def test_list_ends_when_the_container_ignores_the_token(pagination: str) -> None:
    with FakeContainer(pagination=pagination) as fake, ContainerClient(fake.url) as c:
        for i in range(3):
            fake.add_model(f"m{i}")
        assert [m.name for m in c.list_models()] == ["m0", "m1", "m2"]
        assert _gets(fake) == 2


def test_list_stops_at_the_page_cap(fake: FakeContainer) -> None:
    for i in range(10):
        fake.add_model(f"m{i}")
    with ContainerClient(fake.url) as c:
        assert len(c.list_models(limit=1, max_pages=3)) == 3
    assert _gets(fake) == 3


def test_an_empty_container_lists_nothing(client: ContainerClient) -> None:
    assert client.list_models() == []


@pytest.mark.parametrize(
    "body",
    [b"[]", b"not json", b'{"models": [{"modelName": 1}]}', b'{"models": [], "nextPageToken": []}'],
)
def test_a_malformed_list_raises_a_protocol_error(body: bytes) -> None:
    with (
        FakeContainer(bodies={"list": body}) as fake,
        ContainerClient(fake.url) as c,
        pytest.raises(ContainerProtocolError) as info,
    ):
        c.list_models()
    assert info.value.status == 200


def test_an_integer_page_token_is_accepted() -> None:
    body = b'{"models": [{"modelName": "a", "modelUrl": "/a"}], "nextPageToken": 5}'
    with FakeContainer(bodies={"list": body}) as fake, ContainerClient(fake.url) as c:
        assert c.list_page().next_page_token == "5"


# -- describe and unload ----------------------------------------------------------------


@pytest.mark.parametrize("as_list", [True, False])
def test_describe_accepts_a_list_or_an_object_with_extra_fields(as_list: bool) -> None:
    with FakeContainer(describe_as_list=as_list) as fake, ContainerClient(fake.url) as c:
        c.load("m1", "/u1")
        assert c.describe("m1") == ContainerModel("m1", "/u1")


@pytest.mark.parametrize("body", [b"[]", b"[{}, {}]", b"{}", b"oops"])
def test_a_malformed_describe_raises_a_protocol_error(body: bytes) -> None:
    with FakeContainer(bodies={"describe": body}) as fake, ContainerClient(fake.url) as c:
        c.load("m1", "/u1")
        with pytest.raises(ContainerProtocolError):
            c.describe("m1")


def test_describe_and_unload_of_an_unknown_model_raise_404(client: ContainerClient) -> None:
    for call in (client.describe, client.unload):
        with pytest.raises(ContainerError) as info:
            call("nope")
        assert info.value.status == 404
        assert info.value.message == "Model not found: nope"


def test_unload_removes_the_model(fake: FakeContainer, client: ContainerClient) -> None:
    client.load("m1", "/u")
    client.unload("m1")
    assert fake.models == {}
    assert fake.requests[-1].method == "DELETE"


def test_model_names_are_quoted_in_paths(fake: FakeContainer, client: ContainerClient) -> None:
    name = "a b/c?d#e%"
    client.load(name, "/u")
    assert client.describe(name).name == name
    assert fake.requests[-1].path == "/models/a%20b%2Fc%3Fd%23e%25"
    assert client.invoke(name, b"x").status == 200
    client.unload(name)
    assert fake.models == {}
    with pytest.raises(ValueError, match="model_name"):
        client.describe("")


# -- invoke -----------------------------------------------------------------------------


def test_invoke_forwards_the_headers_and_returns_the_answer(
    fake: FakeContainer, client: ContainerClient
) -> None:
    client.load("m1", "/u")
    response = client.invoke(
        "m1",
        b'{"x": 1}',
        content_type="application/json",
        accept="application/json",
        custom_attributes="trace=1",
        target_model="m1.tar.gz",
        extra_headers={"X-Amzn-SageMaker-Session-Id": "s1"},
    )
    sent = fake.requests[-1]
    assert (sent.method, sent.path, sent.body) == ("POST", "/models/m1/invoke", b'{"x": 1}')
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["x-amzn-sagemaker-custom-attributes"] == "trace=1"
    assert sent.headers["x-amzn-sagemaker-target-model"] == "m1.tar.gz"
    assert sent.headers["x-amzn-sagemaker-session-id"] == "s1"
    assert response.ok
    assert (response.status, response.body) == (200, b'{"x": 1}')
    assert response.content_type == "application/json"
    assert response.custom_attributes == "trace=1"
    assert response.headers["content-length"] == "8"


def test_invoke_without_optional_headers_sends_none_of_them(
    fake: FakeContainer, client: ContainerClient
) -> None:
    client.load("m1", "/u")
    response = client.invoke("m1", b"")
    sent = fake.requests[-1].headers
    assert "accept" not in sent
    assert "x-amzn-sagemaker-target-model" not in sent
    assert sent["content-length"] == "0"
    assert response.custom_attributes is None


def test_invoke_returns_errors_instead_of_raising(client: ContainerClient) -> None:
    response = client.invoke("nope", b"x")
    assert (response.status, response.ok) == (404, False)
    assert json.loads(response.body)["message"] == "Model not found: nope"


def test_a_model_left_without_worker_by_507_answers_503() -> None:
    with FakeContainer(memory_budget=1, stuck_on_507=True) as fake, ContainerClient(fake.url) as c:
        c.load("a", "/a")
        with pytest.raises(ContainerError, match="507"):
            c.load("b", "/b")
        assert c.invoke("b", b"x").status == 503
        with pytest.raises(ContainerError) as info:
            c.load("b", "/b")
        assert info.value.status == 409
        c.unload("b")
        assert set(fake.models) == {"a"}


def test_a_body_over_6_5_mb_gets_an_empty_413(client: ContainerClient) -> None:
    client.load("m1", "/u")
    response = client.invoke("m1", b"x" * (MAX_BODY + 1))
    assert (response.status, response.body) == (413, b"")


def test_invoke_single_speaks_the_single_model_contract() -> None:
    with FakeContainer(single_model=True) as fake, ContainerClient(fake.url) as c:
        assert c.ping()
        response = c.invoke_single(b"1,2", content_type="text/csv", custom_attributes="a")
        assert (response.status, response.body, response.content_type) == (200, b"1,2", "text/csv")
        assert fake.requests[-1].path == "/invocations"
        with pytest.raises(ContainerError) as info:
            c.load("m", "/u")
        assert info.value.status == 404


def test_the_repr_hides_the_body_and_custom_attributes() -> None:
    response = ContainerResponse(200, b"secret-payload", "text/plain", "secret-attr", {})
    text = repr(response)
    assert "secret" not in text
    assert "<14 bytes>" in text
    assert "text/plain" in text


# -- unreachable, timeouts and lifecycle ------------------------------------------------


def test_connection_refused_raises_unreachable_with_status_0() -> None:
    with FakeContainer() as fake:
        url = fake.url
    with ContainerClient(url, timeout=2.0) as c, pytest.raises(ContainerUnreachableError) as info:
        c.ping()
    assert info.value.status == 0
    assert not isinstance(info.value, ContainerTimeoutError)
    assert "GET /ping" in str(info.value)


def test_a_dropped_connection_raises_unreachable() -> None:
    with FakeContainer(drop={"invoke"}) as fake, ContainerClient(fake.url) as c:
        c.load("m1", "/u")
        with pytest.raises(ContainerUnreachableError):
            c.invoke("m1", b"x")


def test_a_stalled_answer_raises_a_timeout_within_the_budget() -> None:
    with FakeContainer(stall={"describe"}) as fake, ContainerClient(fake.url, timeout=0.2) as c:
        c.load("m1", "/u")
        start = time.monotonic()
        with pytest.raises(ContainerTimeoutError, match=r"within 0\.2 s"):
            c.describe("m1")
        assert time.monotonic() - start < 2.0


def test_a_trickling_answer_is_cut_at_the_call_deadline() -> None:
    # Each byte arrives well within the socket timeout; only a whole-call deadline ends it.
    import socket

    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            while not stop.wait(0.02):
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with ContainerClient(f"http://127.0.0.1:{port}", timeout=0.3) as c:
            start = time.monotonic()
            with pytest.raises(ContainerTimeoutError):
                c.invoke_single(b"x")
            assert time.monotonic() - start < 2.0
    finally:
        stop.set()
        thread.join(5.0)
        listener.close()
    assert not thread.is_alive()


def test_a_base_url_path_prefix_is_kept(fake: FakeContainer) -> None:
    with ContainerClient(fake.url + "/prefix/") as c:
        assert c.ping() is False
    assert fake.requests[-1].path == "/prefix/ping"


@pytest.mark.parametrize("url", ["ftp://h/", "127.0.0.1:8080", "http://"])
def test_a_bad_base_url_is_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        ContainerClient(url)


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_a_non_positive_timeout_is_rejected(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        ContainerClient("http://127.0.0.1:1", timeout=timeout)


def test_calls_after_close_raise(fake: FakeContainer) -> None:
    with ContainerClient(fake.url) as c:
        assert c.base_url == fake.url
    with pytest.raises(RuntimeError, match="closed"):
        c.ping()


def test_one_client_serves_many_threads(fake: FakeContainer, client: ContainerClient) -> None:
    client.load("m1", "/u")
    results: dict[int, bytes] = {}

    def work(i: int) -> None:
        results[i] = client.invoke("m1", str(i).encode()).body

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10.0)
    assert results == {i: str(i).encode() for i in range(16)}


@pytest.mark.parametrize(
    "error",
    [
        ContainerError(409, "conflict"),
        ContainerProtocolError(200, "shape"),
        ContainerUnreachableError("refused"),
        ContainerTimeoutError("slow"),
    ],
)
def test_errors_pickle(error: ContainerError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.status, copy.message, str(copy)) == (error.status, error.message, str(error))


def test_the_fake_leaves_no_thread_behind_even_with_a_stalled_request() -> None:
    before = set(threading.enumerate())
    with FakeContainer(stall={"ping"}) as fake, ContainerClient(fake.url, timeout=0.1) as c:
        with pytest.raises(ContainerTimeoutError):
            c.ping()
        assert len(set(threading.enumerate()) - before) >= 2  # serve loop + stalled handler
    assert set(threading.enumerate()) - before == set()


def test_the_fake_rejects_unknown_switches() -> None:
    with pytest.raises(ValueError, match="bogus"):
        FakeContainer(stall={"bogus"})
    with pytest.raises(ValueError, match="sideways"):
        FakeContainer(pagination="sideways")


# -- properties of paging ----------------------------------------------------------------


@given(count=st.integers(0, 25), limit=st.integers(1, 8))
@settings(max_examples=40, deadline=None)
def test_offset_paging_lists_every_model_once(
    shared_fake: FakeContainer, count: int, limit: int
) -> None:
    shared_fake.reset()
    for i in range(count):
        shared_fake.add_model(f"m{i:02d}")
    with ContainerClient(shared_fake.url) as c:
        names = [m.name for m in c.list_models(limit=limit)]
    assert names == [f"m{i:02d}" for i in range(count)]
    # A token on every exactly-full page: one request more than full pages.
    assert _gets(shared_fake) == count // limit + 1


_page = st.tuples(
    st.lists(st.sampled_from("abcdef"), max_size=4),
    st.one_of(st.none(), st.sampled_from(["1", "2", "3", ""]), st.integers(0, 3).map(str)),
)


@given(pages=st.lists(_page, min_size=1, max_size=6), max_pages=st.integers(1, 10))
@settings(max_examples=40, deadline=None)
def test_any_paging_behaviour_ends_within_the_page_cap(
    shared_fake: FakeContainer, pages: list[tuple[list[str], str | None]], max_pages: int
) -> None:
    calls: list[int] = []

    def script(query: dict[str, str]) -> bytes:
        names, token = pages[min(len(calls), len(pages) - 1)]  # the last page forever
        calls.append(1)
        answer: dict[str, object] = {"models": [{"modelName": n, "modelUrl": "/u"} for n in names]}
        if token is not None:
            answer["nextPageToken"] = token
        return json.dumps(answer).encode()

    shared_fake.reset()
    shared_fake.list_script = script
    with ContainerClient(shared_fake.url) as c:
        names = [m.name for m in c.list_models(max_pages=max_pages)]
    assert 1 <= len(calls) <= max_pages
    assert len(names) == len(set(names))
    assert set(names) <= {n for page, _ in pages for n in page}

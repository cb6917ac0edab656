"""The published Python client (durable-streams, pinned in requirements.txt) against a running
server: DS_BASE_URL is its stream base (http://host:port/v1/stream), started with
testing.fault_injection = true (scripts/clients.sh does both). Each check prints one line;
the exit status is the number of failed checks."""

import json
import os
import random
import string
import sys
import threading
import time
import traceback

import httpx
from durable_streams import DurableStream, DurableStreamError, stream

BASE = os.environ["DS_BASE_URL"]


def fresh(what):
    tag = "".join(random.choices(string.ascii_lowercase, k=6))
    return f"clients/py/{what}-{int(time.time() * 1000)}-{tag}"


def inject(fault):
    r = httpx.post(f"{BASE}/_test/inject-error", json=fault)
    assert r.status_code == 200, r.text


def json_stream_with_appends_and_close():
    url = f"{BASE}/{fresh('json')}"
    handle = DurableStream.create(url, content_type="application/json", batching=False)
    for i in range(20):
        handle.append({"i": i})
    # Close through the protocol (the client has no close call): Stream-Closed on an append.
    r = httpx.post(url, headers={"Content-Type": "application/json", "Stream-Closed": "true"}, content=json.dumps({"i": 20}))
    assert r.status_code in (200, 204), r.status_code
    with stream(url, offset="-1", live=False) as res:
        items = res.read_json()
    assert [x["i"] for x in items] == list(range(21)), items
    # The client exposes no closure flag: the server's HEAD says it, and the client's next
    # append is refused.
    assert httpx.head(url).headers.get("stream-closed") == "true"
    try:
        handle.append({"late": True})
        raise AssertionError("an append after the close was accepted")
    except DurableStreamError as e:
        assert not isinstance(e, AssertionError)


def catch_up_and_resume():
    url = f"{BASE}/{fresh('bytes')}"
    handle = DurableStream.create(url, content_type="text/plain", batching=False)
    handle.append("hello ")
    with stream(url, offset="-1", live=False) as res:
        assert res.read_text() == "hello "
        resume = res.offset
    handle.append("world")
    with stream(url, offset=resume, live=False) as res:
        assert res.read_text() == "world"


def follow(live):
    url = f"{BASE}/{fresh(live)}"
    handle = DurableStream.create(url, content_type="application/json", batching=False)
    seen = []
    done = threading.Event()

    def reader():
        with stream(url, offset="-1", live=live) as res:
            for item in res.iter_json():
                seen.append(item["n"])
                if len(seen) >= 5:
                    done.set()
                    return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(0.3)
    for n in range(5):
        handle.append({"n": n})
        time.sleep(0.05)
    assert done.wait(20), f"saw {seen}"
    assert seen == [0, 1, 2, 3, 4], seen


def retries_through_faults():
    name = fresh("retry")
    url = f"{BASE}/{name}"
    handle = DurableStream.create(url, content_type="text/plain", batching=False)
    handle.append("survived")
    # Without a handler the client reports the 503 ...
    inject({"path": f"/{name}", "status": 503, "retryAfter": 1, "count": 1, "method": "GET"})
    try:
        with stream(url, offset="-1", live=False) as res:
            res.read_text()
        raise AssertionError("a 503 was not reported")
    except DurableStreamError as e:
        assert getattr(e, "status", None) == 503, e
    # ... and with one that asks to retry, it gets through two 503s and a dropped connection.
    attempts = []

    def again(err):
        attempts.append(type(err).__name__)
        time.sleep(0.2)
        return {}

    inject({"path": f"/{name}", "status": 503, "count": 2, "method": "GET"})
    with stream(url, offset="-1", live=False, on_error=again) as res:
        assert res.read_text() == "survived"
    assert len(attempts) == 2, attempts
    inject({"path": f"/{name}", "dropConnection": True, "method": "GET"})
    with stream(url, offset="-1", live=False, on_error=again) as res:
        assert res.read_text() == "survived"
    assert len(attempts) == 3, attempts


def truncated_json_is_an_error():
    name = fresh("truncated")
    url = f"{BASE}/{name}"
    handle = DurableStream.create(url, content_type="application/json", batching=False)
    handle.append({"a": "a long enough value"})
    inject({"path": f"/{name}", "truncateBodyBytes": 8, "method": "GET"})
    try:
        with stream(url, offset="-1", live=False) as res:
            items = res.read_json()
        raise AssertionError(f"a truncated JSON body was accepted: {items}")
    except (ValueError, Exception) as e:  # the client's parse error
        assert not isinstance(e, AssertionError), e


CHECKS = [
    ("a JSON stream: appends, a close, read back", json_stream_with_appends_and_close),
    ("catch-up, then resume from the offset", catch_up_and_resume),
    ("follow live (long-poll)", lambda: follow("long-poll")),
    ("follow live (sse)", lambda: follow("sse")),
    ("503s (Retry-After) and a dropped connection, retried through on_error", retries_through_faults),
    ("a truncated JSON body is an error, not data", truncated_json_is_an_error),
]

if __name__ == "__main__":
    failed = 0
    for label, check in CHECKS:
        try:
            check()
            print(f"ok   {label}")
        except Exception:
            failed += 1
            print(f"FAIL {label}")
            traceback.print_exc()
    print(f"python client: {len(CHECKS) - failed} passed, {failed} failed")
    sys.exit(failed)

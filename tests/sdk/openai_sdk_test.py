"""The official `openai` Python SDK against a running Tollgate, unchanged.

TOLLGATE_URL and TOLLGATE_KEY come from scripts/sdk-test; the channel behind Tollgate is the mock
upstream (frontend/e2e/mock-upstream.mjs), which answers "Hello from the mock upstream." with
usage 11 + 7.
"""
import os
import sys

import openai
from openai import OpenAI

REPLY = "Hello from the mock upstream."


def main() -> int:
    client = OpenAI(base_url=os.environ["TOLLGATE_URL"] + "/v1", api_key=os.environ["TOLLGATE_KEY"])

    r = client.chat.completions.create(
        model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.choices[0].message.content == REPLY, r
    assert r.usage is not None and r.usage.total_tokens == 18, r.usage

    chunks = list(
        client.chat.completions.create(
            model="gpt-3.5-turbo",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    assert text.strip() == REPLY, text
    usage = [c.usage for c in chunks if c.usage is not None]
    assert usage and usage[-1].total_tokens == 18, usage

    # Without include_usage the SDK sees no usage chunk (Tollgate strips the one it asked for).
    plain = list(
        client.chat.completions.create(
            model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.usage is None for c in plain), plain

    ids = [m.id for m in client.models.list()]
    assert "gpt-3.5-turbo" in ids, ids

    bad = OpenAI(base_url=os.environ["TOLLGATE_URL"] + "/v1", api_key="sk-wrong", max_retries=0)
    try:
        bad.chat.completions.create(model="gpt-3.5-turbo", messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("a bad key was accepted")
    except openai.AuthenticationError as e:
        assert e.status_code == 401

    print("python openai SDK: 5 checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

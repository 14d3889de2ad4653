"""The official `anthropic` Python SDK against a running Tollgate's `/v1/messages`, unchanged.

TOLLGATE_URL and TOLLGATE_KEY come from scripts/sdk-test; the channel behind Tollgate is the
OpenAI-format mock upstream (frontend/e2e/mock-upstream.mjs), so this drives the translation
both ways: it answers "Hello from the mock upstream." with usage 11 + 7.
"""
import os
import sys

import anthropic

REPLY = "Hello from the mock upstream."


def main() -> int:
    client = anthropic.Anthropic(base_url=os.environ["TOLLGATE_URL"], api_key=os.environ["TOLLGATE_KEY"])
    messages = [{"role": "user", "content": "hi"}]

    m = client.messages.create(model="gpt-3.5-turbo", max_tokens=100, system="Be terse.", messages=messages)
    assert m.type == "message" and m.role == "assistant", m
    assert m.content[0].type == "text" and m.content[0].text == REPLY, m
    assert m.stop_reason == "end_turn", m
    assert m.usage.input_tokens == 11 and m.usage.output_tokens == 7, m.usage

    with client.messages.stream(model="gpt-3.5-turbo", max_tokens=100, messages=messages) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip() == REPLY, text
    assert final.content[0].text.strip() == REPLY, final
    assert final.stop_reason == "end_turn", final
    assert final.usage.output_tokens == 7, final.usage

    raw = client.messages.create(model="gpt-3.5-turbo", max_tokens=100, messages=messages, stream=True)
    kinds = [event.type for event in raw]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    assert "content_block_delta" in kinds and "message_delta" in kinds, kinds

    bad = anthropic.Anthropic(base_url=os.environ["TOLLGATE_URL"], api_key="sk-wrong", max_retries=0)
    try:
        bad.messages.create(model="gpt-3.5-turbo", max_tokens=10, messages=messages)
    except anthropic.AuthenticationError as e:
        assert e.status_code == 401, e
    else:
        raise AssertionError("a bad key must be refused")

    print("anthropic python sdk: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

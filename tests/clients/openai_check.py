"""Drives Skynet's /v1 API with the official `openai` Python SDK and prints one JSON
report on stdout; tests/openai_sdk.rs asserts on it. Usage: openai_check.py BASE_URL TOKEN"""

import json
import sys

import openai

base_url, token = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key=token, max_retries=0, timeout=30)
report = {"sdk": openai.__version__}

# Non-streaming, stateless: the caller's history travels with the request.
r = client.chat.completions.create(
    model="skynet",
    messages=[
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": "My name is Ann."},
        {"role": "assistant", "content": "Hello Ann."},
        {"role": "user", "content": "plain question"},
    ],
)
report["plain"] = {
    "object": r.object,
    "content": r.choices[0].message.content,
    "role": r.choices[0].message.role,
    "finish_reason": r.choices[0].finish_reason,
    "model": r.model,
    "prompt_tokens": r.usage.prompt_tokens,
    "completion_tokens": r.usage.completion_tokens,
    "cached_tokens": r.usage.prompt_tokens_details.cached_tokens,
}

# Streaming with usage.
pieces, finish, usage = [], None, None
stream = client.chat.completions.create(
    model="skynet",
    messages=[{"role": "user", "content": "slow"}],
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.usage is not None:
        usage = {"prompt": chunk.usage.prompt_tokens, "completion": chunk.usage.completion_tokens}
    for c in chunk.choices:
        if c.delta.content:
            pieces.append(c.delta.content)
        if c.finish_reason:
            finish = c.finish_reason
report["stream"] = {"pieces": len(pieces), "text": "".join(pieces), "finish_reason": finish, "usage": usage}

# A tool round inside Skynet is invisible to the caller except through the answer.
r = client.chat.completions.create(model="skynet", messages=[{"role": "user", "content": "clock"}])
report["tool"] = r.choices[0].message.content

# A stored session continues across requests when `user` is given.
for text in ["first in session", "second in session"]:
    r = client.chat.completions.create(model="skynet", user="sdk-user", messages=[{"role": "user", "content": text}])
report["session_last"] = r.choices[0].message.content

report["models"] = [m.id for m in client.models.list().data]

try:
    client.chat.completions.create(model="nope/nothing-here", messages=[{"role": "user", "content": "x"}])
    report["unknown_model"] = "accepted"
except openai.NotFoundError as e:
    report["unknown_model"] = {"status": e.status_code, "code": e.code}

try:
    client.chat.completions.create(model="skynet", messages=[{"role": "assistant", "content": "x"}])
    report["bad_request"] = "accepted"
except openai.BadRequestError as e:
    report["bad_request"] = {"status": e.status_code, "message": e.message}

try:
    openai.OpenAI(base_url=base_url, api_key="wrong-token", max_retries=0).chat.completions.create(
        model="skynet", messages=[{"role": "user", "content": "x"}]
    )
    report["wrong_token"] = "accepted"
except openai.AuthenticationError as e:
    report["wrong_token"] = {"status": e.status_code, "code": e.code}

try:
    client.chat.completions.create(model="skynet", messages=[{"role": "user", "content": "overloaded"}])
    report["upstream_error"] = "accepted"
except openai.APIStatusError as e:
    report["upstream_error"] = {"status": e.status_code, "message": e.message}

print(json.dumps(report))

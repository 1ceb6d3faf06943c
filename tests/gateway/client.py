"""An MCP client written with the official Python SDK (`mcp` on PyPI): starts the command given after
`--` as its stdio MCP server (`cordon gateway --stdio`), or with `--url URL` connects to a streamable
HTTP MCP server (`cordon gateway --listen`), runs the calls read as JSON from stdin
([{"tool": NAME, "args": {...}}, ...]) and prints one JSON document: the tools listed and each call's
result (text, isError).

With CORDON_TEST_MCP_MODE set (legacy, auto or a protocol revision such as 2026-07-28) it uses the
SDK's high-level `Client` with that `mode=` instead (auto, its default, asks `server/discover` and
adopts the stateless revision when the server offers it) and also prints the negotiated version.
With CORDON_TEST_MCP_LISTEN=1 too (2026-07-28), it opens a `subscriptions/listen` stream for tool-list
changes before the calls and prints the events it heard by 10 s after them ("listened").
Without CORDON_TEST_MCP_MODE, CORDON_TEST_MCP_LISTEN=1 prints the notifications the session's
message handler received by 10 s after the calls ("listened": their type names)."""

import asyncio
import json
import os
import sys

from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client


async def with_mode(mode: str, calls: list) -> dict:
    if sys.argv[1:2] == ["--url"]:
        target = sys.argv[2]
    else:
        argv = sys.argv[sys.argv.index("--") + 1 :]
        target = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
    out = {"tools": [], "calls": []}
    async with Client(target, mode=mode) as client:
        out["version"] = client.protocol_version
        out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        if os.environ.get("CORDON_TEST_MCP_LISTEN"):
            async with client.listen(tools_list_changed=True) as sub:
                out["honored"] = bool(sub.honored.tools_list_changed)
                await run_calls(client, calls, out)
                out["listened"] = []
                try:
                    async with asyncio.timeout(10):
                        async for event in sub:
                            out["listened"].append(type(event).__name__)
                            break
                except TimeoutError:
                    pass
        else:
            await run_calls(client, calls, out)
    return out


async def run_calls(client, calls: list, out: dict) -> None:
    for c in calls:
        r = await client.call_tool(c["tool"], c.get("args", {}))
        text = "\n".join(getattr(b, "text", "") for b in r.content)
        out["calls"].append({"tool": c["tool"], "text": text, "is_error": bool(r.is_error)})


async def main() -> None:
    calls = json.load(sys.stdin)
    mode = os.environ.get("CORDON_TEST_MCP_MODE")
    if mode:
        print(json.dumps(await with_mode(mode, calls)))
        return
    if sys.argv[1:2] == ["--url"]:
        bearer = os.environ.get("CORDON_TEST_BEARER")
        if bearer:
            # A gateway with require_token: every request carries the token.
            import httpx2

            client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"})
            transport = streamable_http_client(sys.argv[2], http_client=client)
        else:
            transport = streamable_http_client(sys.argv[2])
    else:
        argv = sys.argv[sys.argv.index("--") + 1 :]
        # The whole environment: the SDK passes only a few variables by default.
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
        transport = stdio_client(params)
    out = {"tools": [], "calls": []}
    heard, one = [], asyncio.Event()

    async def on_message(message) -> None:
        if not isinstance(message, Exception):
            heard.append(type(message).__name__)
            one.set()

    async with transport as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write, message_handler=on_message) as session:
            await session.initialize()
            if os.environ.get("CORDON_TEST_MCP_LISTEN"):
                # Over HTTP the SDK opens its GET stream (where the server's notifications go) in
                # the background after `initialize`; a notification sent before it is attached is
                # not kept. Milliseconds here; one second of margin.
                await asyncio.sleep(1)
            listed = await session.list_tools()
            out["tools"] = sorted(t.name for t in listed.tools)
            for c in calls:
                r = await session.call_tool(c["tool"], c.get("args", {}))
                text = "\n".join(getattr(b, "text", "") for b in r.content)
                out["calls"].append({"tool": c["tool"], "text": text, "is_error": bool(r.is_error)})
            if os.environ.get("CORDON_TEST_MCP_LISTEN"):
                try:
                    async with asyncio.timeout(10):
                        await one.wait()
                except TimeoutError:
                    pass
                # A second copy of the notification would come right after the first.
                await asyncio.sleep(1)
                out["listened"] = heard
    print(json.dumps(out))


asyncio.run(main())

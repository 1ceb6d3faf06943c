"""An MCP server on stdio that speaks only the stateless revision (2026-07-28), for the gateway
tests: the official Python SDK's own serving loop for that revision (`mcp` on PyPI), without the
handshake era the SDK's default loop also serves, as a server written for the new revision alone
would be. It answers `initialize` with UNSUPPORTED_PROTOCOL_VERSION. Its tool `version` says the
revision its request came in."""

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.runner import _serve_modern_stream
from mcp.server.stdio import stdio_server

server = MCPServer("cordon-test-modern")


@server.tool()
def version(ctx: Context) -> str:
    """The MCP revision of this request."""
    return ctx.protocol_version or "none"


@server.tool()
def echo(text: str) -> str:
    """Return the text as given."""
    return text


async def main() -> None:
    low = server._lowlevel_server
    async with stdio_server() as (read, write):
        async with low.lifespan(low) as state:
            await _serve_modern_stream(low, read, write, lifespan_state=state, raise_exceptions=False)


anyio.run(main)

"""A tiny MCP server on stdio, written with the official Python SDK (`mcp` on PyPI), for the gateway
tests: an upstream nobody here wrote the protocol side of."""

import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("cordon-test")


@server.tool()
def echo(text: str) -> str:
    """Return the text as given."""
    return text


@server.tool()
def env() -> str:
    """What the server sees of its environment and identity."""
    get = os.environ.get
    return f"uid={os.getuid()} HOME={get('HOME')} GW_TEST_VALUE={get('GW_TEST_VALUE')} GW_OTHER={get('GW_OTHER')}"


@server.tool()
def read(path: str) -> str:
    """Read a file."""
    with open(path) as f:
        return f.read()


@server.tool()
def write(path: str, text: str) -> str:
    """Write a file."""
    with open(path, "w") as f:
        f.write(text)
    return "written"


@server.tool()
def crash() -> str:
    """Exit mid-call, as a crashing server does."""
    sys.stderr.write("cordon-test server: crashing on purpose\n")
    sys.stderr.flush()
    os._exit(3)


@server.tool()
def forbidden() -> str:
    """A tool the gateway's config denies."""
    return "this should never run"


if __name__ == "__main__":
    server.run("stdio")

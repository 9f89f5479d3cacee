"""A fast local webhook receiver for bench/webhooks.py (asyncio, HTTP/1.1 keep-alive), own process.

    python -m bench.webhook_receiver PORT

Answers ``200 ok`` to every POST, except to paths starting with ``/hang``, which it never
answers (the connection stays open). Keeps ``(path, webhook-id, arrival time)`` of every POST;
``GET /stats`` returns them as JSON. Prints ``{"port": PORT}`` once listening.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

RECEIVED: list[tuple[str, str, float]] = []
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            at = time.time()
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            if method == "GET" and path == "/stats":
                body = json.dumps(RECEIVED).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
                continue
            RECEIVED.append((path, headers.get("webhook-id", ""), at))
            if path.startswith("/hang"):
                await asyncio.sleep(3600)
                return
            writer.write(OK)
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    print(json.dumps({"port": port}), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))

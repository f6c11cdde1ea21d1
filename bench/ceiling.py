"""The ceiling for linkhub's stack: a bare Starlette app answering GET /r/{code} with a 302
from a Python dict, served exactly as `linkhub serve` serves linkhub (same socket set-up,
same Hypercorn config, same uvloop run, same signal handling: see linkhub/web/server.py).
It also answers POST /outreach/{account_id}/links as linkhub does, in shape only: the
body parsed, every `data` value answered with a made-up short link (no signature check,
no filter, nothing stored): what receiving an email's links and sending the answer costs.

No database, no click recording: whatever linkhub does beyond this is linkhub's own cost.

    python bench/ceiling.py --codes CODES_FILE [--host 127.0.0.1] [--port 0] [--asgi]

CODES_FILE holds one code per line; each redirects to https://example.com/landing/<code>.
Prints `ceiling: serving on http://HOST:PORT` on stderr once listening, like linkhub.
`--asgi` serves a plain ASGI callable instead of Starlette (no routing, no Request, no
Response objects): the floor of Hypercorn + uvloop alone, for reference.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

# The very functions `linkhub serve` uses, so the only difference is the app.
from linkhub.web.server import _bind, _run_loop, _serve, hypercorn_config


def load_targets(path: Path) -> dict[str, str]:
    codes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return {code: f"https://example.com/landing/{code}" for code in codes}


def starlette_app(targets: dict[str, str]) -> Starlette:
    async def redirect(request: Request) -> Response:
        target = targets.get(request.path_params["code"])
        if target is None:
            return PlainTextResponse("not found", status_code=404)
        return RedirectResponse(target, status_code=302, headers={"cache-control": "no-store"})

    numbers = itertools.count()

    async def replace_links(request: Request) -> Response:
        data = msgspec.json.decode(await request.body())["data"]
        answer = {value: f"http://127.0.0.1/r/{next(numbers):011d}" for value in data}
        return Response(msgspec.json.encode({"data": answer}), media_type="application/json")

    return Starlette(routes=[Route("/r/{code}", redirect, methods=["GET"]),
                             Route("/outreach/{account_id}/links", replace_links, methods=["POST"])])


def asgi_app(targets: dict[str, str]) -> Any:
    not_found = {"type": "http.response.start", "status": 404,
                 "headers": [(b"content-type", b"text/plain"), (b"content-length", b"9")]}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        target = targets.get(path[3:]) if path.startswith("/r/") else None
        if target is None:
            await send(not_found)
            await send({"type": "http.response.body", "body": b"not found"})
            return
        await send({"type": "http.response.start", "status": 302, "headers": [
            (b"location", target.encode()), (b"cache-control", b"no-store"), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--codes", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--asgi", action="store_true", help="plain ASGI callable instead of Starlette")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    targets = load_targets(args.codes)
    app = asgi_app(targets) if args.asgi else starlette_app(targets)
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    config = hypercorn_config(sock)

    def announce() -> None:
        print(f"ceiling: serving on http://{args.host}:{port} ({len(targets)} codes, "
              f"{'plain ASGI' if args.asgi else 'Starlette'})", file=sys.stderr, flush=True)

    _run_loop(_serve(app, config, announce))


if __name__ == "__main__":
    main()

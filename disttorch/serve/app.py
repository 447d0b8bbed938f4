"""The Starlette application: Open Inference Protocol (KServe v2) routes, /metrics, limits and errors.

Every error answer is JSON ``{"error": "..."}`` as the protocol asks: 400 for a malformed or mismatching
request, 404 for an unknown model or path, 405 for a wrong method, 413 for a body over the limit, 500 when
the model itself raises, 503 while shutting down.
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .batching import Engine, ModelError
from .metrics import Metrics
from .protocol import BINARY_HEADER, ProtocolError, decode_request, encode_response, parse_header_length

DEFAULT_MAX_BODY = 64 * 1024 * 1024
_log = logging.getLogger("disttorch.serve")


@dataclass
class ServedModel:
    """What the routes need: the name, the input/output specs and the engine that runs the model."""

    name: str
    inputs: list
    outputs: list
    engine: Engine
    metrics: Metrics
    max_body: int = DEFAULT_MAX_BODY
    platform: str = "disttorch"
    shutting_down: Callable[[], bool] = field(default=lambda: False)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
    hint = f"the server's limit is {limit} bytes (raise it with --max-body-bytes)"
    length = request.headers.get("content-length")
    if length is not None:
        if not (length.strip().isascii() and length.strip().isdigit()):
            raise ProtocolError(f"header Content-Length: expected a byte count, got {length[:40]!r}")
        if int(length) > limit:
            raise ProtocolError(f"request body of {int(length)} bytes is too large: {hint}", 413)
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked bodies carry no Content-Length: count as they come
        size += len(chunk)
        if size > limit:
            raise ProtocolError(f"request body is too large (over {limit} bytes so far): {hint}", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(served: ServedModel) -> Starlette:
    """The ASGI application serving one model."""
    m = served.metrics

    def known(request: Request) -> None:
        name = request.path_params["name"]
        if name != served.name:
            raise ProtocolError(f"unknown model {name[:64]!r}; this server serves {served.name!r}", 404)

    def answer(endpoint: str, fn) -> Callable:
        async def handler(request: Request) -> Response:
            try:
                resp = fn(request)
            except ProtocolError as e:
                resp = _error(e.status, str(e))
            m.request(endpoint, resp.status_code)
            return resp
        return handler

    def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    def ready(request: Request) -> Response:
        ok = not served.shutting_down()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "disttorch", "version": _version(), "extensions": ["binary_tensor_data"]})

    def model_metadata(request: Request) -> Response:
        known(request)
        return JSONResponse({"name": served.name, "versions": ["1"], "platform": served.platform,
                             "inputs": [s.to_json() for s in served.inputs],
                             "outputs": [s.to_json() for s in served.outputs]})

    def model_ready(request: Request) -> Response:
        known(request)
        return ready(request)

    async def infer(request: Request) -> Response:
        t0 = time.perf_counter()
        m.inflight.inc()
        try:
            try:
                known(request)
                if served.shutting_down():
                    raise ProtocolError("the server is shutting down", 503)
                body = await _read_body(request, served.max_body)
                hl = parse_header_length(request.headers.get(BINARY_HEADER), len(body))
                req = decode_request(body, hl, served.inputs, served.outputs)
                outs = await served.engine.infer([req.inputs[s.name] for s in served.inputs])
                if len(outs) != len(served.outputs):
                    raise ModelError(f"the model returned {len(outs)} outputs; at startup it returned "
                                     f"{len(served.outputs)}")
                content, headers = encode_response(served.name, req, [(s.name, o) for s, o in
                                                                      zip(served.outputs, outs)])
                resp = Response(content, headers=headers)
            except ProtocolError as e:
                resp = _error(e.status, str(e))
            except ModelError as e:
                resp = _error(500, str(e))
            except Exception as e:  # noqa: BLE001 - a bug here must not cost the client its error body
                _log.exception("disttorch serve: internal error on an infer request")
                resp = _error(500, f"internal server error: {type(e).__name__}")
            m.request("infer", resp.status_code, time.perf_counter() - t0)
            return resp
        finally:
            m.inflight.dec()

    def metrics(request: Request) -> Response:
        body, ctype = m.render()
        return Response(body, headers={"content-type": ctype})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await served.engine.start()
        try:
            yield
        finally:
            await served.engine.stop()  # after uvicorn drained the in-flight requests

    routes = [
        Route("/v2/health/live", answer("health", live)),
        Route("/v2/health/ready", answer("health", ready)),
        Route("/v2", answer("metadata", server_metadata)),
        Route("/v2/models/{name}", answer("metadata", model_metadata)),
        Route("/v2/models/{name}/versions/{version}", answer("metadata", model_metadata)),
        Route("/v2/models/{name}/ready", answer("health", model_ready)),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/metrics", metrics),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("disttorch")
    except Exception:  # noqa: BLE001 - a checkout that is not installed
        return "unknown"


__all__ = ["ServedModel", "create_app", "DEFAULT_MAX_BODY"]

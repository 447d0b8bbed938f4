"""``disttorch serve CHECKPOINT --model module:factory ...``: serve a model over the Open Inference Protocol.

Needs the ``serve`` extra (Starlette, Uvicorn, prometheus-client). See docs/serving.md.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="disttorch serve", description="Serve a disttorch model over the Open "
                                "Inference Protocol (KServe v2) on HTTP. See docs/serving.md.")
    a = p.add_argument
    a("checkpoint", help="weights file written by disttorch.save (a state_dict), loaded with weights_only=True")
    a("--model", required=True, metavar="MODULE:FACTORY", help="callable that builds the model, e.g. nets:make")
    a("--name", help="model name in the URLs (default: the checkpoint file's name without extension)")
    a("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    a("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    a("--workers", type=int, default=1, metavar="N", help="model replicas, each run by its own thread (default 1)")
    a("--max-batch-size", type=int, default=0, metavar="B", help="dynamic batching: rows per batch (0: off)")
    a("--max-delay-ms", type=float, default=5.0, metavar="T", help="dynamic batching: longest wait for a batch "
      "to fill, from the oldest request's arrival (default 5)")
    a("--input", action="append", default=[], metavar="NAME:DATATYPE:SHAPE", help="a model input, in forward's "
      "argument order, e.g. x:FP32:-1,4 (default: guessed from the first layer)")
    a("--max-body-bytes", type=int, default=64 * 1024 * 1024, metavar="N", help="largest request body (default "
      "64 MiB); larger ones get 413")
    a("--graceful-timeout", type=float, default=30.0, metavar="S", help="on SIGTERM, seconds to let in-flight "
      "requests finish (default 30)")
    a("--log-level", default="warning", help="uvicorn log level (default warning)")
    return p


def _listen(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP, as getaddrinfo would give: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it a keep-alive client waits ~40 ms (Nagle + delayed ACK) for every response's body.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def main(argv: list | None = None) -> int:
    """Run the server until SIGTERM/SIGINT; returns the exit status (2 for bad arguments or setup)."""
    args = build_parser().parse_args(argv)
    try:
        import uvicorn  # noqa: F401 - checked here so a missing extra is reported before the model loads

        from . import app as A
        from . import model as M
        from .metrics import Metrics
    except ImportError as e:
        print(f"disttorch serve: error: {e.name or e} is not installed; install the serve extra: "
              "pip install 'disttorch[serve]'", file=sys.stderr)
        return 2
    from .batching import Engine

    problems = [f"--{k.replace('_', '-')} must be >= {lo}" for k, lo in
                (("workers", 1), ("max_batch_size", 0), ("max_delay_ms", 0), ("max_body_bytes", 1),
                 ("graceful_timeout", 0)) if getattr(args, k) < lo]
    if problems:
        print(f"disttorch serve: error: {'; '.join(problems)}", file=sys.stderr)
        return 2
    name = args.name or os.path.splitext(os.path.basename(args.checkpoint))[0]
    try:
        model = M.build_model(args.model, args.checkpoint)
        inputs = [M.parse_input_flag(t) for t in args.input] or M.infer_inputs(model)
        outputs = M.probe_outputs(model, inputs)
    except M.ServeSetupError as e:
        print(f"disttorch serve: error: {e}", file=sys.stderr)
        return 2
    metrics = Metrics(name)
    engine = Engine(M.replicas(model, args.workers), M.run, args.max_batch_size, args.max_delay_ms / 1000.0,
                    on_batch=metrics.batch)
    server = None
    served = A.ServedModel(name, inputs, outputs, engine, metrics, max_body=args.max_body_bytes,
                           shutting_down=lambda: server is not None and server.should_exit)
    try:
        sock = _listen(args.host, args.port)
    except OSError as e:
        print(f"disttorch serve: error: cannot listen on {args.host}:{args.port}: {e.strerror or e} (choose another "
              "--port or --host)", file=sys.stderr)
        return 2
    config = uvicorn.Config(A.create_app(served), log_level=args.log_level, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=args.graceful_timeout)
    server = uvicorn.Server(config)

    def on_signal(signum, frame) -> None:
        # Uvicorn replaces this while it serves and calls it again once it has shut down gracefully: ending
        # then with status 0 (not by the signal) tells supervisors the shutdown was clean.
        server.should_exit = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    port = sock.getsockname()[1]
    batching = (f"dynamic batching up to {args.max_batch_size} rows, {args.max_delay_ms:g} ms"
                if args.max_batch_size else "no batching")
    print(f"disttorch serve: model {name!r} on http://{args.host}:{port}/v2/models/{name} "
          f"({args.workers} replica(s), {batching})", flush=True)
    server.run(sockets=[sock])
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())

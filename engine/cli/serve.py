"""``ttscale serve``: the OpenAI-compatible server (``engine/serve``) on uvicorn.

    ttscale serve                                   # the embedded model on http://127.0.0.1:8000
    ttscale serve --model DIR --port 0              # any free port; the line "listening on http://..." says which
    ttscale serve --host 0.0.0.0 --api-key KEY      # reachable from the network, with a key

Every flag is checked and the port bound before the model loads, so a typo or a busy port costs no load time.
SIGTERM or Ctrl-C stops accepting connections, lets in-flight requests finish (up to ``--shutdown-timeout`` s),
then exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import replace

import uvicorn

from engine.cli.flags import SERVE
from engine.engine import ThinkingEngine
from engine.errors import TTScaleError
from engine.formats import FormatConfig
from engine.logits.sampling import SamplingConfig
from engine.model_config import ModelConfig
from engine.search.prm import ModelPRM, VerifierPRM, load_prm
from engine.serve.app import Server, create_app
from engine.serve.options import ServeOptions


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one). Refuses a port in use, in one sentence."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise TTScaleError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port (0: any free port)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _prm(opts: ServeOptions, model: ModelConfig, policy):
    """The scorer of search requests: a verifier, a PRM model, or None (the policy itself under the protocol)."""
    if opts.verifier:
        return VerifierPRM.from_spec(opts.verifier), f"verifier {opts.verifier}"
    if opts.prm is None or opts.prm == model.model:
        return ModelPRM(policy.model, policy.tokenizer, opts.prm_protocol), f"the policy under {opts.prm_protocol}"
    return load_prm(opts.prm, opts.prm_protocol, model.trust_remote_code, dtype=model.dtype, device=model.device), opts.prm


def run(args) -> int:
    """``ttscale serve``: check the flags, bind the port, load the model, serve until SIGTERM / Ctrl-C.

    Refuses bad flags, a verifier that does not import and a busy port before the model loads.
    """
    c = SERVE.build(args)
    opts, model_cfg, fmt, sampling = c[ServeOptions], c[ModelConfig], c[FormatConfig], c[SamplingConfig]
    if opts.api_key is None and os.environ.get("TTSCALE_API_KEY"):
        opts = replace(opts, api_key=os.environ["TTSCALE_API_KEY"])
    fmt.thinking_format()
    if opts.verifier:
        VerifierPRM.from_spec(opts.verifier)  # imported now: a bad module:function fails before the model loads
    sock = bind(opts.host, opts.port)
    host, port = sock.getsockname()[:2]
    engine = ThinkingEngine.from_config(model_cfg, fmt)
    prm, prm_line = _prm(opts, model_cfg, engine)
    name = opts.served_model_name or model_cfg.model
    server = Server(engine.model, engine.tokenizer, engine.format, engine.style, opts, sampling, name,
                    system=fmt.system, prm=prm)
    app = create_app(server)
    shown = f"[{host}]" if ":" in host else host
    print(f"ttscale serve: model {name}; {engine.describe()}; search scored by {prm_line}", file=sys.stderr)
    if opts.exposed and opts.api_key is None:
        print(f"ttscale serve: warning: listening on {host} without --api-key: anyone who can reach this machine can "
              "use the model", file=sys.stderr)
    print(f"ttscale serve: listening on http://{shown}:{port} (max batch {opts.max_batch}, queue {opts.max_queue}"
          f"{', API key required' if opts.api_key else ''}); Ctrl-C or SIGTERM stops after in-flight requests",
          file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level="info" if opts.log_requests else "warning", access_log=opts.log_requests,
                            timeout_graceful_shutdown=opts.shutdown_timeout, lifespan="on")
    logging.getLogger("ttscale.serve").setLevel(logging.INFO)
    GracefulServer(config).run(sockets=[sock])
    print("ttscale serve: stopped after finishing in-flight requests", file=sys.stderr)
    return 0


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM / Ctrl-C it handled gracefully ends the process with status 0 (uvicorn
    re-raises the signal after shutting down, so the process would die of it)."""

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

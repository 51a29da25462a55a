"""``ttscale serve`` settings (torch-free, so the flags and ``--help`` need no torch): where to listen, who may
call, how much work to take at once, and the scorer of search requests."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from engine.errors import ConfigError
from engine.search.prm_protocols import PROTOCOLS

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class ServeOptions:
    """The server's own settings; the model, format and default sampling are the usual model flags."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to bind (loopback by default; 0.0.0.0 exposes "
                                                             "the server to the network: set --api-key)"})
    port: int = field(default=8000, metadata={"help": "TCP port (0: a free port, printed at start)"})
    api_key: str | None = field(default=None, metadata={
        "help": "require `Authorization: Bearer KEY` on /v1/* (default: the TTSCALE_API_KEY environment variable, "
                "else no key)", "metavar": "KEY"})
    served_model_name: str | None = field(default=None, metadata={
        "help": "the model id clients send (default: the --model value); /v1/models lists it", "metavar": "NAME"})
    max_batch: int = field(default=32, metadata={"help": "rows decoded together (n counts n rows)"})
    max_queue: int = field(default=64, metadata={"help": "requests waiting beyond the batch; more get 429 with Retry-After"})
    max_tokens_limit: int = field(default=4096, metadata={"help": "largest max_tokens a request may ask for"})
    max_n: int | None = field(default=None, metadata={"help": "largest n a request may ask for (default: 16, at most --max-batch)"})
    max_request_bytes: int = field(default=1 << 20, metadata={"help": "largest request body accepted (bytes)"})
    prefix_cache: int = field(default=8, metadata={"help": "recent prompts kept in the KV cache so a shared prefix "
                                                           "is computed once (0: off)"})
    shutdown_timeout: float = field(default=300.0, metadata={"help": "on SIGTERM, seconds in-flight requests get to finish"})
    prm: str | None = field(default=None, metadata={
        "help": "PRM for search requests (hub id, directory, embedded name); default: the policy under --prm-protocol",
        "metavar": "P"})
    prm_protocol: str = field(default="rlhflow", metadata={"help": ", ".join(PROTOCOLS)})
    verifier: str | None = field(default=None, metadata={
        "help": "programmatic step verifier for search requests, e.g. engine.search.verifiers:arithmetic",
        "metavar": "MODULE:FUNCTION"})
    log_requests: bool = field(default=False, metadata={"help": "log one line per HTTP request (uvicorn's access log)"})

    def __post_init__(self):
        if not isinstance(self.host, str) or not self.host:
            raise ConfigError(f"`host` must be an address such as 127.0.0.1, got {self.host!r}")
        if self.host not in LOOPBACK:
            try:
                ipaddress.ip_address(self.host)
            except ValueError:
                raise ConfigError(f"`host` {self.host!r} is not an IP address; use e.g. 127.0.0.1 or 0.0.0.0") from None
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise ConfigError(f"`port` must be an integer in 0..65535 (0: any free port), got {self.port!r}")
        for name in ("max_batch", "max_queue", "max_tokens_limit", "max_n", "max_request_bytes"):
            v = getattr(self, name)
            if v is None and name == "max_n":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"`{name}` must be an integer >= 1, got {v!r}")
        if not isinstance(self.prefix_cache, int) or self.prefix_cache < 0:
            raise ConfigError(f"`prefix_cache` must be an integer >= 0 (0 switches it off), got {self.prefix_cache!r}")
        if self.max_n is not None and self.max_n > self.max_batch:
            raise ConfigError(f"`max_n` ({self.max_n}) is larger than `max_batch` ({self.max_batch}): a request with "
                              "that n could never run; lower max_n or raise max_batch")
        if not isinstance(self.shutdown_timeout, (int, float)) or self.shutdown_timeout < 0:
            raise ConfigError(f"`shutdown_timeout` must be >= 0 seconds, got {self.shutdown_timeout!r}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("`api_key` is shorter than 8 characters; use a longer secret")
        if self.prm is not None and self.verifier is not None:
            raise ConfigError("`prm` and `verifier` both given; score search requests with one of them")
        if self.prm_protocol not in PROTOCOLS:
            raise ConfigError(f"`prm_protocol` {self.prm_protocol!r} is unknown; use one of {', '.join(PROTOCOLS)}")

    @property
    def n_limit(self) -> int:
        """The largest ``n`` a request may ask for."""
        return self.max_n if self.max_n is not None else min(16, self.max_batch)

    @property
    def exposed(self) -> bool:
        """True when the server listens beyond loopback."""
        return self.host not in LOOPBACK

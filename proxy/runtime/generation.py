"""One snapshot made runnable: listeners, filter chains and HCMs bound to the
snapshot's routes and the generation's cluster states.

Built once per `DataPlane.apply`; a connection keeps the generation it was accepted
under (its `ListenerRuntime`), so a config swap never changes a connection in
flight. `Generation.listener_for(ip, port)` is the use_original_dst hand-off lookup
(exact address first, then the wildcard listener on that port, bound or not).
"""
from __future__ import annotations

from isthmus.proxy.config.filter_chain_match import FilterChainMatchConfig
from isthmus.proxy.config.listeners import FilterChainConfig, ListenerConfig
from isthmus.proxy.runtime.hcm import HcmRuntime
from isthmus.proxy.telemetry import ListenerStats

_ANY = FilterChainMatchConfig()


class ChainRuntime:
    def __init__(self, config: FilterChainConfig, listener: "ListenerRuntime", gen: "Generation", rt) -> None:
        self.config = config
        self.listener = listener
        self.rt = rt
        self.hcm = HcmRuntime(config.http, listener, gen, rt) if config.http is not None else None
        self.tcp = None
        if config.tcp is not None:
            from isthmus.proxy.runtime.tcp_proxy import TcpRuntime
            self.tcp = TcpRuntime(config.tcp, listener, gen, rt)

    def make_app(self, info):
        if self.hcm is not None:
            from isthmus.proxy.runtime.http_conn import HttpConnection
            return HttpConnection(self.rt, info, self.hcm, self.listener)
        from isthmus.proxy.runtime.tcp_proxy import TcpSession
        return TcpSession(self.rt, info, self.tcp, self.listener)

    def handshake_failed(self) -> None:
        if self.hcm is not None:
            self.hcm.stats.downstream_cx_ssl_handshake_error.value += 1


class ListenerRuntime:
    def __init__(self, config: ListenerConfig, gen: "Generation", rt) -> None:
        self.config = config
        self.gen = gen
        self.rt = rt
        self.stats = ListenerStats(rt.stats, str(config.address))
        kinds = {f.kind for f in config.listener_filters}
        self.tls_inspector = "tls_inspector" in kinds
        self.http_inspector = "http_inspector" in kinds
        # use_original_dst implies the original_dst filter (Envoy adds it itself).
        self.original_dst = "original_dst" in kinds or config.use_original_dst
        self.max_client_hello = next((f.max_client_hello_size for f in config.listener_filters
                                      if f.kind == "tls_inspector" and f.max_client_hello_size), 64 * 1024)
        self.chains = {id(c): ChainRuntime(c, self, gen, rt) for c in config.all_chains()}
        self.buffer_limit = config.per_connection_buffer_limit_bytes
        # A listener whose chain cannot depend on the connection: start the app at once.
        self.fast_chain: ChainRuntime | None = None
        if not kinds and not self.original_dst:
            if not config.filter_chains and config.default_filter_chain is not None:
                self.fast_chain = self.chains[id(config.default_filter_chain)]
            elif len(config.filter_chains) == 1 and config.filter_chains[0].match == _ANY:
                self.fast_chain = self.chains[id(config.filter_chains[0])]

    def select(self, info, sni: str, transport_protocol: str, alpn: tuple[str, ...]) -> ChainRuntime | None:
        remote = info.remote or ("", 0)
        local = info.local or ("", 0)
        chain = self.config.select_chain(local[1], sni, transport_protocol, alpn, remote[0], dest_ip=local[0],
                                         source_port=remote[1])
        return self.chains.get(id(chain)) if chain is not None else None


class Generation:
    def __init__(self, snapshot, clusters: dict, rt) -> None:
        self.snapshot = snapshot
        self.clusters = clusters
        self.rt = rt
        self.listeners = {name: ListenerRuntime(cfg, self, rt) for name, cfg in snapshot.listeners.items()}
        self._exact: dict[tuple[str, int], ListenerRuntime] = {}
        self._wild: dict[int, ListenerRuntime] = {}
        for lr in self.listeners.values():
            a = lr.config.address
            if a.pipe:
                continue
            if a.host in ("0.0.0.0", "::", ""):
                self._wild.setdefault(a.port, lr)
            else:
                self._exact.setdefault((a.host, a.port), lr)

    def listener_for(self, ip: str, port: int) -> ListenerRuntime | None:
        return self._exact.get((ip, port)) or self._wild.get(port)

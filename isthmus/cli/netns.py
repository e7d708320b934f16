"""Pods on one machine: a network namespace per workload, joined by a Linux bridge.

`plan_network` is pure: a run id, a private /24 from 10.244.0.0/16 (the bridge takes .1,
where the control plane listens; pods .10 on), one service VIP per service from
10.96.<same>.0/24 (never on an interface: clients resolve names to it through a per-pod
hosts file and their sidecar's outbound capture catches it), and per pod: the netns
`isthmus-<run>-<name>`, the host end of its veth pair and whether iptables capture is
installed (sidecar pods; gateways have none). `create` builds all of it (rolling back on
failure); `teardown` removes every netns, veth, bridge, hosts file, iptables rule and
pod directory it made, and is safe to repeat. Root only: `prerequisites` says why not.
"""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from isthmus.proxy import iptables

POD_RANGE = ipaddress.ip_network("10.244.0.0/16")  # one /24 per run: 10.244.<index>.0/24
VIP_PREFIX = "10.96"  # service VIPs of that run: 10.96.<index>.<10+i>
PROXY_UID = iptables.PROXY_UID
NETNS_PREFIX = "isthmus-"
POD_ENV = {  # a pod has no HTTP proxy: its outbound is captured, not proxied
    name: "" for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
}
BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
# Pods resolve names through their hosts file only. A DNS server on the pod's own loopback
# (none listens) makes every miss fail at once instead of timing out on the host's resolvers.
RESOLV_CONF = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"


class PodNetworkError(RuntimeError):
    """Setting up or removing pods failed; the message names the command and its error."""


@dataclass(frozen=True)
class Pod:
    name: str  # the workload: productpage-v1, istio-ingressgateway
    netns: str
    ip: str
    veth: str  # host end in the root namespace (the pod's end is eth0)
    capture: bool  # iptables REDIRECT to its sidecar


@dataclass(frozen=True)
class PodNetwork:
    run_id: str
    index: int  # 10.244.<index>.0/24, VIPs 10.96.<index>.x
    pods: tuple[Pod, ...]
    vips: tuple[tuple[str, str], ...]  # (service short name, VIP)
    pod_dir: str  # per-pod files the proxy uid may read (token, proxy run dir)
    proxy_uid: int = PROXY_UID
    namespace: str = "default"
    forward_rule: bool = False  # root-namespace FORWARD accept for the bridge (br_netfilter hosts)

    @property
    def bridge(self) -> str:
        return f"isthmus{self.run_id}"  # ≤ 15 characters

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.ip_network(f"{POD_RANGE.network_address + self.index * 256}/24")

    @property
    def host_ip(self) -> str:
        """The bridge's address in the root namespace: pods reach the control plane here."""
        return str(self.subnet.network_address + 1)

    def pod(self, name: str) -> Pod:
        for p in self.pods:
            if p.name == name:
                return p
        raise KeyError(f"no pod {name!r} in run {self.run_id} (pods: {', '.join(p.name for p in self.pods)})")

    def vip(self, service: str) -> str:
        return dict(self.vips)[service]

    def pod_path(self, pod: Pod) -> Path:
        return Path(self.pod_dir) / pod.name

    def exec_argv(self, pod: Pod, argv: Sequence[str], as_proxy: bool = False) -> tuple[str, ...]:
        """argv run inside the pod; `as_proxy`: as the proxy uid/gid, whose traffic is not captured."""
        prefix: tuple[str, ...] = ("ip", "netns", "exec", pod.netns)
        if as_proxy:
            uid = str(self.proxy_uid)
            prefix += ("setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--")
        return (*prefix, *argv)

    def capture_rules(self) -> iptables.CaptureRules:
        """istio-init's defaults; the control plane's address is never captured."""
        return iptables.CaptureRules(proxy_uid=self.proxy_uid, proxy_gid=self.proxy_uid,
                                     exclude_outbound_cidrs=(f"{self.host_ip}/32",))

    def to_state(self) -> dict:
        return {"run_id": self.run_id, "index": self.index, "pod_dir": self.pod_dir, "proxy_uid": self.proxy_uid,
                "namespace": self.namespace, "forward_rule": self.forward_rule,
                "pods": [vars(p) for p in self.pods], "vips": dict(self.vips)}

    @classmethod
    def from_state(cls, d: dict) -> "PodNetwork":
        return cls(run_id=d["run_id"], index=d["index"], pods=tuple(Pod(**p) for p in d["pods"]),
                   vips=tuple(d["vips"].items()), pod_dir=d["pod_dir"], proxy_uid=d["proxy_uid"],
                   namespace=d.get("namespace", "default"), forward_rule=d.get("forward_rule", False))


# ---- pure ----------------------------------------------------------------------------

def plan_network(run_id: str, index: int, pods: Iterable[tuple[str, bool]], services: Iterable[str], pod_dir: str,
                 *, proxy_uid: int = PROXY_UID, forward_rule: bool = False) -> PodNetwork:
    """`pods`: (workload name, capture) in start order; `services`: the short names that get VIPs."""
    if not re.fullmatch(r"[0-9a-f]{4}", run_id):
        raise ValueError(f"run id {run_id!r}: four hex digits")
    if not 1 <= index <= 254:
        raise ValueError(f"subnet index {index}: 1-254 (10.244.<index>.0/24)")
    subnet = ipaddress.ip_network(f"{POD_RANGE.network_address + index * 256}/24")
    out = []
    for i, (name, capture) in enumerate(pods):
        if i >= 200:
            raise ValueError("at most 200 pods per run")
        out.append(Pod(name=name, netns=f"{NETNS_PREFIX}{run_id}-{name}", ip=str(subnet.network_address + 10 + i),
                       veth=f"ith{run_id}v{i}", capture=capture))
    vips = tuple((s, f"{VIP_PREFIX}.{index}.{10 + i}") for i, s in enumerate(dict.fromkeys(services)))
    return PodNetwork(run_id=run_id, index=index, pods=tuple(out), vips=vips, pod_dir=pod_dir, proxy_uid=proxy_uid,
                      forward_rule=forward_rule)


def hosts_file(net: PodNetwork, pod: Pod, domain_suffix: str = "cluster.local") -> str:
    """/etc/hosts inside `pod`: itself, then every service's names → its VIP (kube-dns's job;
    the pod's resolv.conf has no reachable server, so names outside this file do not resolve)."""
    ns = net.namespace
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{pod.ip}\t{pod.name}"]
    for service, vip in net.vips:
        lines.append(f"{vip}\t{service} {service}.{ns} {service}.{ns}.svc {service}.{ns}.svc.{domain_suffix}")
    return "\n".join(lines) + "\n"


def with_vips(platform_yaml: str, net: PodNetwork, domain_suffix: str = "cluster.local") -> str:
    """The ServiceEntries of `platform_yaml` with `addresses: [VIP]` for the services `net` has
    VIPs for, so pilot emits VIP_PORT listeners and VIP domains; other documents unchanged."""
    import yaml

    vips = {f"{svc}.{net.namespace}.svc.{domain_suffix}": vip for svc, vip in net.vips}
    docs = [d for d in yaml.safe_load_all(platform_yaml) if d]
    for d in docs:
        if d.get("kind") == "ServiceEntry":
            hosts = d.get("spec", {}).get("hosts", [])
            addrs = [vips[h] for h in hosts if h in vips]
            if addrs:
                d["spec"]["addresses"] = addrs
    return yaml.safe_dump_all(docs, sort_keys=False)


def used_indexes(addresses: str) -> set[int]:
    """10.244.<i>.x and 10.96.<i>.x in `ip -4 -o addr` / `ip -4 route` output."""
    return {int(m.group(2)) for m in re.finditer(r"\b10\.(244|96)\.(\d{1,3})\.", addresses)}


def free_index(addresses: str) -> int:
    used = used_indexes(addresses)
    for i in range(1, 255):
        if i not in used:
            return i
    raise PodNetworkError("no free /24 in 10.244.0.0/16 (stale pods? `ip netns list`, `ip -4 addr`)")


# ---- I/O -----------------------------------------------------------------------------

def _run(argv: Sequence[str], stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    try:
        res = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise PodNetworkError(f"{argv[0]} not found (Debian: apt-get install iproute2 iptables util-linux)") from exc
    if check and res.returncode != 0:
        raise PodNetworkError(f"`{' '.join(argv)}` failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res


def prerequisites() -> str | None:
    """None when pods can be made here, else the precise reason they cannot."""
    if os.geteuid() != 0:
        return f"network namespaces and iptables need root (running as uid {os.geteuid()})"
    missing = [b for b in ("ip", "iptables", "iptables-restore", "iptables-save", "setpriv") if shutil.which(b) is None]
    if missing:
        return (f"{', '.join(missing)} not installed (Debian: apt-get install "
                f"{' '.join(sorted({'ip': 'iproute2', 'setpriv': 'util-linux'}.get(b, 'iptables') for b in missing))})")
    probe = f"{NETNS_PREFIX}probe-{os.getpid()}"
    try:
        res = _run(["ip", "netns", "add", probe], check=False)
        if res.returncode != 0:
            return f"cannot create a network namespace (`ip netns add` failed: {res.stderr.strip()}); an unprivileged container?"
        res = _run(["ip", "netns", "exec", probe, "iptables-save", "-t", "nat"], check=False)
        if res.returncode != 0:
            return f"iptables does not work inside a network namespace: {res.stderr.strip()}"
        res = _run(["ip", "-n", probe, "link", "add", "isthmusprobe0", "type", "veth", "peer", "name", "isthmusprobe1"],
                   check=False)
        if res.returncode != 0:
            return f"cannot create veth pairs: {res.stderr.strip()}"
    finally:
        _run(["ip", "netns", "del", probe], check=False)
    # The sidecar runs as the proxy uid (its traffic is not captured): it must reach this Python.
    res = _run(["setpriv", f"--reuid={PROXY_UID}", f"--regid={PROXY_UID}", "--clear-groups", "--",
                sys.executable, "-c", "import isthmus.proxy.agent"], check=False)
    if res.returncode != 0:
        return (f"uid {PROXY_UID} (the proxy's) cannot run {sys.executable} with isthmus: "
                f"{res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
    return None


def allocate(pods: Iterable[tuple[str, bool]], services: Iterable[str]) -> PodNetwork:
    """A fresh run (nothing is created yet): an unused /24, an unused run id and pod directory."""
    addresses = _run(["ip", "-4", "-o", "addr"]).stdout + _run(["ip", "-4", "route"]).stdout
    index = free_index(addresses)
    existing = _run(["ip", "netns", "list"]).stdout
    while True:
        run_id = secrets.token_hex(2)
        pod_dir = Path(tempfile.gettempdir()) / f"isthmus-pods-{run_id}"
        if f"{NETNS_PREFIX}{run_id}-" not in existing and not pod_dir.exists():
            break
    forward = BRIDGE_NF.exists() and BRIDGE_NF.read_text().strip() == "1"
    return plan_network(run_id, index, pods, services, str(pod_dir), forward_rule=forward)


def _forward_rule(net: PodNetwork) -> list[str]:
    return ["FORWARD", "-i", net.bridge, "-o", net.bridge, "-m", "comment", "--comment", f"isthmus {net.run_id}", "-j", "ACCEPT"]


def create(net: PodNetwork) -> None:
    """Bridge, then per pod: netns, veth into the bridge, address, lo, default route, hosts file
    and resolv.conf, pod directory and (capture pods) the iptables rules. Anything made is
    removed on failure."""
    os.mkdir(net.pod_dir, 0o755)  # fails if it exists: never reuse (or remove) what someone else made in /tmp
    try:
        os.chmod(net.pod_dir, 0o755)
        _run(["ip", "link", "add", net.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{net.host_ip}/24", "dev", net.bridge])
        _run(["ip", "link", "set", net.bridge, "up"])
        if net.forward_rule:  # bridged frames pass the root namespace's FORWARD chain (br_netfilter)
            _run(["iptables", "-I", *_forward_rule(net)])
        rules = iptables.build_rules(net.capture_rules())
        for pod in net.pods:
            _create_pod(net, pod, rules)
    except BaseException:
        teardown(net)
        raise


def _create_pod(net: PodNetwork, pod: Pod, rules: str) -> None:
    ns = pod.netns
    _run(["ip", "netns", "add", ns])
    _run(["ip", "link", "add", pod.veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    _run(["ip", "link", "set", pod.veth, "master", net.bridge, "up"])
    _run(["ip", "-n", ns, "addr", "add", f"{pod.ip}/24", "dev", "eth0"])
    _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    _run(["ip", "-n", ns, "link", "set", "lo", "up"])
    _run(["ip", "-n", ns, "route", "add", "default", "via", net.host_ip])
    etc = Path("/etc/netns") / ns  # `ip netns exec` bind-mounts these over /etc
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text(hosts_file(net, pod))
    (etc / "resolv.conf").write_text(RESOLV_CONF)
    home = net.pod_path(pod)
    home.mkdir()
    if pod.capture:
        os.chown(home, net.proxy_uid, net.proxy_uid)
        try:
            iptables.apply_rules(ns, rules)
        except iptables.CaptureError as exc:
            raise PodNetworkError(str(exc)) from None


def install_file(net: PodNetwork, pod: Pod, src: Path, name: str) -> Path:
    """Copy `src` into the pod directory, readable by the pod's proxy only (capture pods)."""
    dest = net.pod_path(pod) / name
    dest.write_bytes(src.read_bytes())
    os.chmod(dest, 0o400)
    if pod.capture:
        os.chown(dest, net.proxy_uid, net.proxy_uid)
    return dest


def teardown(net: PodNetwork) -> list[str]:
    """Remove what `create` made (whatever part exists); returns what could not be removed."""
    errors: list[str] = []

    def attempt(argv: list[str], missing: tuple[str, ...]) -> None:
        res = _run(argv, check=False)
        if res.returncode != 0 and not any(m in res.stderr for m in missing):
            errors.append(f"`{' '.join(argv)}`: {res.stderr.strip()}")

    present = set(_run(["ip", "netns", "list"], check=False).stdout.split())
    gone = ("Cannot find device", "does not exist", "No such file")
    for pod in net.pods:
        if pod.netns in present:
            if pod.capture:
                try:
                    iptables.remove_rules(pod.netns)
                except iptables.CaptureError as exc:
                    errors.append(str(exc))
            attempt(["ip", "link", "del", pod.veth], gone)
            attempt(["ip", "netns", "del", pod.netns], gone)
        else:
            attempt(["ip", "link", "del", pod.veth], gone)
        shutil.rmtree(Path("/etc/netns") / pod.netns, ignore_errors=True)
    if net.forward_rule:
        attempt(["iptables", "-D", *_forward_rule(net)], ("does a matching rule exist", "Bad rule", "No chain"))
    attempt(["ip", "link", "del", net.bridge], gone)
    shutil.rmtree(net.pod_dir, ignore_errors=True)
    return errors


def leftovers(net: PodNetwork) -> list[str]:
    """What of `net` still exists (for tests: empty after `teardown`)."""
    found = []
    names = set(_run(["ip", "netns", "list"], check=False).stdout.split())
    found += [f"netns {p.netns}" for p in net.pods if p.netns in names]
    links = _run(["ip", "-o", "link"], check=False).stdout
    found += [f"link {n}" for n in (net.bridge, *(p.veth for p in net.pods)) if re.search(rf"\d+: {re.escape(n)}[@:]", links)]
    found += [f"/etc/netns/{p.netns}" for p in net.pods if (Path("/etc/netns") / p.netns).exists()]
    if Path(net.pod_dir).exists():
        found.append(net.pod_dir)
    if net.forward_rule and f"isthmus {net.run_id}" in _run(["iptables-save", "-t", "filter"], check=False).stdout:
        found.append("FORWARD rule")
    return found

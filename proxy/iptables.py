"""Traffic capture rules for `--capture iptables`, laid out as istio-init (istio-iptables) does.

`build_rules(CaptureRules)` is pure: it returns `iptables-restore --noflush` input for the
nat table. Inbound TCP (except excluded ports) → ISTIO_INBOUND → ISTIO_IN_REDIRECT →
REDIRECT to 15006; the app's outbound TCP → ISTIO_OUTPUT → ISTIO_REDIRECT → REDIRECT to
15001; the proxy's own uid/gid, loopback traffic, the 127.0.0.6 inbound-passthrough
source and the excluded ports/CIDRs RETURN (are not captured). `without_capture(saved)`
is the pure inverse over `iptables-save -t nat` output. `apply_rules` / `remove_rules`
run them, in the current network namespace or in a named one (`ip netns exec`).
"""
from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass

INBOUND = "ISTIO_INBOUND"
REDIRECT = "ISTIO_REDIRECT"
IN_REDIRECT = "ISTIO_IN_REDIRECT"
OUTPUT = "ISTIO_OUTPUT"
CHAINS = (INBOUND, REDIRECT, IN_REDIRECT, OUTPUT)

PROXY_UID = 1337  # Istio's istio-proxy uid/gid
# Never captured inbound: ssh (as istio-iptables does for "*"), the proxy's admin, the
# agent's status/health port, Prometheus stats and the merged-metrics port.
DEFAULT_EXCLUDE_INBOUND = (15000, 15020, 15021, 15090)
# 127.0.0.6: the source address of the proxy's inbound connections to the app (clusters
# `inbound|PORT||` and InboundPassthroughClusterIpv4 bind it), never captured again.
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6/32"


class CaptureRulesError(ValueError):
    """A capture setting that cannot become a rule (names the flag and the fix)."""


@dataclass(frozen=True)
class CaptureRules:
    proxy_uid: int = PROXY_UID
    proxy_gid: int | None = PROXY_UID  # None: no gid rules
    inbound_capture_port: int = 15006
    outbound_capture_port: int = 15001
    inbound_ports: str = "*"  # "*" (all but the excluded), "" (none) or "9080,9443"
    exclude_inbound_ports: tuple[int, ...] = DEFAULT_EXCLUDE_INBOUND
    exclude_outbound_ports: tuple[int, ...] = ()
    exclude_outbound_cidrs: tuple[str, ...] = ()

    def validate(self) -> None:
        for flag, port in (("--inbound-capture-port", self.inbound_capture_port),
                           ("--outbound-capture-port", self.outbound_capture_port),
                           *(("--exclude-inbound-ports", p) for p in self.exclude_inbound_ports),
                           *(("--exclude-outbound-ports", p) for p in self.exclude_outbound_ports),
                           *(("--inbound-ports", p) for p in _ports(self.inbound_ports))):
            if not 0 < port < 65536:
                raise CaptureRulesError(f"{flag}: {port} is not a TCP port (1-65535)")
        for cidr in self.exclude_outbound_cidrs:
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise CaptureRulesError(f"--exclude-outbound-cidrs: {cidr!r} is not a CIDR (e.g. 10.96.0.0/12)") from None
            if net.version != 4:
                raise CaptureRulesError(f"--exclude-outbound-cidrs: {cidr!r}: only IPv4 is captured")


def _ports(spec: str) -> tuple[int, ...]:
    if spec in ("", "*"):
        return ()
    try:
        return tuple(int(p) for p in spec.split(",") if p.strip())
    except ValueError:
        raise CaptureRulesError(f"--inbound-ports: {spec!r}: use '*', '' or a comma-separated list of ports") from None


def parse_ports(spec: str, flag: str) -> tuple[int, ...]:
    """'15090,15021' → (15090, 15021); '' → ()."""
    try:
        return tuple(int(p) for p in spec.split(",") if p.strip())
    except ValueError:
        raise CaptureRulesError(f"{flag}: {spec!r}: use a comma-separated list of ports") from None


def parse_cidrs(spec: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in spec.split(",") if c.strip())


def _owner_rules(kind: str, ident: int) -> list[str]:
    """istio-iptables' three rules per proxy uid (and gid)."""
    return [
        # The proxy calling its own pod IP (app → VIP → this pod): the inbound side captures it.
        f"-A {OUTPUT} -o lo ! -d 127.0.0.1/32 -m owner --{kind}-owner {ident} -j {IN_REDIRECT}",
        # The app calling itself on lo: not through the proxy.
        f"-A {OUTPUT} -o lo -m owner ! --{kind}-owner {ident} -j RETURN",
        # Everything else the proxy sends leaves as is (no loop back into 15001).
        f"-A {OUTPUT} -m owner --{kind}-owner {ident} -j RETURN",
    ]


def build_rules(cfg: CaptureRules) -> str:
    """`iptables-restore --noflush` input for the nat table (IPv4)."""
    cfg.validate()
    lines = ["*nat", *(f":{c} - [0:0]" for c in CHAINS)]
    lines.append(f"-A {REDIRECT} -p tcp -j REDIRECT --to-ports {cfg.outbound_capture_port}")
    lines.append(f"-A {IN_REDIRECT} -p tcp -j REDIRECT --to-ports {cfg.inbound_capture_port}")
    if cfg.inbound_ports:
        lines.append(f"-A PREROUTING -p tcp -j {INBOUND}")
        if cfg.inbound_ports == "*":
            for port in dict.fromkeys((22, *cfg.exclude_inbound_ports)):
                lines.append(f"-A {INBOUND} -p tcp --dport {port} -j RETURN")
            lines.append(f"-A {INBOUND} -p tcp -j {IN_REDIRECT}")
        else:
            for port in _ports(cfg.inbound_ports):
                lines.append(f"-A {INBOUND} -p tcp --dport {port} -j {IN_REDIRECT}")
    lines.append(f"-A OUTPUT -p tcp -j {OUTPUT}")
    for port in cfg.exclude_outbound_ports:
        lines.append(f"-A {OUTPUT} -p tcp --dport {port} -j RETURN")
    lines.append(f"-A {OUTPUT} -o lo -s {INBOUND_PASSTHROUGH_SOURCE} -j RETURN")
    lines += _owner_rules("uid", cfg.proxy_uid)
    if cfg.proxy_gid is not None:
        lines += _owner_rules("gid", cfg.proxy_gid)
    lines.append(f"-A {OUTPUT} -d 127.0.0.1/32 -j RETURN")
    for cidr in cfg.exclude_outbound_cidrs:
        lines.append(f"-A {OUTPUT} -d {ipaddress.ip_network(cidr, strict=False)} -j RETURN")
    lines.append(f"-A {OUTPUT} -j {REDIRECT}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def without_capture(saved: str) -> str:
    """`iptables-save -t nat` output minus our chains and every rule that jumps to them:
    the nat table as it was before `build_rules` (restore it without --noflush)."""
    out = []
    for line in saved.splitlines():
        if line.startswith(":") and line[1:].split(" ", 1)[0] in CHAINS:
            continue
        if line.startswith("-A "):
            words = line.split()
            if words[1] in CHAINS or any(w in CHAINS for w in words[2:]):
                continue
        out.append(line)
    return "\n".join(out) + "\n"


def has_capture(saved: str) -> bool:
    return any(line.startswith(f":{c} ") for line in saved.splitlines() for c in CHAINS)


# ---- I/O ---------------------------------------------------------------------------

class CaptureError(RuntimeError):
    """iptables failed; the message carries the command and its stderr."""


def _in_netns(netns: str | None, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv] if netns else argv


def _run(netns: str | None, argv: list[str], stdin: str | None = None) -> str:
    cmd = _in_netns(netns, argv)
    try:
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise CaptureError(f"{cmd[0]} not found: install iptables (Debian: apt-get install iptables) and iproute2") from exc
    if res.returncode != 0:
        where = f" in network namespace {netns}" if netns else ""
        raise CaptureError(f"{' '.join(argv)}{where} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


def apply_rules(netns: str | None, text: str) -> None:
    """Install `text` (from `build_rules`); an earlier capture in that namespace is replaced."""
    remove_rules(netns)
    _run(netns, ["iptables-restore", "--noflush"], stdin=text)


def remove_rules(netns: str | None) -> bool:
    """Remove our chains and the jumps to them; other nat rules stay. True if any were there."""
    saved = _run(netns, ["iptables-save", "-t", "nat"])
    if not has_capture(saved):
        return False
    _run(netns, ["iptables-restore", "-T", "nat"], stdin=without_capture(saved))
    return True


def saved_rules(netns: str | None) -> str:
    return _run(netns, ["iptables-save", "-t", "nat"])

"""The run directory of a local mesh (`isthmus up`): state, logs and the SQLite store.

`state.json` records each component's pid, addresses and log file so `isthmus status`,
`isthmus down` and clients (`isthmus apply` finding galley) agree on one source.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEFAULT_GALLEY = "127.0.0.1:9901"


def run_dir() -> Path:
    return Path(os.environ.get("ISTHMUS_RUN_DIR") or Path.home() / ".isthmus" / "run")


def state_path(base: Path | None = None) -> Path:
    return (base or run_dir()) / "state.json"


def load_state(base: Path | None = None) -> dict[str, Any] | None:
    try:
        return json.loads(state_path(base).read_text())
    except (OSError, ValueError):
        return None


def save_state(state: dict[str, Any], base: Path | None = None) -> None:
    path = state_path(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def galley_address(explicit: str | None = None) -> tuple[str, str]:
    """(address, where it came from): --galley, $ISTHMUS_GALLEY, the running mesh, or the default."""
    if explicit:
        return explicit, "--galley"
    env = os.environ.get("ISTHMUS_GALLEY")
    if env:
        return env, "ISTHMUS_GALLEY"
    state = load_state()
    if state:
        comp = (state.get("components") or {}).get("galley") or {}
        if comp.get("address") and pid_alive(int(comp.get("pid", 0) or 0)):
            return comp["address"], f"the running mesh ({state_path()})"
    return DEFAULT_GALLEY, "default"

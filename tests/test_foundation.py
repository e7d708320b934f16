"""The install itself: every module imports, generated code is fresh, one console script."""
from __future__ import annotations

import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import isthmus
from tests.conftest import REPO, corpus_path

PARTS = ["shared", "galley", "pilot", "citadel", "gateway", "proxy", "cli"]


def all_modules() -> list[str]:
    names = []
    for part in PARTS:
        pkg = importlib.import_module(f"isthmus.{part}")
        names.append(pkg.__name__)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}."):
            names.append(info.name)
    return names


@pytest.mark.parametrize("module", all_modules())
def test_every_module_imports(module):
    importlib.import_module(module)


def test_no_top_level_modules_leak_into_site_packages():
    site = Path(isthmus.__file__).resolve().parent.parent
    for leaked in ("shared", "proxy", "services", "galley", "pilot", "citadel"):
        spec = importlib.util.find_spec(leaked)
        assert spec is None or "site-packages" not in str(spec.origin or ""), f"top-level {leaked!r} installed"


def test_generated_protos_are_fresh(tmp_path):
    subprocess.run(["bash", str(REPO / "tools/gen_protos.sh"), str(tmp_path)], check=True, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    for generated in sorted(tmp_path.iterdir()):
        checked_in = REPO / "shared/protos" / generated.name
        assert checked_in.exists(), f"{generated.name} is not checked in: run `make protos`"
        assert checked_in.read_text() == generated.read_text(), f"{generated.name} is stale: run `make protos`"


def test_schema_and_types_are_fresh():
    crd = corpus_path("istio-crds", "crd-all.gen.yaml")
    schema = subprocess.run([sys.executable, str(REPO / "tools/gen_schema.py"), str(crd)], capture_output=True, text=True, check=True).stdout
    assert schema == (REPO / "shared/config/schema/crds.json").read_text(), "crds.json is stale: run `make schema`"
    types = subprocess.run([sys.executable, str(REPO / "tools/gen_types.py")], capture_output=True, text=True, check=True).stdout
    assert types == (REPO / "shared/config/types.py").read_text(), "types.py is stale: run `make schema`"


def test_one_console_script_with_service_subcommands():
    exe = shutil.which("isthmus", path=str(Path(sys.executable).parent))
    assert exe, "the isthmus console script is not installed"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for sub in ("galley", "citadel", "validate", "apply", "get", "delete", "analyze", "up"):
        assert sub in out

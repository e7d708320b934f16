"""Maps the architecture's source folders onto one `isthmus.*` package tree.

Every import is `isthmus.<part>`; nothing else lands in site-packages.
"""
from pathlib import Path

from setuptools import find_packages, setup

ROOTS = {
    "isthmus": "isthmus",
    "isthmus.shared": "shared",
    "isthmus.galley": "services/galley",
    "isthmus.pilot": "services/pilot",
    "isthmus.citadel": "services/citadel",
    "isthmus.gateway": "services/gateway",
    "isthmus.istiod": "services/istiod",
    "isthmus.proxy": "proxy",
    "isthmus.samples": "samples",
}

packages: list[str] = []
package_dir: dict[str, str] = {}
for pkg, folder in ROOTS.items():
    if not (Path(folder) / "__init__.py").exists():
        continue
    package_dir[pkg] = folder
    packages.append(pkg)
    for sub in find_packages(where=folder, exclude=["tests", "tests.*"]):
        if pkg == "isthmus" and sub.split(".")[0] in {r.split(".")[1] for r in ROOTS if "." in r}:
            continue
        packages.append(f"{pkg}.{sub}")

setup(packages=packages, package_dir=package_dir)

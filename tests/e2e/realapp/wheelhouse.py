"""The wheelhouse the application's images install their Python packages from, filled by pip on the host.

The images are built without PyPI: every component's `pip install -r
requirements.txt` resolves against this folder only (the `python:3.11-slim`
base sets PIP_NO_INDEX and PIP_FIND_LINKS, tests/e2e/realapp/appimages.py).
pins/<component>.txt records what each requirements.txt resolved to on PyPI
for Python 3.11 on x86_64, so a run months later installs the same
distributions; pip fetches exactly those (`pip wheel --no-deps`: a binary
wheel where PyPI has one, otherwise the sdist built into a wheel here, e.g.
django-allauth 0.58.2, which PyPI has only as a source archive).

The host is the same platform as the image (Debian bookworm, glibc 2.36,
CPython 3.11, x86_64), which is what lets pip build those few sdists here.
The folder is named by the hash of the pins and kept in the cache folder.

setuptools is what `pip install --upgrade setuptools` gives today (84.2.1 when the pins were last
resolved): no release since 81.0 ships pkg_resources, which djangorestframework-simplejwt 5.3.0
(components/backend/requirements.txt) imports, so the backend built here meets that defect as a user's
build does, and the generated settings overlay must work around it (docs/application.md).

kombu is the exception, held at 5.6.2: celery 5.3.4 accepts any kombu 5.x, and kombu 5.7.0 (2026-11-03)
refuses the redis-py 5.0.1 both requirements files pin, so Celery cannot start; no deployment can
change an installed library, so docs/application.md tells users to add the same pin to their checkout
(`explain` lists it as an upstream defect), and the images here are built as such a checkout builds.
`--resolve` keeps the hold (HELD).

To re-resolve after the application's requirements change:
`python -m tests.e2e.realapp.wheelhouse --resolve` (rewrites pins/*.txt).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.e2e.realapp.rootfs import cache_folder

PINS = Path(__file__).resolve().parent / "pins"
APPLICATION = Path(__file__).resolve().parents[2] / "reference" / "omnivoip-app" / "components"
# Component -> its requirements.txt, relative to components/.
COMPONENTS = {
    "backend": "backend/requirements.txt",
    "websockets": "websockets/requirements.txt",
    "dialer-api": "dialer/api/requirements.txt",
    "dialer-worker": "dialer/worker/requirements.txt",
}
# Markers in the components' requirements that Debian's python3.11 (3.11.2) meets and a later 3.11 does not.
EXTRA_PINS = ("debian-python",)
# Pins a user must add to the checkout today (docs/application.md, backend item 7); resolve() keeps them.
HELD = {"kombu": "kombu==5.6.2"}
# The backend's Dockerfile upgrades these first; the offline build needs them too.
BOOTSTRAP = ("pip", "setuptools", "wheel")
PIP_TIMEOUT_SECONDS = 1800


class WheelhouseUnavailable(RuntimeError):
    """The wheelhouse cannot be filled here (wrong Python, PyPI unreachable)."""


def pinned_requirements() -> list[str]:
    """Every `name==version` of every component, once, sorted."""
    pins: set[str] = set()
    for component in (*COMPONENTS, *EXTRA_PINS):
        for line in (PINS / f"{component}.txt").read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                pins.add(line)
    return sorted(pins)


def wheelhouse_hash() -> str:
    return hashlib.sha256("\n".join(pinned_requirements()).encode()).hexdigest()[:16]


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    # --isolated: PyPI itself, not whatever index or find-links this machine's pip.conf adds.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pip", "--isolated", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=PIP_TIMEOUT_SECONDS,
    )


def _require_target_python() -> None:
    if sys.version_info[:2] != (3, 11) or sys.platform != "linux" or os.uname().machine != "x86_64":
        raise WheelhouseUnavailable(
            f"the wheelhouse is built for CPython 3.11 on Linux x86_64 (the image's Python); this is {sys.version.split()[0]} on {sys.platform}/{os.uname().machine}"
        )


def wheelhouse() -> Path:
    """The filled wheelhouse folder (cached by the hash of the pins); fills it with pip the first time."""
    folder = cache_folder() / f"wheelhouse-{wheelhouse_hash()}"
    if folder.is_dir():
        return folder
    _require_target_python()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wheelhouse-", dir=folder.parent) as staging:
        target = Path(staging) / "wheels"
        # One pip run per component: pip refuses two versions of one name in a single run (anyio 3 and 4).
        for component in (*COMPONENTS, *EXTRA_PINS):
            result = _pip("wheel", "--quiet", "--no-deps", "--requirement", str(PINS / f"{component}.txt"), "--wheel-dir", str(target))
            if result.returncode != 0:
                raise WheelhouseUnavailable(
                    f"pip could not fill the wheelhouse from PyPI:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
                )
        names = sorted(path.name for path in target.iterdir())
        if len(names) != len(pinned_requirements()):
            raise WheelhouseUnavailable(f"expected {len(pinned_requirements())} wheels, pip wrote {len(names)}: {names}")
        target.rename(folder)
    return folder


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve() -> None:
    """Re-resolve every component's requirements on PyPI and rewrite pins/*.txt (a maintainer's step, not a test's)."""
    _require_target_python()
    for component, requirements in COMPONENTS.items():
        with tempfile.TemporaryDirectory() as folder:
            result = _pip("wheel", "--quiet", "--requirement", str(APPLICATION / requirements), *BOOTSTRAP, "--wheel-dir", folder)
            if result.returncode != 0:
                raise WheelhouseUnavailable(result.stderr[-4000:])
            pins = sorted(
                (f"{_canonical(path.name.split('-')[0])}=={path.name.split('-')[1]}" for path in Path(folder).glob("*.whl")), key=str.lower
            )
            pins = [HELD.get(pin.split("==")[0], pin) for pin in pins]
        header = (
            f"# Every distribution components/{requirements} resolved to on PyPI for Python 3.11 (x86_64),\n"
            "# with pip, setuptools and wheel (the backend's Dockerfile upgrades them). tests/e2e/realapp/wheelhouse.py\n"
            "# downloads exactly these into the wheelhouse the images install from.\n"
        )
        (PINS / f"{component}.txt").write_text(header + "\n".join(pins) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--resolve"]:
        resolve()
    else:
        print(wheelhouse())

"""tools/version.py: the check passes on this checkout, fails naming the file when one manifest
differs, and `set` brings every manifest to a new version on a copy of the repository."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "version.py"
# What the tool reads: the manifests, never the sources.
FILES = [
    "Cargo.toml",
    "Cargo.lock",
    "pyproject.toml",
    "CHANGELOG.md",
    "node/package.json",
    "node/package-lock.json",
    "node/native.js",
]


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TOOL), "--root", str(root), *args], capture_output=True, text=True)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The manifests of this checkout, laid out as in the repository."""
    cargo = (ROOT / "Cargo.toml").read_text()
    members = [line.strip().strip('",') for line in cargo.split("members = [", 1)[1].split("]", 1)[0].split(",")]
    for rel in FILES + [f"{m}/Cargo.toml" for m in members if m]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    for package in (ROOT / "node" / "npm").glob("*/package.json"):
        target = tmp_path / package.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(package, target)
    return tmp_path


def version_of(root: Path) -> str:
    version: str = json.loads((root / "node" / "package.json").read_text())["version"]
    return version


def test_this_checkout_agrees() -> None:
    result = run(ROOT)
    assert result.returncode == 0, result.stderr
    assert "agree" in result.stdout


def test_a_platform_package_that_differs_fails_the_check(copy: Path) -> None:
    packages = sorted((copy / "node" / "npm").glob("*/package.json"))
    assert packages, "no node/npm/<platform>/package.json"
    data = json.loads(packages[0].read_text())
    data["version"] = "9.9.9"
    packages[0].write_text(json.dumps(data, indent=2) + "\n")
    result = run(copy)
    assert result.returncode == 1
    assert f"{packages[0].relative_to(copy)}: version 9.9.9 != {version_of(copy)}" in result.stderr


def test_the_main_npm_package_that_differs_fails_the_check(copy: Path) -> None:
    path = copy / "node" / "package.json"
    path.write_text(path.read_text().replace(f'"version": "{version_of(copy)}"', '"version": "0.0.1"', 1))
    result = run(copy)
    assert result.returncode == 1
    assert "node/package.json: version 0.0.1" in result.stderr


def test_a_path_dependency_without_its_version_fails_the_check(copy: Path) -> None:
    path = copy / "Cargo.toml"
    text = path.read_text()
    path.write_text(
        text.replace(
            'servicetitan-sandbox = { path = "crates/servicetitan-sandbox", version = ',
            'servicetitan-sandbox = { path = "crates/servicetitan-sandbox", x = ',
        )
    )
    result = run(copy)
    assert result.returncode == 1
    assert "servicetitan-sandbox has no version" in result.stderr


def test_a_static_python_version_fails_the_check(copy: Path) -> None:
    path = copy / "pyproject.toml"
    path.write_text(path.read_text().replace('dynamic = ["version"]', 'version = "0.1.0"'))
    result = run(copy)
    assert result.returncode == 1
    assert 'dynamic = ["version"]' in result.stderr and "must not write a version" in result.stderr


def test_set_writes_the_version_everywhere(copy: Path) -> None:
    result = run(copy, "set", "1.2.3-rc.1")
    assert result.returncode == 0, result.stderr
    result = run(copy)
    # Only the CHANGELOG section is left to the person releasing.
    assert result.stderr.splitlines()[:-1] == ["CHANGELOG.md: no `## [1.2.3-rc.1]` section"]
    assert version_of(copy) == "1.2.3-rc.1"
    assert 'version = "1.2.3-rc.1"' in (copy / "Cargo.toml").read_text()


def test_set_refuses_what_is_not_semver(copy: Path) -> None:
    result = run(copy, "set", "v1.2")
    assert result.returncode != 0
    assert "not a semver version" in result.stderr


def test_a_napi_target_without_its_platform_package_fails_the_check(copy: Path) -> None:
    shutil.rmtree(copy / "node" / "npm" / "linux-arm64-musl")
    result = run(copy)
    assert result.returncode == 1
    assert (
        "node/npm/linux-arm64-musl/package.json is missing for napi target aarch64-unknown-linux-musl" in result.stderr
    )


def test_a_loader_generated_for_another_version_fails_the_check(copy: Path) -> None:
    path = copy / "node" / "native.js"
    path.write_text(path.read_text().replace(f"expected {version_of(copy)} but got", "expected 0.0.9 but got", 1))
    result = run(copy)
    assert result.returncode == 1
    assert "node/native.js: checks for version 0.0.9" in result.stderr

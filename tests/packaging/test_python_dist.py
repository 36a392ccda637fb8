"""The Python release artifacts as a user gets them: a manylinux wheel that installs and runs the
README's quick start with no Rust toolchain on PATH, and an sdist that builds.

scripts/test-packaging.sh builds the artifacts once and points PACKAGING_DIST at them:
  $PACKAGING_DIST/wheel/*.whl        maturin build --release --zig --compatibility manylinux2014
  $PACKAGING_DIST/sdist/*.tar.gz     maturin sdist
  $PACKAGING_DIST/sdist-wheel/*.whl  pip wheel of that sdist
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import version as versions  # noqa: E402

VERSION = versions.workspace_version(ROOT)
# The engine, the sandbox and the `servicetitan` command (with its Parquet writer): 6.0 MiB at
# 0.1.0 (3.6 MiB before the command). The bound catches an unstripped or doubled build.
MAX_WHEEL_BYTES = 8 * 1024 * 1024
QUICKSTART = Path(__file__).with_name("readme_quickstart.py")


def dist(kind: str, pattern: str) -> Path:
    base = os.environ.get("PACKAGING_DIST")
    if not base:
        pytest.fail("PACKAGING_DIST is not set: run scripts/test-packaging.sh python")
    found = sorted((Path(base).resolve() / kind).glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {base}/{kind}, found {found}"
    return found[0]


BIN = "Scripts" if os.name == "nt" else "bin"


def without_rust(path: str) -> str:
    """PATH less every folder that holds cargo or rustc."""
    keep = [d for d in path.split(os.pathsep) if d and not any(shutil.which(t, path=d) for t in ("cargo", "rustc"))]
    return os.pathsep.join(keep)


@pytest.fixture(scope="module")
def wheel() -> Path:
    return dist("wheel", "*.whl")


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh virtualenv with the wheel installed, as `pip install servicetitan` would leave it."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": without_rust(os.environ["PATH"])}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [str(venv / BIN / "python"), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True,
        env=env,
    )
    return venv


def test_the_wheel_is_abi3_for_manylinux_2_17(wheel: Path) -> None:
    # One wheel for every CPython >= 3.9, on glibc >= 2.17 (CentOS 7, Amazon Linux 2, Ubuntu 18.04+).
    tags = re.fullmatch(rf"servicetitan-{re.escape(VERSION)}-cp39-abi3-(.+)\.whl", wheel.name)
    assert tags, wheel.name
    assert sorted(tags.group(1).split(".")) == ["manylinux2014_x86_64", "manylinux_2_17_x86_64"], wheel.name


def test_auditwheel_accepts_the_wheel(wheel: Path) -> None:
    auditwheel = Path(sys.executable).parent / "auditwheel"
    out = subprocess.run([str(auditwheel), "show", str(wheel)], capture_output=True, text=True, check=True).stdout
    assert re.search(r'consistent with the following platform tag:\s*"manylinux_2_17_', out), out
    # Nothing for auditwheel to bundle: the extension links only the C library.
    libraries = set(re.findall(r"(lib[\w.+-]+\.so[\d.]*)\s+with\s+versions", out))
    assert libraries <= {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "libgcc_s.so.1", "librt.so.1"}, out


def test_the_wheel_is_small_and_stripped(wheel: Path) -> None:
    assert wheel.stat().st_size <= MAX_WHEEL_BYTES, f"{wheel.name}: {wheel.stat().st_size} bytes"
    with zipfile.ZipFile(wheel) as zf:
        so = [n for n in zf.namelist() if n.endswith(".so")]
        assert so == ["servicetitan/_native.abi3.so"], so
        data = zf.read(so[0])
    from elftools.elf.elffile import ELFFile  # auditwheel's own ELF reader

    sections = {s.name for s in ELFFile(io.BytesIO(data)).iter_sections()}
    assert not {s for s in sections if s.startswith(".debug_")}, sorted(sections)
    assert ".symtab" not in sections, "the extension still has its symbol table"


def test_the_wheel_carries_metadata_and_licences(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(f"servicetitan-{VERSION}.dist-info/METADATA").decode()
    assert f"\nVersion: {VERSION}\n" in metadata
    assert "\nRequires-Python: >=3.9" in metadata
    assert "\nLicense-Expression: MIT OR Apache-2.0\n" in metadata
    for licence in ("LICENSE-MIT", "LICENSE-APACHE"):
        assert f"servicetitan-{VERSION}.dist-info/licenses/{licence}" in names, names
    assert "servicetitan/py.typed" in names
    assert "servicetitan/_native.pyi" in names


def test_the_quick_start_runs_from_the_installed_wheel_without_rust(user_venv: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": without_rust(os.environ["PATH"])}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    assert shutil.which("cargo", path=env["PATH"]) is None and shutil.which("rustc", path=env["PATH"]) is None
    python = str(user_venv / BIN / "python")
    # From an empty folder, so that nothing of the checkout can be imported instead.
    where = subprocess.run(
        [python, "-c", "import servicetitan as st; print(st.__file__); print(st.__version__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where[0].startswith(str(user_venv)), where
    assert where[1] == VERSION
    result = subprocess.run(
        [python, str(QUICKSTART), str(ROOT / "README.md")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "customers on page 1" in result.stdout and "404" in result.stdout, result.stdout


def test_the_console_scripts_run(user_venv: Path) -> None:
    env = {**os.environ, "PATH": without_rust(os.environ["PATH"])}
    command = str(user_venv / BIN / "servicetitan")
    result = subprocess.run([command, "--help"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Examples:" in result.stdout and "servicetitan call" in result.stdout, result.stdout
    result = subprocess.run([command, "streams"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 54, result.stdout
    # The Singer name runners such as Meltano start: `servicetitan tap`.
    result = subprocess.run(
        [str(user_venv / BIN / "tap-servicetitan"), "--about"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "discover" in json.loads(result.stdout)["capabilities"]


def test_the_sdist_holds_what_a_build_needs() -> None:
    sdist = dist("sdist", "*.tar.gz")
    assert sdist.name == f"servicetitan-{VERSION}.tar.gz"
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    for needed in (
        "pyproject.toml",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "Cargo.toml",
        "Cargo.lock",
        "bindings/python/Cargo.toml",
        "crates/servicetitan/src/lib.rs",
        "crates/servicetitan-sandbox/catalogue.json",
        "python/servicetitan/__init__.py",
    ):
        assert needed in names, f"{needed} not in {sdist.name}"
    # Development-only trees stay out.
    assert not [n for n in names if n.startswith(("node/", "target/", "python/tests/"))]


def test_the_sdist_builds_a_wheel() -> None:
    built = dist("sdist-wheel", "*.whl")
    assert built.name.startswith(f"servicetitan-{VERSION}-cp39-abi3-")
    with zipfile.ZipFile(built) as zf:
        assert "servicetitan/_native.abi3.so" in zf.namelist()

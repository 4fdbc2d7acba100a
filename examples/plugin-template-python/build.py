"""Builds this folder's Python plugin into a WebAssembly component.

1. finds the WIT: `wit/` holds this plugin's world and, in `wit/deps/`, the
   runner's contract and the WASI packages it names. In the runner's own
   repository, where those are shared, pyproject.toml names them
   (`contract-wit`, `wasi-wit` in `[tool.jobrunner]`) and they are
   assembled in `build/wit`;
2. writes Python bindings of that world to `build/bindings`, for editors
   and type checkers (the build makes its own);
3. runs componentize-py on the app module and writes `dist/NAME.wasm`.

A Python component embeds the interpreter and takes tens of seconds to
build, so the result is kept with the hash of everything that went into it
(the sources, the WIT, pyproject.toml, this script and the componentize-py
version) in `dist/NAME.wasm.sha256`: an unchanged plugin is not rebuilt.
`--force` rebuilds anyway.

Run it with the Python that has componentize-py installed
(`pip install -r requirements.txt`).
"""

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path.cwd()
# componentize-py installs a console script; calling its entry point through
# this interpreter finds it whether or not the venv's bin is on PATH.
COMPONENTIZE_PY = [sys.executable, "-c", "import sys; from componentize_py import script; sys.exit(script())"]


def files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def main() -> int:
    project = tomllib.loads((HERE / "pyproject.toml").read_text())
    name = project["project"]["name"]
    cfg = project.get("tool", {}).get("jobrunner", {})
    app = cfg.get("app", "app")
    world = cfg.get("world", "plugin")
    python_path = [HERE / p for p in cfg.get("python-path", ["src"])]
    world_wit = HERE / cfg.get("world-wit", "wit")
    # Both or neither: where the contract and the WASI packages are, when
    # they are not already in `world-wit`'s `deps/`.
    if ("contract-wit" in cfg) != ("wasi-wit" in cfg):
        print("pyproject.toml: set both `contract-wit` and `wasi-wit` in [tool.jobrunner], or neither", file=sys.stderr)
        return 1
    contract_wit = HERE / cfg["contract-wit"] if "contract-wit" in cfg else None
    wasi_wit = HERE / cfg["wasi-wit"] if "wasi-wit" in cfg else None
    out = HERE / "dist" / f"{name}.wasm"
    stamp = out.with_name(out.name + ".sha256")

    try:
        tool_version = importlib.metadata.version("componentize-py")
    except importlib.metadata.PackageNotFoundError:
        print("componentize-py is not installed: pip install -r requirements.txt", file=sys.stderr)
        return 1
    digest = hashlib.sha256()
    inputs = [p for d in python_path for p in files_under(d)]
    inputs += files_under(world_wit)
    if contract_wit is not None:
        inputs += files_under(contract_wit) + files_under(wasi_wit)
    inputs += [HERE / "pyproject.toml", Path(__file__).resolve()]
    for path in inputs:
        digest.update(str(path.relative_to(HERE) if path.is_relative_to(HERE) else path.name).encode())
        digest.update(b"\0" + path.read_bytes() + b"\0")
    digest.update(f"componentize-py {tool_version}".encode())
    digest = digest.hexdigest()
    force = "--force" in sys.argv[1:]
    if not force and out.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        print(f"{out.relative_to(HERE)} is up to date (sources unchanged, {digest[:12]})")
        return 0

    started = time.monotonic()
    if contract_wit is None:
        # A plugin of its own: `wit/` holds its world and `wit/deps/`.
        wit = world_wit
    else:
        # In the runner's repository: the contract and WASI are shared.
        wit = HERE / "build" / "wit"
        shutil.rmtree(wit, ignore_errors=True)
        shutil.copytree(world_wit, wit)
        shutil.copytree(contract_wit, wit / "deps" / "jobrunner-plugin")
        for package in sorted(wasi_wit.glob("*.wit")):
            shutil.copy(package, wit / "deps" / package.name)

    bindings = HERE / "build" / "bindings"
    shutil.rmtree(bindings, ignore_errors=True)
    run([*COMPONENTIZE_PY, "-q", "-d", str(wit), "-w", world, "bindings", str(bindings)])

    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [arg for p in python_path for arg in ("-p", str(p))]
    run([*COMPONENTIZE_PY, "-q", "-d", str(wit), "-w", world, "componentize", app, *paths, "-o", str(out)])
    stamp.write_text(digest + "\n")
    size = out.stat().st_size / (1 << 20)
    print(f"built {out.relative_to(HERE)}: {size:.1f} MiB in {time.monotonic() - started:.1f} s")
    return 0


def run(args: list[str]) -> None:
    result = subprocess.run(args, cwd=HERE)
    if result.returncode != 0:
        sys.exit(f"componentize-py failed ({result.returncode}): see above")


if __name__ == "__main__":
    sys.exit(main())

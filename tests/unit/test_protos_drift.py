"""CI fails when the generated package lapor/v1 drifts from the .proto contracts (DESIGN §3):
a service would otherwise speak a protocol nobody can read in protos/."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
GENERATED = ROOT / "lapor" / "v1"
FIX = "run `make protos` and commit the regenerated lapor/v1"


def _proto_files() -> list[Path]:
    found = sorted((PROTOS / "lapor" / "v1").glob("*.proto"))
    assert found, f"no .proto files under {PROTOS / 'lapor' / 'v1'}"
    return found


def _committed() -> dict[str, Path]:
    return {p.name: p for p in GENERATED.iterdir()
            if p.is_file() and "_pb2" in p.name and p.suffix in (".py", ".pyi")}


def test_generated_code_is_what_protoc_makes_from_the_protos(tmp_path):
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    command = [sys.executable, "-m", "grpc_tools.protoc", "-I", "protos", f"-I{well_known}",
               f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
               f"--grpc_python_out={tmp_path}",
               *[str(p.relative_to(ROOT)) for p in _proto_files()]]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"protoc failed:\n{result.stderr}"

    fresh = {p.name: p for p in (tmp_path / "lapor" / "v1").iterdir()}
    committed = _committed()
    missing = sorted(set(fresh) - set(committed))
    drifted = sorted(name for name in set(fresh) & set(committed)
                     if fresh[name].read_bytes() != committed[name].read_bytes())
    assert not missing, f"lapor/v1 lacks {', '.join(missing)}: {FIX}"
    assert not drifted, (f"lapor/v1 differs from what protos/ generates in "
                         f"{', '.join(drifted)}: {FIX}")


def test_no_generated_module_outlives_its_proto():
    protos = {p.stem for p in _proto_files()}
    orphans = sorted(name for name in _committed() if name.split("_pb2")[0] not in protos)
    assert not orphans, (f"lapor/v1/{{{', '.join(orphans)}}} have no .proto in "
                         f"protos/lapor/v1: delete them (or restore the .proto), then {FIX}")


def test_generated_package_is_importable():
    assert (ROOT / "lapor" / "__init__.py").is_file()
    assert (GENERATED / "__init__.py").is_file()

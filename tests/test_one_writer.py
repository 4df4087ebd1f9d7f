"""Every file the project writes goes through `visionzoo.files` (temporary file, fsync, rename): no module
beside it opens a file for writing, renames one, or hands a path to a library's own writer."""

from __future__ import annotations

import ast
from pathlib import Path

import visionzoo

SOURCE = Path(visionzoo.__file__).parent
WRITING_METHODS = {"write_text", "write_bytes", "savefig", "rename", "replace", "to_csv", "save_file"}
WRITING_FUNCTIONS = {("os", "replace"), ("os", "rename"), ("np", "save"), ("np", "savetxt"), ("torch", "save"),
                     ("onnx", "save"), ("shutil", "copyfile"), ("shutil", "move")}  # fmt: skip


def _in_memory(call: ast.Call) -> bool:
    """np.savetxt(buffer, ...), torch.save(state, buffer): writes into an io buffer that the writer then saves."""
    return any(isinstance(a, ast.Name) and a.id.endswith("buffer") for a in call.args)


def _writes(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name) and func.id == "open":
        mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
        if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
            return f"open(..., {mode.value!r})"
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        if (owner, func.attr) in WRITING_FUNCTIONS and not _in_memory(call):
            return f"{owner}.{func.attr}"
        if (
            func.attr in WRITING_METHODS
            and owner not in {"os", "np", "torch", "str"}
            and call.args
            and not _in_memory(call)
        ):
            if func.attr == "replace" and not (owner or "").endswith(("path", "tmp")):
                return None  # str.replace / dataclass .replace, not Path.replace
            return f".{func.attr}()"
    return None


def test_no_module_but_files_writes_a_file() -> None:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.name == "files.py" and path.parent == SOURCE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (what := _writes(node)):
                found.append(f"{path.relative_to(SOURCE)}:{node.lineno} {what}")
    assert not found, "write these through visionzoo.files:\n" + "\n".join(found)


def test_the_check_finds_a_direct_write() -> None:
    tree = ast.parse("open(p, 'w')\nPath(p).write_text('x')\nos.replace(a, b)\nnp.save(p, x)\nnp.savetxt(buffer, x)")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [_writes(c) for c in calls if _writes(c)] == ["open(..., 'w')", ".write_text()", "os.replace", "np.save"]


def test_the_recipes_interpolations_are_the_ones_transforms_know() -> None:
    from visionzoo.data.transforms import INTERPOLATIONS
    from visionzoo.recipes.base import Interpolation, choices

    assert choices(Interpolation) == tuple(INTERPOLATIONS)

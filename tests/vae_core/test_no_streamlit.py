"""The layers (CONTRIBUTING.md): vae_core is a plain library, so no module in it may import streamlit, directly or
at import time, nor the layers above it (ui, pages, reports); jobs/ sits above vae_core and below ui, so it may
not import ui, pages or streamlit either."""
import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "vae_core"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def test_no_module_in_vae_core_imports_streamlit():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 9, "vae_core's modules were not found"
    above = {"streamlit", "ui", "pages", "reports"}
    offenders = {str(f.relative_to(ROOT)): sorted(m for m in imported_modules(f) if m.split(".")[0] in above)
                 for f in files}
    assert not {f: m for f, m in offenders.items() if m}


def test_the_checker_sees_every_import_form(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import streamlit as st\nfrom streamlit.testing import v1\n"
                      "def f():\n    import importlib\n    importlib.import_module('streamlit')\n")
    assert {"streamlit", "streamlit.testing", "importlib"} <= imported_modules(sample)


def test_importing_vae_core_and_its_cli_loads_no_streamlit():
    code = ("import sys, vae_core, vae_core.__main__, vae_core.evaluation, vae_core.checkpoints; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'streamlit'))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def offenders_in(package: Path, above: set[str]) -> dict[str, list[str]]:
    found = {str(f.relative_to(ROOT)): sorted(m for m in imported_modules(f) if m.split(".")[0] in above)
             for f in sorted(package.rglob("*.py"))}
    return {f: m for f, m in found.items() if m}


def test_no_module_in_jobs_imports_ui_pages_or_streamlit():
    assert len(list((ROOT / "jobs").rglob("*.py"))) >= 6, "jobs' modules were not found"
    assert not offenders_in(ROOT / "jobs", {"streamlit", "ui", "pages"})


def test_the_layer_check_catches_a_jobs_module_that_imports_ui(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "worker.py").write_text("def preview():\n    from ui.images import grid\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert offenders_in(tmp_path / "jobs", {"streamlit", "ui", "pages"}) == {"jobs/worker.py": ["ui.images"]}
    finally:
        ROOT = saved


def test_running_a_job_preview_loads_neither_ui_nor_streamlit():
    """The worker's picture path at run time (its imports are inside functions too): a preview grid is drawn
    and afterwards no ui, pages or streamlit module is loaded."""
    code = ("import sys, torch; from vae_core import ModelConfig, build_model; from jobs.worker import make_preview; "
            "m = build_model(ModelConfig(variant='vae', condition='none', latent_dim=2, hidden_dims=(8,)), seed=0); "
            "pic, caption = make_preview(m, None); assert pic.ndim == 2 and pic.dtype.name == 'uint8', pic.shape; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ui', 'pages', 'streamlit')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"

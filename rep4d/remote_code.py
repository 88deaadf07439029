"""Export a model folder with its code, so it loads with ``trust_remote_code=True`` where rep4d is not installed.

transformers' own copier (``register_for_auto_class`` + ``save_pretrained``) only follows single-dot sibling imports,
while rep4d keeps configurations, models and processors in separate folders. This exporter collects every rep4d
module the registered classes need, writes them flat next to the weights with their imports rewritten to
``from .module import ...``, and fills ``auto_map`` in ``config.json`` and ``video_preprocessor_config.json`` for
every Auto class the method registers.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
from pathlib import Path

ROOT_PACKAGE = "rep4d"
# Absolute or relative imports of rep4d modules, rewritten to flat sibling imports.
_IMPORT_LINE = re.compile(r"^(\s*)from\s+(\.+[\w.]*|rep4d(?:\.\w+)*)\s+import\s", re.M)


def _resolve(module_name: str, imported: str) -> str:
    """Absolute module name of ``imported`` (possibly relative) as seen from ``module_name``."""
    if not imported.startswith("."):
        return imported
    level = len(imported) - len(imported.lstrip("."))
    package = module_name.rsplit(".", level)[0]
    rest = imported[level:]
    return f"{package}.{rest}" if rest else package


def _rep4d_imports(module_name: str, source: str) -> list[str]:
    """rep4d modules imported anywhere in ``source``; imports must name the defining module, not a package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            if any(alias.name.startswith(f"{ROOT_PACKAGE}.") for alias in node.names):
                raise ValueError(f"{module_name} uses `import rep4d...`; exported code needs `from ... import`")
        if not isinstance(node, ast.ImportFrom):
            continue
        base = _resolve(module_name, "." * node.level + (node.module or ""))
        if base != ROOT_PACKAGE and not base.startswith(f"{ROOT_PACKAGE}."):
            continue
        if hasattr(importlib.import_module(base), "__path__"):
            raise ValueError(
                f"{module_name} imports from the package {base}; import from the module that defines the names"
            )
        found.append(base)
    return found


def collect_modules(classes) -> dict[str, Path]:
    """Every rep4d module (by name -> file) needed by ``classes``, following imports recursively."""
    pending = [cls.__module__ for cls in classes]
    files: dict[str, Path] = {}
    while pending:
        name = pending.pop()
        if name in files:
            continue
        module = importlib.import_module(name)
        if hasattr(module, "__path__"):
            raise ValueError(f"{name} is a package; import the module that defines the class directly")
        path = Path(module.__file__)
        files[name] = path
        pending.extend(_rep4d_imports(name, path.read_text(encoding="utf-8")))
    basenames = {}
    for name, path in files.items():
        if path.stem in basenames:
            raise ValueError(f"modules {basenames[path.stem]} and {name} would both be exported as {path.name}")
        basenames[path.stem] = name
    return files


def flatten_imports(source: str) -> str:
    """Rewrite ``from ..pkg.module import`` / ``from rep4d.pkg.module import`` to ``from .module import``."""

    def replace(match: re.Match) -> str:
        target = match.group(2).lstrip(".")
        return f"{match.group(1)}from .{target.rsplit('.', 1)[-1]} import "

    return _IMPORT_LINE.sub(replace, source)


def auto_classes_for(model_type: str):
    """(config class, {auto class name: model class}, processor class) registered for ``model_type``."""
    from rep4d.auto import REGISTRY

    for config_class, models, processor_class in REGISTRY:
        if config_class.model_type == model_type:
            return config_class, {auto.__name__: model for auto, model in models.items()}, processor_class
    raise ValueError(f"no rep4d model is registered for model_type {model_type!r}")


def export_remote_code(
    model_dir: str | os.PathLike,
    model_class: type | None = None,
    pipeline_tasks=None,
) -> list[str]:
    """Add the code of the model in ``model_dir`` (a ``save_pretrained`` folder) and fill ``auto_map``.

    ``model_class``: the class whose weights the folder holds. When it is not one of the classes registered for the
    model type (e.g. ``MooGForPointTracking``, ``ReadoutForPointTracking``), ``AutoModel`` is mapped to it so that
    ``AutoModel.from_pretrained(..., trust_remote_code=True)`` rebuilds the whole model.
    ``pipeline_tasks``: custom pipelines of :mod:`rep4d.pipelines` the repo serves; ``pipelines.py`` is exported and
    ``custom_pipelines`` written into ``config.json`` (what ``Pipeline.save_pretrained`` would write), so
    ``pipeline(task, model=model_dir, trust_remote_code=True)`` works without rep4d. None (the default) serves every
    task the exported classes can run (:func:`pipeline_tasks_for`); ``()`` exports no pipeline.

    Returns the names of the code files written.
    """
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text())
    config_class, models, processor_class = auto_classes_for(config["model_type"])
    if processor_class is None and (model_dir / "video_preprocessor_config.json").exists():
        # Readouts have no processor of their own: they save their backbone's.
        processor_class = _processor_class_named(
            json.loads((model_dir / "video_preprocessor_config.json").read_text()).get("video_processor_type")
        )
    served = dict(models)
    if model_class is not None and model_class not in served.values():
        served["AutoModel"] = model_class
    classes = [config_class, *served.values()] + ([processor_class] if processor_class else [])
    if pipeline_tasks is None:
        pipeline_tasks = pipeline_tasks_for(served) if processor_class is not None else ()
    modules = collect_modules(classes)
    if pipeline_tasks:
        modules.update(collect_modules([_pipeline_module_class()]))
    written = []
    for name, path in sorted(modules.items()):
        target = model_dir / path.name
        source = flatten_imports(path.read_text(encoding="utf-8"))
        if name == config_class.__module__:
            source += _config_registrations(config_class, modules)
        target.write_text(source, encoding="utf-8")
        written.append(path.name)

    def reference(cls) -> str:
        return f"{Path(modules[cls.__module__]).stem}.{cls.__name__}"

    config["auto_map"] = {"AutoConfig": reference(config_class), **{a: reference(m) for a, m in served.items()}}
    if pipeline_tasks:
        from rep4d.pipelines import custom_pipelines_entry

        config["custom_pipelines"] = custom_pipelines_entry(pipeline_tasks)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    processor_path = model_dir / "video_preprocessor_config.json"
    if processor_class is not None and processor_path.exists():
        processor = json.loads(processor_path.read_text())
        processor["auto_map"] = {"AutoVideoProcessor": reference(processor_class)}
        processor_path.write_text(json.dumps(processor, indent=2, sort_keys=True) + "\n")
    return written


def _config_registrations(config_class, modules: dict) -> str:
    """Code appended to the folder's config module: registers the other rep4d configs the exported code ships with
    ``AutoConfig``, so a composite config (a readout) can build its backbone's config where rep4d is not installed."""
    from rep4d.auto import REGISTRY

    lines = []
    for other, _, _ in REGISTRY:
        if other is config_class or other.__module__ not in modules:
            continue
        module = Path(modules[other.__module__]).stem
        lines.append(f"from .{module} import {other.__name__} as _{other.__name__}")
        lines.append(f"_AutoConfig.register({other.model_type!r}, _{other.__name__}, exist_ok=True)")
    if not lines:
        return ""
    header = [
        "",
        "",
        "# Added by rep4d.remote_code: the backbone configs this folder's code ships, registered for composite configs.",
        "from transformers import AutoConfig as _AutoConfig  # noqa: E402",
    ]
    return "\n".join(header + [line + "  # noqa: E402" for line in lines]) + "\n"


def pipeline_tasks_for(served: dict) -> tuple[str, ...]:
    """The rep4d pipeline tasks the classes ``served`` ({auto class name: model class}) can run, by what they offer:
    ``get_video_features`` on the ``AutoModel`` class (feature extraction), an ``AutoModelForDepthEstimation``
    class (depth), ``query_points`` / ``query_boxes`` in the ``AutoModel`` class's ``forward`` (point / box
    tracking)."""
    import inspect

    from rep4d.pipelines import BOX_TRACKING_TASK, DEPTH_TASK, FEATURE_TASK, POINT_TRACKING_TASK

    tasks = []
    auto_model = served.get("AutoModel")
    parameters = inspect.signature(auto_model.forward).parameters if auto_model is not None else {}
    if auto_model is not None and hasattr(auto_model, "get_video_features"):
        tasks.append(FEATURE_TASK)
    if "AutoModelForDepthEstimation" in served:
        tasks.append(DEPTH_TASK)
    if "query_points" in parameters:
        tasks.append(POINT_TRACKING_TASK)
    if "query_boxes" in parameters:
        tasks.append(BOX_TRACKING_TASK)
    return tuple(tasks)


def _processor_class_named(name: str | None):
    from rep4d.auto import REGISTRY

    for _, _, processor_class in REGISTRY:
        if processor_class is not None and processor_class.__name__ == name:
            return processor_class
    return None


def _pipeline_module_class():
    from rep4d.pipelines import VideoDepthEstimationPipeline

    return VideoDepthEstimationPipeline

"""Conversion of the released JAX/Flax ``.npz`` checkpoints into Hugging Face model folders.

Each method provides a :class:`CheckpointConverter` that recognises its files from their keys and shapes, builds a
config from the array shapes (plus a preset or overrides for what shapes cannot tell), and maps every parameter of
the PyTorch model to the checkpoint keys it comes from and a transform (transpose, reshape, concatenation); it lives
in ``modeling/convert_<method>.py`` and is listed in :data:`CONVERTERS` (imported on first use). The generic code
here:

* the key maps of the common Flax modules (Dense, DenseGeneral, LayerNorm, MLP, attention, attention readout);

* reads ``.npz`` files lazily and never unpickles (``allow_pickle=False``; shapes come from the array headers);
* checks the mapping *before* touching any weights: every checkpoint key is used, every model parameter has a
  source, and the transforms give the right shapes (checked on meta tensors, so a 22B manifest costs nothing);
* streams the conversion parameter by parameter into safetensors shards written to a temporary directory that is
  renamed into place only when complete, so a failed conversion never leaves a partial output.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

Shapes = dict[str, tuple[int, ...]]


class ConversionError(ValueError):
    """The checkpoint does not match the model: the message lists every missing, unexpected or mis-shaped key."""


@dataclass
class ParamSource:
    """Where a model parameter comes from: checkpoint ``keys`` combined by ``transform`` (torch ops only)."""

    keys: tuple[str, ...]
    transform: Callable[..., torch.Tensor] = lambda x: x

    def build(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.transform(*tensors)


def source(*keys: str, transform: Callable[..., torch.Tensor] | None = None) -> ParamSource:
    return ParamSource(tuple(keys), transform or (lambda x: x))


# Common Flax -> PyTorch layouts --------------------------------------------------------------------------------------


def dense_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """Flax Dense kernel (in, out) -> nn.Linear weight (out, in)."""
    return kernel.T


def dense_general_in(kernel: torch.Tensor) -> torch.Tensor:
    """Flax DenseGeneral kernel (in, heads, head_dim) -> nn.Linear weight (heads*head_dim, in), head-major."""
    return kernel.reshape(kernel.shape[0], -1).T


def dense_general_out(kernel: torch.Tensor) -> torch.Tensor:
    """Flax DenseGeneral kernel (heads, head_dim, out) -> nn.Linear weight (out, heads*head_dim)."""
    return kernel.reshape(-1, kernel.shape[-1]).T


def flatten(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1)


def concat_rows(*tensors: torch.Tensor) -> torch.Tensor:
    return torch.cat(tensors, dim=0)


def fused(*keys: str, transform: Callable[[torch.Tensor], torch.Tensor]) -> ParamSource:
    """Several checkpoint arrays, each transformed, concatenated along dim 0 (e.g. q, k, v -> one qkv Linear)."""
    return ParamSource(tuple(keys), lambda *xs: torch.cat([transform(x) for x in xs], dim=0))


# Common Flax modules -> PyTorch modules. ``src`` names the Flax module (its arrays are ``{src}{sep}kernel`` ...),
# ``dst`` the torch module (its parameters are ``{dst}.weight`` ...); the entries come in the torch module's order.


def layer_norm_sources(src: str, dst: str, bias: bool = True, sep: str = "/") -> dict[str, ParamSource]:
    """Flax LayerNorm (``scale``, ``bias``) -> nn.LayerNorm (``weight``, ``bias``)."""
    sources = {f"{dst}.weight": source(f"{src}{sep}scale")}
    if bias:
        sources[f"{dst}.bias"] = source(f"{src}{sep}bias")
    return sources


def dense_sources(src: str, dst: str, bias: bool = True, sep: str = "/") -> dict[str, ParamSource]:
    """Flax Dense (kernel (in, out), bias) -> nn.Linear."""
    sources = {f"{dst}.weight": source(f"{src}{sep}kernel", transform=dense_kernel)}
    if bias:
        sources[f"{dst}.bias"] = source(f"{src}{sep}bias")
    return sources


def dense_general_in_sources(src: str, dst: str, bias: bool = True, sep: str = "/") -> dict[str, ParamSource]:
    """Flax DenseGeneral into heads (kernel (in, heads, head_dim), bias (heads, head_dim)) -> nn.Linear."""
    sources = {f"{dst}.weight": source(f"{src}{sep}kernel", transform=dense_general_in)}
    if bias:
        sources[f"{dst}.bias"] = source(f"{src}{sep}bias", transform=flatten)
    return sources


def dense_general_out_sources(src: str, dst: str, sep: str = "/") -> dict[str, ParamSource]:
    """Flax DenseGeneral out of heads (kernel (heads, head_dim, out), bias (out,)) -> nn.Linear."""
    return {
        f"{dst}.weight": source(f"{src}{sep}kernel", transform=dense_general_out),
        f"{dst}.bias": source(f"{src}{sep}bias"),
    }


def mlp_sources(src: str, dst: str, layers: tuple[str, str] = ("dense_in", "dense_out")) -> dict[str, ParamSource]:
    """A Flax MLP of two Dense ``layers`` -> a torch MLP of two Linears, ``dense_in`` and ``dense_out``."""
    first, second = layers
    return {**dense_sources(f"{src}/{first}", f"{dst}.dense_in"), **dense_sources(f"{src}/{second}", f"{dst}.dense_out")}


def self_attention_sources(src: str, dst: str) -> dict[str, ParamSource]:
    """Flax q/k/v/out DenseGenerals -> ``modeling.layers.SelfAttention`` (fused ``qkv``, ``out_proj``)."""
    names = ("query", "key", "value")
    return {
        f"{dst}.qkv.weight": fused(*(f"{src}/{n}/kernel" for n in names), transform=dense_general_in),
        f"{dst}.qkv.bias": fused(*(f"{src}/{n}/bias" for n in names), transform=flatten),
        **dense_general_out_sources(f"{src}/out", f"{dst}.out_proj"),
    }


def attention_readout_sources(ckpt: str, dst: str, given_queries: bool = False) -> dict[str, ParamSource]:
    """Mapping of a reference ``AttentionReadout`` onto ``modeling.attention_readout.AttentionReadout`` (spec 4DS §3, §4.2).

    ``ckpt`` and ``dst`` are key prefixes (``"params/layers_2/"``, ``"readout."``). With learned queries the checkpoint
    has ``query`` and the dense layers ``Dense_0`` (after attention) and ``Dense_1`` (output). With given query
    features Flax's call-order naming shifts them: ``Dense_0`` projects the queries, ``Dense_1`` follows attention and
    ``Dense_2`` is the output layer.
    """
    attn, out = ("Dense_1", "Dense_2") if given_queries else ("Dense_0", "Dense_1")
    sources = {
        **layer_norm_sources(f"{ckpt}LayerNorm_0", f"{dst}input_norm"),
        f"{dst}temporal_embedding": source(
            f"{ckpt}temporal_posenc/embeddings", transform=lambda e: e.reshape(e.shape[0], e.shape[-1])
        ),
        **dense_general_in_sources(f"{ckpt}key_embedding", f"{dst}k_proj"),
        **dense_general_in_sources(f"{ckpt}value_embedding", f"{dst}v_proj"),
        **dense_sources(f"{ckpt}{attn}", f"{dst}attn_proj"),
        **layer_norm_sources(f"{ckpt}LayerNorm_1", f"{dst}mlp_norm"),
        **mlp_sources(f"{ckpt}MLP_0", f"{dst}mlp", layers=("Dense_0", "Dense_1")),
        **dense_sources(f"{ckpt}{out}", f"{dst}classifier"),
    }
    if given_queries:
        sources.update(dense_sources(f"{ckpt}Dense_0", f"{dst}query_proj"))
    else:
        sources[f"{dst}query"] = source(f"{ckpt}query", transform=lambda q: q.reshape(q.shape[0], -1))
    return sources


def flax_hidden_act(gelu: str) -> str:
    """transformers' ``hidden_act`` for the reference's GELU setting (``tanh_approximation`` or exact)."""
    return "gelu_pytorch_tanh" if str(gelu).startswith("tanh") else "gelu"


# Reading .npz files without unpickling -----------------------------------------------------------------------------


class NpzCheckpoint(Mapping):
    """A lazy, read-only view of a ``.npz`` file: shapes from the headers, arrays loaded one key at a time."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {self.path}")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as error:
            raise ConversionError(f"{self.path} is not a .npz (zip) archive: {error}") from error
        self._members = {name[:-4]: name for name in self._zip.namelist() if name.endswith(".npy")}
        self._shapes: Shapes | None = None

    @property
    def shapes(self) -> Shapes:
        if self._shapes is None:
            shapes = {}
            for key, member in self._members.items():
                with self._zip.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = (
                        np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(handle)
                    if dtype.hasobject:
                        raise ConversionError(f"{key} holds Python objects; refusing to unpickle {self.path}")
                    shapes[key] = tuple(int(s) for s in shape)
            self._shapes = shapes
        return self._shapes

    def __getitem__(self, key: str) -> np.ndarray:
        with self._zip.open(self._members[key]) as handle:
            return np.lib.format.read_array(handle, allow_pickle=False)

    def __iter__(self):
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def close(self) -> None:
        self._zip.close()


class MergedCheckpoint(Mapping):
    """Several checkpoints read as one (e.g. a backbone file and a readout-head file); keys must not collide."""

    def __init__(self, paths: Iterable[str | os.PathLike]):
        self.files = [_open_one(path) for path in paths]
        self.shapes: Shapes = {}
        self._owner: dict[str, NpzCheckpoint] = {}
        for file in self.files:
            for key, shape in file.shapes.items():
                if key in self._owner:
                    raise ConversionError(f"key {key} appears in both {self._owner[key].path} and {file.path}")
                self.shapes[key], self._owner[key] = shape, file

    def __getitem__(self, key: str) -> np.ndarray:
        return self._owner[key][key]

    def __iter__(self):
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def close(self) -> None:
        for file in self.files:
            file.close()


class SafetensorsCheckpoint(Mapping):
    """A lazy, read-only view of a ``.safetensors`` file (``safe_open``: shapes from the header, arrays one key at a
    time, nothing unpickled). bfloat16 arrays are returned as float32 (NumPy has no bfloat16)."""

    def __init__(self, path: str | os.PathLike):
        from safetensors import SafetensorError, safe_open

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {self.path}")
        try:
            self._file = safe_open(str(self.path), framework="pt")
        except (SafetensorError, OSError) as error:
            raise ConversionError(f"{self.path} is not a readable .safetensors file: {error}") from error
        self.shapes: Shapes = {
            key: tuple(int(s) for s in self._file.get_slice(key).get_shape()) for key in self._file.keys()
        }

    def __getitem__(self, key: str) -> np.ndarray:
        tensor = self._file.get_tensor(key)
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()

    def __iter__(self):
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)

    def close(self) -> None:
        self._file = None


def _open_one(path: str | os.PathLike) -> NpzCheckpoint | SafetensorsCheckpoint:
    return SafetensorsCheckpoint(path) if str(path).endswith(".safetensors") else NpzCheckpoint(path)


def open_checkpoint(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
) -> NpzCheckpoint | SafetensorsCheckpoint | MergedCheckpoint:
    """One .npz / .safetensors file, or several merged into one key space."""
    if isinstance(paths, (str, os.PathLike)):
        return _open_one(paths)
    paths = list(paths)
    return _open_one(paths[0]) if len(paths) == 1 else MergedCheckpoint(paths)


def checkpoint_shapes(arrays: Mapping[str, np.ndarray]) -> Shapes:
    shapes = getattr(arrays, "shapes", None)
    return dict(shapes) if shapes is not None else {key: tuple(value.shape) for key, value in arrays.items()}


# Converter interface ------------------------------------------------------------------------------------------------


class CheckpointConverter:
    """Base class of the per-method converters; each instance is listed in :data:`CONVERTERS`."""

    #: short method name used on the command line (``fourds``, ``moog``, ``rvm``)
    method: str = ""

    def identify(self, shapes: Shapes) -> str | None:
        """The variant name (e.g. ``"backbone"``, ``"depth"``) if these keys belong to this method, else None."""
        raise NotImplementedError

    def variant_description(self, variant: str, shapes: Shapes) -> str:
        """A human-readable name of what was recognised (e.g. the released file it matches)."""
        return f"{self.method} {variant}"

    def build_config(self, shapes: Shapes, variant: str, preset: str | None = None, **overrides):
        """A config for the model, with every size inferred from ``shapes`` that can be."""
        raise NotImplementedError

    def model_class(self, config, variant: str) -> type:
        raise NotImplementedError

    def parameter_sources(self, shapes: Shapes, config, variant: str) -> dict[str, ParamSource]:
        """For every entry of the model's ``state_dict``, the checkpoint keys and transform that produce it."""
        raise NotImplementedError

    def ignored_keys(self, shapes: Shapes, config, variant: str) -> set[str]:
        """Checkpoint keys deliberately not converted (must be justified by the subclass)."""
        return set()

    def video_processor(self, config, variant: str):
        """The video processor saved next to the model (or None)."""
        return None


#: converter method -> ``module:attribute`` of its :class:`CheckpointConverter`. A converter module is imported only
#: when a checkpoint is converted or identified (not on ``import rep4d``); without a method, checkpoints are matched
#: against the converters in this order.
CONVERTERS = {
    "fourds": "rep4d.modeling.convert_fourds:FOURDS_CONVERTER",
    "moog": "rep4d.modeling.convert_moog:MOOG_CONVERTER",
    "rvm": "rep4d.modeling.convert_rvm:RVM_CONVERTER",
    "omnivorous": "rep4d.modeling.convert_omnivorous:OMNIVOROUS_CONVERTER",
}


def get_converter(method: str) -> CheckpointConverter:
    """The converter of ``method`` (a :data:`CONVERTERS` key), importing its module on first use."""
    if method not in CONVERTERS:
        raise ConversionError(f"unknown method {method!r}; known: {', '.join(sorted(CONVERTERS))}")
    module, attribute = CONVERTERS[method].split(":")
    return getattr(importlib.import_module(module), attribute)


def identify_checkpoint(shapes: Shapes, method: str | None = None) -> tuple[CheckpointConverter, str]:
    """Find the converter (and variant) that recognises these keys."""
    for converter in [get_converter(method)] if method else [get_converter(name) for name in CONVERTERS]:
        variant = converter.identify(shapes)
        if variant is not None:
            return converter, variant
    sample = ", ".join(sorted(shapes)[:5])
    raise ConversionError(
        f"no converter recognises this checkpoint ({len(shapes)} arrays, e.g. {sample}); "
        f"known methods: {', '.join(sorted(CONVERTERS))}"
    )


@dataclass
class ConversionPlan:
    converter: CheckpointConverter
    variant: str
    config: object
    model_class: type
    sources: dict[str, ParamSource]
    target_shapes: dict[str, tuple[int, ...]]
    target_dtypes: dict[str, torch.dtype] = field(default_factory=dict)

    @property
    def num_parameters(self) -> int:
        return sum(math.prod(shape) for shape in self.target_shapes.values())


def meta_model(model_class: type, config):
    """Instantiate ``model_class(config)`` on the meta device: shapes only, no memory."""
    with torch.device("meta"):
        return model_class(config)


def plan_conversion(
    shapes: Shapes,
    converter: CheckpointConverter,
    variant: str,
    config=None,
    preset: str | None = None,
    **overrides,
) -> ConversionPlan:
    """Check that ``shapes`` map one-to-one onto the model, without reading any weight. Raises ConversionError."""
    if config is None:
        config = converter.build_config(shapes, variant, preset=preset, **overrides)
    model_class = converter.model_class(config, variant)
    model = meta_model(model_class, config)
    state = model.state_dict()
    target_shapes = {name: tuple(tensor.shape) for name, tensor in state.items()}
    target_dtypes = {name: tensor.dtype for name, tensor in state.items()}
    sources = converter.parameter_sources(shapes, config, variant)

    problems = []
    missing = sorted(set(target_shapes) - set(sources))
    if missing:
        problems.append(f"model parameters with no checkpoint source ({len(missing)}): {', '.join(missing)}")
    extra_targets = sorted(set(sources) - set(target_shapes))
    if extra_targets:
        problems.append(f"mapping targets that the model does not have: {', '.join(extra_targets)}")
    used = {key for src in sources.values() for key in src.keys}
    absent = sorted(used - set(shapes))
    if absent:
        problems.append(f"checkpoint keys the model needs but the file lacks ({len(absent)}): {', '.join(absent)}")
    unused = sorted(set(shapes) - used - converter.ignored_keys(shapes, config, variant))
    if unused:
        problems.append(f"unexpected checkpoint keys ({len(unused)}): {', '.join(unused)}")
    for name, src in sources.items():
        if name not in target_shapes or any(key not in shapes for key in src.keys):
            continue
        try:
            built = src.build(*(torch.empty(shapes[key], device="meta") for key in src.keys))
            got = tuple(built.shape)
        except RuntimeError as error:
            got = f"error: {error}"
        if got != target_shapes[name]:
            described = ", ".join(f"{key} {shapes[key]}" for key in src.keys)
            problems.append(f"{name}: expected shape {target_shapes[name]}, the checkpoint gives {got} ({described})")
    if problems:
        raise ConversionError(
            f"checkpoint does not match {model_class.__name__} ({converter.variant_description(variant, shapes)}):\n  - "
            + "\n  - ".join(problems)
        )
    return ConversionPlan(converter, variant, config, model_class, sources, target_shapes, target_dtypes)


def materialize(plan: ConversionPlan, arrays: Mapping[str, np.ndarray], names: Iterable[str] | None = None):
    """Yield ``(name, tensor)`` for the model parameters, reading each checkpoint array only when needed."""
    for name in names if names is not None else plan.sources:
        src = plan.sources[name]
        tensors = [torch.from_numpy(np.ascontiguousarray(arrays[key])) for key in src.keys]
        tensor = src.build(*tensors).to(plan.target_dtypes.get(name, torch.float32)).contiguous()
        yield name, tensor


def convert_state_dict(plan: ConversionPlan, arrays: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return dict(materialize(plan, arrays))


def load_converted_model(plan: ConversionPlan, arrays: Mapping[str, np.ndarray]):
    """Build the model and load the converted weights (strict)."""
    model = plan.model_class(plan.config)
    model.load_state_dict(convert_state_dict(plan, arrays), strict=True)
    return model.eval()


def _shard_groups(plan: ConversionPlan, max_shard_bytes: int) -> list[list[str]]:
    groups, current, current_bytes = [], [], 0
    for name in plan.sources:
        size = math.prod(plan.target_shapes[name]) * plan.target_dtypes[name].itemsize
        if current and current_bytes + size > max_shard_bytes:
            groups.append(current)
            current, current_bytes = [], 0
        current.append(name)
        current_bytes += size
    if current:
        groups.append(current)
    return groups


SAFETENSORS_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


def write_safetensors_streaming(path: Path, entries, tensors, metadata: dict | None = None) -> None:
    """Write a safetensors file tensor by tensor: ``entries`` are ``(name, shape, dtype)`` known in advance and
    ``tensors`` yields ``(name, tensor)`` in the same order. Only one tensor is in memory at a time (the
    ``safetensors.save_file`` path serialises the whole shard to bytes first, doubling the peak)."""
    header, offset = {}, 0
    for name, shape, dtype in entries:
        size = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = metadata
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the data section starts 8-byte aligned
    expected = iter(entries)
    with open(path, "wb") as handle:
        handle.write(len(encoded).to_bytes(8, "little"))
        handle.write(encoded)
        for name, tensor in tensors:
            want_name, want_shape, want_dtype = next(expected)
            if name != want_name or tuple(tensor.shape) != tuple(want_shape) or tensor.dtype != want_dtype:
                raise ConversionError(f"{name}: produced {tuple(tensor.shape)} {tensor.dtype}, planned {want_shape}")
            data = tensor.contiguous().cpu()
            if data.dtype == torch.bfloat16:
                data = data.view(torch.int16)
            if data.numel():  # an empty tensor (e.g. zero register tokens) has no bytes to write
                handle.write(memoryview(data.numpy()).cast("B"))


def parse_size(value: str | int) -> int:
    if isinstance(value, int):
        return value
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    text = value.strip().upper()
    for unit, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def write_model_folder(
    plan: ConversionPlan,
    arrays: Mapping[str, np.ndarray],
    directory: Path,
    max_shard_size: str | int = "5GB",
    progress: bool = False,
) -> list[str]:
    """Write config.json and the (possibly sharded) safetensors weights into ``directory``; returns file names."""
    groups = _shard_groups(plan, parse_size(max_shard_size))
    total = len(groups)
    weight_map, files = {}, []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan.sources), desc="converting", unit="tensor")
    for index, names in enumerate(groups, start=1):
        filename = "model.safetensors" if total == 1 else f"model-{index:05d}-of-{total:05d}.safetensors"

        def produced(names=names):
            for name, tensor in materialize(plan, arrays, names):
                if bar is not None:
                    bar.update(1)
                yield name, tensor

        entries = [(name, plan.target_shapes[name], plan.target_dtypes[name]) for name in names]
        write_safetensors_streaming(directory / filename, entries, produced(), metadata={"format": "pt"})
        weight_map.update({name: filename for name in names})
        files.append(filename)
    if bar is not None:
        bar.close()
    if total > 1:
        total_size = sum(math.prod(plan.target_shapes[n]) * plan.target_dtypes[n].itemsize for n in plan.sources)
        index_file = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index_file, indent=2, sort_keys=True))
        files.append("model.safetensors.index.json")
    plan.config.architectures = [plan.model_class.__name__]
    plan.config.save_pretrained(directory)
    return files


class atomic_output_dir:
    """Context manager: yields a temporary directory next to ``target`` and renames it to ``target`` on success.

    On any exception the temporary directory is removed and ``target`` is left untouched.
    """

    def __init__(self, target: str | os.PathLike, overwrite: bool = False):
        self.target = Path(target).absolute()
        self.overwrite = overwrite

    def __enter__(self) -> Path:
        if self.target.exists() and any(self.target.iterdir()) and not self.overwrite:
            raise FileExistsError(f"{self.target} exists and is not empty; pass --overwrite to replace it")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.partial-", dir=self.target.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        if self.target.exists():
            backup = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            self.target.rename(backup)
            self.tmp.rename(self.target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            self.tmp.rename(self.target)
        return False


@dataclass
class ConversionResult:
    output_dir: Path
    method: str
    variant: str
    description: str
    num_parameters: int
    files: list[str]


def convert_checkpoint(
    checkpoint: str | os.PathLike | list | Mapping[str, np.ndarray],
    output_dir: str | os.PathLike,
    method: str | None = None,
    preset: str | None = None,
    max_shard_size: str | int = "5GB",
    overwrite: bool = False,
    progress: bool = False,
    **overrides,
) -> ConversionResult:
    """Convert released ``.npz`` checkpoint(s) (or an in-memory dict of arrays) into a ``from_pretrained`` folder."""
    opened = not isinstance(checkpoint, Mapping)
    arrays = open_checkpoint(checkpoint) if opened else checkpoint
    try:
        shapes = checkpoint_shapes(arrays)
        converter, variant = identify_checkpoint(shapes, method)
        plan = plan_conversion(shapes, converter, variant, preset=preset, **overrides)
        with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
            files = write_model_folder(plan, arrays, tmp, max_shard_size=max_shard_size, progress=progress)
            processor = converter.video_processor(plan.config, variant)
            if processor is not None:
                before = {path.name for path in tmp.iterdir()}
                processor.save_pretrained(tmp)
                files.extend(sorted(path.name for path in tmp.iterdir() if path.name not in before))
    finally:
        if opened:
            arrays.close()
    return ConversionResult(
        Path(output_dir), converter.method, variant, converter.variant_description(variant, shapes),
        plan.num_parameters, files,
    )


def read_manifest(path: str | os.PathLike) -> Shapes:
    """Shapes of a released checkpoint from its manifest JSON (``{"params": [[key, shape, dtype], ...]}``)."""
    manifest = json.loads(Path(path).read_text())
    return {key: tuple(shape) for key, shape, *_ in manifest["params"]}


def strip_prefix(shapes: Mapping[str, object], prefix: str) -> dict[str, object]:
    return {key[len(prefix) :]: value for key, value in shapes.items() if key.startswith(prefix)}


def layer_indices(shapes: Iterable[str], prefix: str) -> list[int]:
    """Sorted integer indices ``i`` of keys starting with ``{prefix}{i}/`` (numeric, not lexicographic, order)."""
    indices = set()
    for key in shapes:
        if key.startswith(prefix):
            head = key[len(prefix) :].split("/", 1)[0]
            if head.isdigit():
                indices.add(int(head))
    return sorted(indices)

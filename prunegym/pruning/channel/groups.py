"""Component-aware pruning groups from Torch-Pruning's dependency graph (papers §III-A).

One ``DependencyGraph`` is traced over the whole model; each of its groups is then labelled by
the components its layers belong to. A group whose layers all sit in one component is
*component-specific*; a group spanning components (the latent width shared by the encoder's last
layer and the decoder's first layer) is a *coupling* group. Tracing the whole model rather than
each component alone yields the same groups while also seeing dependencies that cross component
boundaries. The task's output layers are left out: their width is fixed by the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from prunegym.pruning.channel.attention import HeadAttention
from prunegym.pruning.channel.errors import UnsupportedLayerError

COMPONENT = "component"
COUPLING = "coupling"


@dataclass(frozen=True)
class ChannelSlice:
    """Where a group's channels sit along one dimension of one parameter tensor.

    Attributes:
        param: Parameter name in ``model.named_parameters()``, e.g. ``"encoder.0.weight"``.
        dim: The tensor dimension indexed by channel.
        index: ``(k,)`` int64 positions along ``dim``.
        root: ``(k,)`` int64 group channel number of each position.
    """

    param: str
    dim: int
    index: torch.Tensor
    root: torch.Tensor


@dataclass(frozen=True)
class ConsumerSlice:
    """A layer reading a group's channels as inputs (for statistics and compensation).

    Attributes:
        module: Module name of a Linear or (non-grouped) convolution.
        index: ``(k,)`` input-channel positions of the consumer.
        root: ``(k,)`` group channel number of each position.
    """

    module: str
    index: torch.Tensor
    root: torch.Tensor


@dataclass(frozen=True)
class Group:
    """What every pruning group states, channel or weight granularity.

    Attributes:
        index: Position in the coefficient vector ``c``.
        kind: ``"component"`` or ``"coupling"`` (channels), ``"layer"`` (weights).
        components: Names of the components its layers belong to.
        number: 1-based number of the group within its component(s), as in Table II.
        channels: Number of units ``n_i`` (channels, or weights of a layer).
        modules: Names of the parameterised modules it touches.
        parameters: ``s_i``, the parameter entries removed if every unit went.
    """

    index: int
    kind: str
    components: tuple[str, ...]
    number: int
    channels: int
    modules: tuple[str, ...]
    parameters: int

    @property
    def label(self) -> str:
        """Short name such as ``"encoder 1"`` or ``"encoder-decoder 1"``."""
        return f"{'-'.join(self.components)} {self.number}"


@dataclass(frozen=True)
class PruningGroup(Group):
    """One channel pruning group: channels that must be removed together (the fields of
    :class:`Group`, and where they sit).

    Attributes:
        slices: Where its channels sit in parameter tensors.
        consumers: Layers that read its channels as inputs.
        tp_group: The Torch-Pruning group (used by Torch-Pruning's importance criteria and by
            export); ``None`` for attention heads, which prunegym groups itself.
    """

    slices: tuple[ChannelSlice, ...]
    consumers: tuple[ConsumerSlice, ...]
    tp_group: tp.dependency.Group | None = field(repr=False, compare=False)


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd) and module.groups == module.out_channels > 1


def _param_dims(module: nn.Module, name: str, out: bool, pruning_dim: int) -> list[tuple[str, int]]:
    """(parameter attribute, dim) pairs that hold one channel of ``module``'s output or input."""
    if isinstance(module, nn.Linear):
        pairs = [("weight", 0), ("bias", 0)] if out else [("weight", 1)]
    elif isinstance(module, nn.modules.conv._ConvNd):
        if _is_depthwise(module):
            pairs = [("weight", 0), ("bias", 0)]
        elif module.groups != 1:
            raise UnsupportedLayerError(
                f"layer {name!r} is a grouped convolution (groups={module.groups}); "
                "only groups=1 and depthwise convolutions can be pruned"
            )
        elif out:
            pairs = [("weight", 1 if module.transposed else 0), ("bias", 0)]
        else:
            pairs = [("weight", 0 if module.transposed else 1)]
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        pairs = [("weight", 0), ("bias", 0)]
    elif isinstance(module, nn.LayerNorm):
        pairs = [("weight", pruning_dim), ("bias", pruning_dim)]
    elif isinstance(module, nn.PReLU):
        pairs = [("weight", 0)] if module.num_parameters > 1 else []
    elif isinstance(module, nn.MultiheadAttention):
        raise UnsupportedLayerError(
            f"layer {name!r} is an nn.MultiheadAttention; make it explicit first with "
            "prunegym.pruning.channel.attention.explicit_attention (SoftPruner does)"
        )
    elif not any(True for _ in module.parameters(recurse=False)):
        pairs = []
    else:
        raise UnsupportedLayerError(
            f"layer {name!r} of type {type(module).__name__} has parameters but cannot be "
            "masked; supported: Linear, Conv/ConvTranspose (groups=1 or depthwise), "
            "BatchNorm, LayerNorm, PReLU"
        )
    resolved = []
    for attribute, dim in pairs:
        param = getattr(module, attribute, None)
        if isinstance(param, nn.Parameter):
            resolved.append((attribute, dim % param.dim()))
    return resolved


def head_slices(name: str, attention: HeadAttention):
    """``(slices, consumer)`` of the head group of ``attention`` (module ``name``): its
    ``q``/``k``/``v`` rows and biases and its ``out`` columns, with head numbers as roots."""
    inner = attention.num_heads * attention.head_dim
    index = torch.arange(inner, dtype=torch.long, device="cpu")
    root = index // attention.head_dim
    slices = []
    for layer in ("q", "k", "v"):
        for attribute in ("weight", "bias"):
            if getattr(getattr(attention, layer), attribute) is not None:
                slices.append(ChannelSlice(f"{name}.{layer}.{attribute}", 0, index, root))
    slices.append(ChannelSlice(f"{name}.out.weight", 1, index, root))
    return tuple(slices), ConsumerSlice(f"{name}.out", index, root)


def _component_of(module_name: str, component_prefixes: dict[str, str]) -> str:
    for component, prefix in component_prefixes.items():
        if prefix == "" or module_name == prefix or module_name.startswith(prefix + "."):
            return component
    return "other"


def default_output_layers(model: nn.Module) -> list[nn.Module]:
    """The last Linear or convolution in module order: its width is the model's output."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    return layers[-1:]


def count_group_parameters(slices: tuple[ChannelSlice, ...], shapes: dict[str, torch.Size]) -> int:
    """Parameter entries lying in at least one slice (each entry counted once per group)."""
    covered: dict[str, dict[int, int]] = {}
    for piece in slices:
        dims = covered.setdefault(piece.param, {})
        dims[piece.dim] = dims.get(piece.dim, 0) + len(torch.unique(piece.index))
    total = 0
    for param, dims in covered.items():
        shape = shapes[param]
        kept = 1
        for dim, size in enumerate(shape):
            kept *= size - dims.get(dim, 0)
        total += shape.numel() - kept
    return total


def _read_group(graph, tp_group, names: dict[nn.Module, str], parameter_names: dict[int, str]):
    """``(slices, consumers, modules)`` of one Torch-Pruning group: where its channels sit in
    parameters, the layers that read them as inputs, and the named modules it touches."""
    slices, consumers, modules = [], [], []
    for item in tp_group:
        module = item.dep.target.module
        index = torch.as_tensor(item.idxs, dtype=torch.long, device="cpu")  # bookkeeping
        root = torch.as_tensor(item.root_idxs, dtype=torch.long, device="cpu")
        if isinstance(module, nn.Parameter):  # a class token, position embedding, layer scale
            name = parameter_names[id(module)]
            slices.append(
                ChannelSlice(name, item.dep.target.pruning_dim % module.dim(), index, root)
            )
            owner = name.rpartition(".")[0]
            if owner not in modules:
                modules.append(owner)
            continue
        if module not in names:  # Torch-Pruning's own op nodes (activations, reshapes...)
            continue
        name = names[module]
        out = graph.is_out_channel_pruning_fn(item.dep.handler)
        pairs = _param_dims(module, name, out, item.dep.target.pruning_dim)
        for attribute, dim in pairs:
            slices.append(
                ChannelSlice(f"{name}.{attribute}" if name else attribute, dim, index, root)
            )
        if pairs and name not in modules:
            modules.append(name)
        if not out and isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            if not _is_depthwise(module):
                consumers.append(ConsumerSlice(name, index, root))
    return slices, consumers, modules


def find_groups(
    model: nn.Module,
    components: dict[str, nn.Module],
    example_inputs,
    output_layers: list[nn.Module] | None = None,
) -> list[PruningGroup]:
    """Find the component-aware pruning groups of ``model``.

    Args:
        model: The model (not modified).
        components: Component name to submodule of ``model``.
        example_inputs: Inputs for tracing.
        output_layers: Layers whose output channels are never pruned; ``None`` picks the last
            Linear/convolution.

    Returns:
        Groups ordered component by component (in the order of ``components``), then coupling
        groups; within each, by the position of the group's first layer in the model.

    Raises:
        UnsupportedLayerError: if a group contains a layer whose parameters cannot be masked.
    """
    names = {module: name for name, module in model.named_modules()}
    prefixes = {}
    for component, submodule in components.items():
        if submodule not in names:
            raise ValueError(f"component {component!r} is not a submodule of the model")
        prefixes[component] = names[submodule]
    order = {name: position for position, name in enumerate(names.values())}
    if output_layers is None:
        output_layers = default_output_layers(model)
    shapes = {name: param.shape for name, param in model.named_parameters()}

    try:
        graph = tp.DependencyGraph().build_dependency(
            model, example_inputs=example_inputs, verbose=False
        )
    except (ArithmeticError, IndexError, KeyError, TypeError) as error:  # inside Torch-Pruning
        raise UnsupportedLayerError(
            f"Torch-Pruning cannot trace this model's channel dependencies "
            f"({type(error).__name__}: {error}): it has an operation Torch-Pruning cannot map "
            "channels through, such as a channel shuffle"
        ) from error
    parameter_names = {id(p): n for n, p in model.named_parameters()}
    attentions = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, HeadAttention) and module.out not in output_layers
    }
    inner = [layer for a in attentions.values() for layer in (a.q, a.k, a.v)]  # head groups
    found = []
    for tp_group in graph.get_all_groups(ignored_layers=list(output_layers) + inner):
        slices, consumers, modules = _read_group(graph, tp_group, names, parameter_names)
        if slices:
            found.append((len(tp_group[0].idxs), tp_group, slices, consumers, modules))
    for name, attention in attentions.items():
        slices, consumer = head_slices(name, attention)
        modules = [f"{name}.{layer}" for layer in ("q", "k", "v", "out")]
        found.append((attention.num_heads, None, slices, [consumer], modules))
    raw = []
    for channels, tp_group, slices, consumers, modules in found:
        labels = tuple(dict.fromkeys(_component_of(m, prefixes) for m in modules))
        ranked = tuple(c for c in list(prefixes) + ["other"] if c in labels)
        first = min(order[m] for m in modules)
        raw.append((ranked, first, channels, tp_group, slices, consumers, modules))

    component_rank = {c: i for i, c in enumerate(list(prefixes) + ["other"])}
    raw.sort(key=lambda r: (len(r[0]) > 1, [component_rank[c] for c in r[0]], r[1]))
    groups, numbers = [], {}
    for position, (labels, _, channels, tp_group, slices, consumers, modules) in enumerate(raw):
        numbers[labels] = numbers.get(labels, 0) + 1
        groups.append(
            PruningGroup(
                index=position,
                kind=COUPLING if len(labels) > 1 else COMPONENT,
                components=labels,
                number=numbers[labels],
                channels=channels,
                modules=tuple(modules),
                parameters=count_group_parameters(tuple(slices), shapes),
                slices=tuple(slices),
                consumers=tuple(consumers),
                tp_group=tp_group,
            )
        )
    return groups


def format_group_table(groups: list[PruningGroup], total_parameters: int) -> str:
    """A text table like the papers' Table II: type, component, group, channels, modules, params."""
    header = (
        f"{'idx':>3}  {'type':<18} {'component':<18} {'group':>5} {'channels':>8} "
        f"{'modules':>7} {'parameters':>11}"
    )
    lines = [header, "-" * len(header)]
    for group in groups:
        kind = "Coupling" if group.kind == COUPLING else "Component-specific"
        lines.append(
            f"{group.index:>3}  {kind:<18} {'-'.join(group.components):<18} {group.number:>5} "
            f"{group.channels:>8} {len(group.modules):>7} {group.parameters:>11,}"
        )
    lines.append("-" * len(header))
    lines.append(f"model parameters ||theta||_0 = {total_parameters:,}")
    return "\n".join(lines)

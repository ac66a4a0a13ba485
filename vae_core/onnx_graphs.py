"""ONNX graphs as data: read one, prove it cheap to run, then run it, bounded in time and memory.

A checkpoint of a model trained by other code carries its encoder and decoder as ONNX graphs (a computation,
no code; vae_core/external.py). A graph in a file may be hostile, so before ONNX Runtime ever sees it,
`GraphPlan.check` proves these, each failure one `CheckpointError` sentence:

    size         at most MAX_GRAPH_BYTES, parsed as an ONNX model (protobuf), no external data (a graph that
                 names a file on disk would make the runtime read it), no local functions
    operators    only the standard ONNX domain, only the operators in OPERATORS (no control flow such as Loop
                 or If, no random or data-dependent output shapes, no custom or contrib operators)
    interface    exactly the inputs and outputs the protocol names, float32 [batch, size], with a free batch axis
    checker      onnx.checker passes
    shapes       at every batch size the runtime will be given (the powers of two up to `max_rows`), shape
                 inference (with data propagation) gives every tensor a known shape, and together they hold
                 at most RUN_BYTES, with at most MAX_MACS_PER_ROW multiply-adds per row

Then the session runs with one thread (no spinning, no memory arena), only at the checked batch sizes (a batch
is cut into chunks of `max_rows` and padded up to a power of two), and a first run on two rows must finish
within PROBE_SECONDS and give finite outputs of the declared shapes.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from .record import CheckpointError

MAX_GRAPH_BYTES = 64 * 1024 * 1024      # one graph; a 16-million-weight float32 model
MAX_NODES = 20_000
MAX_ROWS = 4096                          # the largest batch one run is given
RUN_BYTES = 256 * 1024 * 1024            # every tensor of one run together (an upper bound on its memory)
MAX_MACS_PER_ROW = 200_000_000           # multiply-adds per image or code (a 1-million-weight conv VAE: ~3 M)
PROBE_SECONDS = 20.0
CHECK_SECONDS = 30.0                     # the shape proofs of one graph, at every batch size together
MIN_OPSET = 7

# Standard operators with shapes that follow from their inputs' shapes (or from constants): what exporters
# write for MLP and convolutional encoders and decoders.
OPERATORS = frozenset("""
Abs Add And ArgMax ArgMin AveragePool BatchNormalization Cast CastLike Ceil Celu Clip Concat Constant
ConstantOfShape Conv ConvTranspose Cos DepthToSpace Div Dropout Einsum Elu Equal Erf Exp Expand Flatten Floor
Gather GatherElements Gelu Gemm GlobalAveragePool GlobalMaxPool Greater GreaterOrEqual GroupNormalization
HardSigmoid HardSwish Identity InstanceNormalization LayerNormalization LeakyRelu Less LessOrEqual Log
LogSoftmax MatMul Max MaxPool Mean Min Mish Mod Mul Neg Not OneHot Or Pad Pow PRelu Range Reciprocal ReduceL1
ReduceL2 ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
Round Selu Shape Sigmoid Sign Sin Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum
Tanh Tile Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

_ELEMENT_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2}


def _fail(where: str, message: str) -> CheckpointError:
    return CheckpointError(f"{where} {message}")


@dataclass(frozen=True)
class Port:
    """One input or output of a graph: its name and the length of each row (float32 [batch, size])."""

    name: str
    size: int


@dataclass(frozen=True)
class GraphPlan:
    """A graph proven cheap to run: its bytes, its interface, and the batch sizes it may be given."""

    data: bytes
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    max_rows: int
    weights: int            # elements of its initializers

    @classmethod
    def check(cls, data: bytes, inputs: tuple[Port, ...], outputs: tuple[Port, ...], where: str) -> "GraphPlan":
        """Every proof of the module docstring, or CheckpointError naming `where` (e.g. 'the decoder graph
        of x.safetensors')."""
        import onnx

        if len(data) > MAX_GRAPH_BYTES:
            raise _fail(where, f"holds {len(data):,} bytes; at most {MAX_GRAPH_BYTES:,} are read.")
        try:
            model = onnx.load_model_from_string(bytes(data))
        except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends: not a model
            raise _fail(where, f"is not a readable ONNX model ({type(e).__name__}).") from None
        graph = model.graph
        _check_domains(model, where)
        if len(model.functions):
            raise _fail(where, "defines its own functions; Latent Lab runs plain graphs of standard operators only.")
        if len(graph.node) > MAX_NODES:
            raise _fail(where, f"has {len(graph.node):,} operators; at most {MAX_NODES:,} are run.")
        for node in graph.node:
            if node.domain not in ("", "ai.onnx") or node.op_type not in OPERATORS:
                name = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
                raise _fail(where, f"uses the operator {name[:80]}, which Latent Lab does not run (it runs the "
                                   "standard operators of MLP and convolutional networks, without control flow).")
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR and _external(attribute.t):
                    raise _fail(where, "refers to data in another file; Latent Lab reads graphs whole.")
        if any(_external(t) for t in graph.initializer) or len(graph.sparse_initializer):
            raise _fail(where, "refers to data in another file (or sparse data); Latent Lab reads graphs whole.")
        _check_interface(graph, inputs, outputs, where)
        try:
            onnx.checker.check_model(model)
        except Exception as e:  # noqa: BLE001 - onnx.checker.ValidationError and C++ errors
            raise _fail(where, f"is not a valid ONNX model: {_first_line(e)}") from None
        max_rows = _check_shapes(model, inputs, outputs, where)
        weights = sum(math.prod(t.dims) for t in graph.initializer)
        return cls(bytes(data), inputs, outputs, max_rows, weights)


def _first_line(error: BaseException, limit: int = 240) -> str:
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text[:limit]


def _external(tensor) -> bool:
    import onnx
    return tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data) > 0


def _check_domains(model, where: str) -> None:
    import onnx
    newest = onnx.defs.onnx_opset_version()
    for opset in model.opset_import:
        if opset.domain not in ("", "ai.onnx"):
            raise _fail(where, f"imports operators from the domain {opset.domain[:60]!r}; Latent Lab runs the "
                               "standard ONNX operators only.")
        if not MIN_OPSET <= opset.version <= newest:
            raise _fail(where, f"needs ONNX opset {opset.version}; Latent Lab reads opsets {MIN_OPSET} to {newest}.")


def _dims(value) -> list:
    """The declared dimensions of a graph input or output: ints, names (a free axis) or None (unknown)."""
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in shape.dim]


def _check_interface(graph, inputs: tuple[Port, ...], outputs: tuple[Port, ...], where: str) -> None:
    import onnx
    weights = {t.name for t in graph.initializer}
    found_in = {v.name: v for v in graph.input if v.name not in weights}
    found_out = {v.name: v for v in graph.output}
    for kind, wanted, found in (("inputs", inputs, found_in), ("outputs", outputs, found_out)):
        names = [p.name for p in wanted]
        if set(found) != set(names):
            listed = ", ".join(sorted(n[:40] for n in found)[:6]) or "none"
            raise _fail(where, f"has the {kind} {listed}; a Latent Lab {kind[:-1]} set is exactly "
                               f"{', '.join(names)} (float32 [batch, size]).")
        for port in wanted:
            value = found[port.name]
            if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
                raise _fail(where, f"declares {port.name} with a type other than float32.")
            dims = _dims(value)
            if kind == "outputs" and (not dims or len(dims) == 2 and not isinstance(dims[1], int)):
                continue  # an output declared without its size: shape inference gives it, checked then
            if len(dims) != 2 or dims[1] != port.size:
                shown = "[" + ", ".join("?" if d is None else str(d)[:20] for d in dims[:6]) + "]"
                raise _fail(where, f"declares {port.name} as {shown}; it must be [batch, {port.size}].")
            if kind == "inputs" and isinstance(dims[0], int):
                raise _fail(where, f"fixes the batch size of {port.name} at {dims[0]:,}; export it with a free "
                                   "first axis (dynamic_axes) so any number of images can go through.")


def _with_batch(model, inputs: tuple[Port, ...], batch: int):
    """A copy of the model whose inputs are [batch, size] and whose outputs and inner shapes are left to inference."""
    import onnx
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.graph.value_info[:]
    sizes = {p.name: p.size for p in inputs}
    for value in copy.graph.input:
        if value.name in sizes:
            shape = value.type.tensor_type.shape
            del shape.dim[:]
            shape.dim.add().dim_value = batch
            shape.dim.add().dim_value = sizes[value.name]
    for value in copy.graph.output:
        value.type.tensor_type.ClearField("shape")
    return copy


def _check_shapes(model, inputs: tuple[Port, ...], outputs: tuple[Port, ...], where: str) -> int:
    """The largest power-of-two batch whose every tensor has a known shape and fits RUN_BYTES (and the
    multiply-add budget); CheckpointError when even one row does not."""
    light = _without_weight_data(model)
    deadline = time.monotonic() + CHECK_SECONDS
    best = 0
    batch = 1
    while batch <= MAX_ROWS:
        try:
            inferred = _infer(_with_batch(light, inputs, batch), deadline)
        except TimeoutError:
            raise _fail(where, f"could not be checked within {CHECK_SECONDS:g} s; Latent Lab runs only graphs "
                               "it can check.") from None
        except Exception as e:  # noqa: BLE001 - InferenceError and C++ errors
            raise _fail(where, f"fails ONNX shape inference at a batch of {batch}: {_first_line(e)}") from None
        shapes = _known_shapes(inferred, where, batch)
        for port in outputs:
            if shapes.get(port.name, (None, None))[0] != (batch, port.size):
                got = shapes.get(port.name, (None,))[0]
                raise _fail(where, f"gives {port.name} the shape {list(got) if got else 'unknown'} for a batch of "
                                   f"{batch}; it must be [{batch}, {port.size}].")
        total = sum(math.prod(s) * size for s, size in shapes.values())
        if total > RUN_BYTES:
            if batch == 1:
                raise _fail(where, f"needs {total:,} bytes of tensors for one row; at most {RUN_BYTES:,} are "
                                   "allowed.")
            break
        macs = _multiply_adds(inferred.graph, shapes)
        if macs > batch * MAX_MACS_PER_ROW:
            raise _fail(where, f"needs about {macs / batch:,.0f} multiply-adds per row; at most "
                               f"{MAX_MACS_PER_ROW:,} are run.")
        best, batch = batch, batch * 2
    return best


# Operators on shape values (small integer vectors) that may be computed before the graph runs: ONNX shape
# inference does not follow a shape through all of them (a Div, as in torch's chunk()), so `_infer` does.
SHAPE_ARITHMETIC = frozenset("""Shape Size Constant Identity Cast Reshape Flatten Gather Concat Unsqueeze Squeeze
Slice Transpose Add Sub Mul Div Mod Neg Abs Sign Floor Ceil Min Max Equal Less Greater Not And Or Where ReduceProd
ReduceSum""".split())
SMALL = 64  # elements of a value that counts as a shape value


def _infer(model, deadline: float, rounds: int = 16):
    """ONNX shape inference (strict, with data propagation), with shape arithmetic folded into constants in
    between: a Shape of a tensor whose shape is known, and the operators of SHAPE_ARITHMETIC on small
    constant inputs, become Constant nodes, until nothing more folds. The inferred copy of the model;
    TimeoutError past `deadline` (time.monotonic())."""
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    for _ in range(rounds):
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
        graph = inferred.graph
        shapes = {v.name: _dims(v) for v in [*graph.input, *graph.value_info, *graph.output]
                  if v.type.tensor_type.HasField("shape")}
        values = {t.name: numpy_helper.to_array(t) for t in graph.initializer if math.prod(t.dims) <= SMALL}
        nodes, folded = [], False
        for node in graph.node:
            if time.monotonic() > deadline:
                raise TimeoutError
            value = None
            if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
                if math.prod(node.attribute[0].t.dims) <= SMALL:
                    values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
                nodes.append(node)
                continue
            if node.op_type == "Shape" and all(isinstance(d, int) for d in shapes.get(node.input[0], [None])):
                start = next((a.i for a in node.attribute if a.name == "start"), 0)
                end = next((a.i for a in node.attribute if a.name == "end"), None)
                value = np.array(shapes[node.input[0]][start:end], dtype=np.int64)
            elif (node.op_type in SHAPE_ARITHMETIC and len(node.output) == 1
                  and all(i in values for i in node.input if i)
                  and not any(a.type == onnx.AttributeProto.TENSOR and math.prod(a.t.dims) > SMALL
                              for a in node.attribute)):
                value = ReferenceEvaluator(node).run(None, {i: values[i] for i in node.input if i})[0]
            if value is None or np.asarray(value).size > SMALL * SMALL:
                nodes.append(node)
                continue
            value = np.asarray(value)
            values[node.output[0]] = value
            if node.op_type == "Constant":
                nodes.append(node)
            else:
                nodes.append(helper.make_node("Constant", [], [node.output[0]], name=node.name,
                                              value=numpy_helper.from_array(value)))
                folded = True
        if not folded:
            return inferred
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return inferred


def _without_weight_data(model):
    """The model with its large float initializers turned into inputs of the same shape (shape inference needs
    their shapes, not their values; small ones stay, since a shape may be computed from them)."""
    import onnx
    light = onnx.ModelProto()
    light.CopyFrom(model)
    keep, moved = [], []
    for t in light.graph.initializer:
        (moved if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) and math.prod(t.dims) > 64
         else keep).append(t)
    del light.graph.initializer[:]
    light.graph.initializer.extend(keep)
    for t in moved:
        light.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return light


def _known_shapes(model, where: str, batch: int) -> dict[str, tuple[tuple[int, ...], int]]:
    """name -> (shape, bytes per element) of every tensor of an inferred graph; CheckpointError when one has an
    unknown shape or too many elements."""
    graph = model.graph
    out: dict[str, tuple[tuple[int, ...], int]] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        dims = _dims(value) if tensor_type.HasField("shape") else None
        if dims is None or any(not isinstance(d, int) for d in dims):
            raise _fail(where, f"has a tensor ({value.name[:40]}) whose shape cannot be worked out before running "
                               f"it at a batch of {batch}; Latent Lab runs only graphs whose every shape is known.")
        out[value.name] = (tuple(dims), _ELEMENT_BYTES.get(tensor_type.elem_type, 8))
    for t in graph.initializer:
        out.setdefault(t.name, (tuple(t.dims), _ELEMENT_BYTES.get(t.data_type, 8)))
    produced = {name for node in graph.node for name in node.output if name}
    missing = sorted(produced - set(out))
    if missing:
        raise _fail(where, f"has a tensor ({missing[0][:40]}) whose shape cannot be worked out before running it "
                           f"at a batch of {batch}; Latent Lab runs only graphs whose every shape is known.")
    return out


def _multiply_adds(graph, shapes) -> int:
    """About how many multiply-adds one run takes: matrix products and convolutions counted in full, every other
    operator as one per output element."""
    total = 0
    for node in graph.node:
        out = math.prod(shapes[node.output[0]][0]) if node.output and node.output[0] in shapes else 0
        ins = [shapes.get(name, ((),))[0] for name in node.input]
        if node.op_type == "MatMul" and ins and ins[0]:
            total += out * ins[0][-1]
        elif node.op_type == "Gemm" and ins and len(ins[0]) == 2:
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            total += out * ins[0][0 if trans_a else 1]
        elif node.op_type == "Conv" and len(ins) > 1 and len(ins[1]) > 1:
            total += out * math.prod(ins[1][1:])
        elif node.op_type == "ConvTranspose" and len(ins) > 1 and len(ins[1]) > 1:
            total += math.prod(ins[0]) * math.prod(ins[1][1:])
        else:
            total += out
    return total


class GraphRunner:
    """One checked graph in an ONNX Runtime session: `run(feeds)` with any number of rows."""

    def __init__(self, plan: GraphPlan, where: str):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1       # the server is shared: one core per run, and no busy waiting
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_cpu_mem_arena = False   # give memory back after each run
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(plan.data, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime's Fail, InvalidGraph, NotImplemented...
            raise _fail(where, f"cannot be run by ONNX Runtime: {_first_line(e)}") from None
        self.plan = plan
        self.where = where
        self._probe()

    def _probe(self) -> None:
        """Run two rows once, under a deadline: the graph must finish and give finite rows of the right shape."""
        import onnxruntime as ort

        rng = np.random.default_rng(0)
        feeds = {p.name: rng.random((2, p.size), dtype=np.float32) for p in self.plan.inputs}
        options = ort.RunOptions()
        timer = threading.Timer(PROBE_SECONDS, lambda: setattr(options, "terminate", True))
        timer.start()
        try:
            results = self.session.run([p.name for p in self.plan.outputs], feeds, options)
        except Exception as e:  # noqa: BLE001
            if options.terminate:
                raise _fail(self.where, f"did not finish two rows within {PROBE_SECONDS:g} s.") from None
            raise _fail(self.where, f"fails on a test input: {_first_line(e)}") from None
        finally:
            timer.cancel()
        for port, value in zip(self.plan.outputs, results):
            if value.shape != (2, port.size):
                raise _fail(self.where, f"gives {port.name} the shape {list(value.shape)} for two rows; it must be "
                                        f"[2, {port.size}].")
            if not np.isfinite(value).all():
                raise _fail(self.where, f"gives NaN or infinite values of {port.name} on a test input.")

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs (float32 [rows, size], in plan order) for inputs of [rows, size] each."""
        rows = next(iter(feeds.values())).shape[0]
        names = [p.name for p in self.plan.outputs]
        if rows == 0:
            return [np.zeros((0, p.size), np.float32) for p in self.plan.outputs]
        parts: list[list[np.ndarray]] = [[] for _ in names]
        for start in range(0, rows, self.plan.max_rows):
            chunk = {k: np.ascontiguousarray(v[start:start + self.plan.max_rows], dtype=np.float32)
                     for k, v in feeds.items()}
            n = next(iter(chunk.values())).shape[0]
            padded = 1 << (n - 1).bit_length()  # a checked batch size
            if padded != n:
                chunk = {k: np.concatenate([v, np.zeros((padded - n, v.shape[1]), np.float32)]) for k, v in chunk.items()}
            for part, value in zip(parts, self.session.run(names, chunk)):
                part.append(value[:n])
        return [np.concatenate(p) if len(p) > 1 else p[0] for p in parts]


def half_weights(data: bytes) -> bytes:
    """The graph with each float32 weight stored as float16 and cast back on load (ONNX Runtime folds the
    casts once, at session start): half the bytes, and the computation still in float32. A weight outside
    float16's range stays float32."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_model_from_string(data)
    graph = model.graph
    keep, casts = [], []
    for t in graph.initializer:
        if t.data_type != onnx.TensorProto.FLOAT or math.prod(t.dims) < 16:
            keep.append(t)
            continue
        values = numpy_helper.to_array(t)
        half = values.astype(np.float16)
        if not np.isfinite(half).all():
            keep.append(t)
            continue
        keep.append(numpy_helper.from_array(half, t.name + ".float16"))
        casts.append(helper.make_node("Cast", [t.name + ".float16"], [t.name], to=onnx.TensorProto.FLOAT,
                                      name=t.name + ".cast"))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model.SerializeToString()

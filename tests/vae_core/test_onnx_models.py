"""Any PyTorch VAE through the protocol (vae_core/external.py): exported as ONNX graphs into one checkpoint, run
by ONNX Runtime on the server as an OnnxModel with LatentModel's API, equal to torch; and hostile graphs, each
refused in one sentence before ONNX Runtime runs them, quickly and without the memory they ask for."""
from __future__ import annotations

import json
import textwrap
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import save as safetensors_bytes
from torch import nn

import vae_core.checkpoints as checkpoints_mod
import vae_core.data as data_mod
from vae_core import CheckpointError, CheckpointRecord, ModelConfig, load_checkpoint
from vae_core.__main__ import main
from vae_core.evaluation import log_likelihood
from vae_core.external import OnnxModel, decoder_onnx, decoder_spec, export_graphs
from vae_core.importers import ForeignModelError, explore, onnx_model
from vae_core.record import ModelSource

from reference_vaes import CONFIG, TinyConvVAE, TinyLabelVAE, decoder_graph, trained, write_onnx_checkpoint

TOL = 1e-5


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data_mod, "_try_download", lambda name: (_ for _ in ()).throw(RuntimeError("offline")))


def test_a_conv_vae_explored_from_python_runs_on_the_server_equal_to_torch(tmp_path, fake_data_dir, capsys):
    ref = trained(TinyConvVAE())
    result = explore(ref, name="tiny conv VAE", out=tmp_path / "mine" / "tiny.safetensors", eval_samples=4,
                     test_limit=50, data_dir=fake_data_dir)
    assert result.path == (tmp_path / "mine" / "tiny.safetensors").resolve() and result.path.is_file()
    assert f"LATENT_LAB_MODEL_DIRS={tmp_path / 'mine'}" in result.command and "streamlit run" in result.command
    assert result.command in capsys.readouterr().out

    model, record = load_checkpoint(result.path)
    assert isinstance(model, OnnxModel) and record.is_onnx and record.source.code.endswith("TinyConvVAE")
    assert record.model_config.describe() == "vae | 2-D latent" and record.model_config.prior == "standard"
    assert model.num_parameters() == sum(p.numel() for p in ref.parameters())
    assert {"neg_elbo", "nll_is", "diversity"} <= set(record.metrics) and record.latent_means()[0].shape == (100, 2)

    z, images = torch.randn(300, 2) * 2, torch.rand(300, 784)   # more rows than one checked batch of 256
    with torch.no_grad():
        want = torch.sigmoid(ref.decode(z).reshape(300, -1))
        mu_ref, logvar_ref = ref.encode(images.reshape(-1, 1, 28, 28))
    assert (model.decode(z) - want).abs().max() < TOL
    mu, logvar = model.encode(images)
    assert (mu - mu_ref).abs().max() < TOL and (logvar - logvar_ref).abs().max() < TOL
    # the rest of LatentModel's API, built on those two graphs
    terms = model.loss(images[:8], per_example=True)
    assert terms["loss"].shape == (8,) and terms["kl_per_dim"].shape == (8, 2)
    assert torch.allclose(terms["kl"], 0.5 * (mu[:8].pow(2) + logvar[:8].exp() - 1 - logvar[:8]).sum(-1), atol=1e-5)
    assert model.sample(None, 5).shape == (5, 784) and model.reconstruct(images[:3]).shape == (3, 784)
    assert torch.isfinite(log_likelihood(model, images[:4], None, samples=20)).all()
    assert model.eval() is model and model.device == torch.device("cpu")


def test_the_browser_gets_the_decoder_graph_and_its_interface(tmp_path):
    ref = trained(TinyLabelVAE())
    model = onnx_model(ref)
    data, spec = decoder_onnx(model), decoder_spec(model)
    assert model.onnx_decoder == (data, spec)
    assert spec["inputs"] == [{"name": "z", "shape": [None, 3], "role": "z"},
                              {"name": "label_onehot", "shape": [None, 10], "role": "label"}]
    assert (spec["output"], spec["output_is_logits"], spec["latent_dim"], spec["label_classes"]) == ("logits", True, 3, 10)
    assert spec["image_size"] == 28 and spec["max_rows"] >= 1
    import onnxruntime as ort
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    z, labels = torch.randn(7, 3), torch.arange(7)
    (logits,) = session.run(["logits"], {"z": z.numpy(), "label_onehot": F.one_hot(labels, 10).float().numpy()})
    with torch.no_grad():
        assert np.abs(1 / (1 + np.exp(-logits)) - torch.sigmoid(ref.decode(z, labels)).numpy()).max() < TOL
    assert decoder_onnx(object()) is None and decoder_spec(object()) is None


def test_a_label_model_decodes_per_label_as_torch_does():
    ref = trained(TinyLabelVAE())
    model = onnx_model(ref)
    assert (model.config.variant, model.config.condition, model.config.prior) == ("cvae", "label", "standard")
    z, labels = torch.randn(20, 3), torch.arange(20) % 10
    with torch.no_grad():
        assert (model.decode(z, labels) - torch.sigmoid(ref.decode(z, labels))).abs().max() < TOL
        images = torch.rand(20, 784)
        assert (model.encode(images, labels)[0] - ref.encode(images.reshape(-1, 1, 28, 28), labels)[0]).abs().max() < TOL
    assert model.sample(torch.tensor([3, 4]), 6).shape == (2, 6, 784)
    assert (model.prior(model.features(labels, 20), 20)[1] == 0).all()


class Sampling(TinyConvVAE):
    def decode(self, z):
        return self.dec(z + torch.randn_like(z))


class Branching(TinyConvVAE):
    """Branches in Python on a value: the export follows the branch its example input took, and no other."""

    def decode(self, z):
        return self.dec(z) if float(z.abs().sum()) == 0 else self.dec(2 * z)


class Probabilities(TinyConvVAE):
    """Returns pixel probabilities, as a trained decoder would: mostly near 0 (the background)."""

    def decode(self, z):
        return torch.sigmoid(self.dec(z) - 6)


class NoLatent(nn.Module):
    def encode(self, images):
        return images, images

    def decode(self, z):
        return z


@pytest.mark.parametrize("model, words", [
    (Sampling(), "uses the operator RandomNormalLike, which Latent Lab does not run"),
    (Branching(), "the exported graphs disagree with the model"),
    (Probabilities(), "decode must return logits"),
    (NoLatent(), "has no latent_dim attribute"),
], ids=["decode-samples", "decode-branches", "probabilities", "no-latent-dim"])
def test_a_model_off_the_protocol_is_one_sentence(model, words):
    with pytest.raises(ForeignModelError, match=words) as e:
        onnx_model(model)
    assert "\n" not in str(e.value)


def test_module_path_imports_a_persons_file_with_weights_and_history(tmp_path, fake_data_dir, capsys):
    source = textwrap.dedent('''
        import torch
        from torch import nn

        class Model(nn.Module):
            latent_dim = 2
            image_size = 28

            def __init__(self):
                super().__init__()
                self.e = nn.Linear(784, 4)
                self.d = nn.Linear(2, 784)

            def encode(self, images):
                return self.e(images.flatten(1)).chunk(2, dim=-1)

            def decode(self, z):
                return self.d(z)

        def build():
            return Model()
    ''')
    (tmp_path / "my_vae.py").write_text(source)
    import importlib.util
    spec = importlib.util.spec_from_file_location("my_vae_for_weights", tmp_path / "my_vae.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ref = module.build()
    torch.save(ref.state_dict(), tmp_path / "my.pt")
    history = {"step": [1, 2, 3], "loss": [300.0, 250.0, 200.0], "recon": [290.0, 240.0, 190.0],
               "kl": [10.0, 10.0, 10.0], "epochs": [{"epoch": 0, "train": {"loss": 250.0, "recon": 240.0, "kl": 10.0},
                                                     "eval": {"loss": 240.0, "recon": 230.0, "kl": 10.0}}]}
    (tmp_path / "history.json").write_text(json.dumps(history))
    out = tmp_path / "runs" / "my-vae.safetensors"
    code = main(["import", "--module", str(tmp_path / "my_vae.py") + ":build", "--weights", str(tmp_path / "my.pt"),
                 "--history", str(tmp_path / "history.json"), "--out", str(out), "--eval-samples", "2",
                 "--test-limit", "20", "--quiet", "--data-dir", str(fake_data_dir)])
    assert code == 0, capsys.readouterr().err
    model, record = load_checkpoint(out)
    assert isinstance(model, OnnxModel)
    assert (record.source.kind, record.source.file, record.source.code) == ("onnx", "my.pt", "my_vae.py:build")
    assert record.history.loss == [300.0, 250.0, 200.0] and record.epochs_completed == 1
    z = torch.randn(4, 2)
    with torch.no_grad():
        assert (model.decode(z) - torch.sigmoid(ref.decode(z))).abs().max() < TOL
    # weights that do not fit what build() makes are one sentence
    torch.save({"e.weight": torch.zeros(4, 784)}, tmp_path / "wrong.pt")
    code = main(["import", "--module", str(tmp_path / "my_vae.py") + ":build", "--weights", str(tmp_path / "wrong.pt"),
                 "--out", str(tmp_path / "w.safetensors"), "--eval-samples", "0", "--data-dir", str(fake_data_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "wrong.pt does not fit the model build() made: missing e.bias" in err


def test_float16_storage_halves_the_graphs_and_records_the_change(tmp_path, fake_data_dir):
    ref = trained(TinyConvVAE())
    full = explore(ref, out=tmp_path / "a.safetensors", eval_samples=0, data_dir=fake_data_dir)
    half = explore(ref, out=tmp_path / "b.safetensors", eval_samples=0, data_dir=fake_data_dir, float16=True)
    model, record = load_checkpoint(half.path)
    assert record.storage_dtype == "float16" and 0 < record.float16_max_abs_diff < 1e-2
    assert len(decoder_onnx(model)) < 0.7 * len(decoder_onnx(load_checkpoint(full.path)[0]))


# ----------------------------------------------------------------------------- hostile graphs
def good_graphs() -> tuple[bytes, bytes]:
    return export_graphs(TinyConvVAE().eval())


W = numpy_helper.from_array(np.ones((2, 784), np.float32), "W")


def huge_constant():
    """logits = z W + sum(ones of 100,000 x 100,000): 40 GB if it ever ran."""
    shape = numpy_helper.from_array(np.array([100_000, 100_000], np.int64), "shape")
    return decoder_graph([helper.make_node("MatMul", ["z", "W"], ["zw"]),
                          helper.make_node("ConstantOfShape", ["shape"], ["big"]),
                          helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
                          helper.make_node("Add", ["zw", "total"], ["logits"])], [W, shape])


def slow_chain():
    """A thousand 1,000 x 1,000 matrix products per row: a billion multiply-adds per decoded image."""
    square = numpy_helper.from_array(np.eye(1000, dtype=np.float32), "S")
    into = numpy_helper.from_array(np.ones((2, 1000), np.float32), "In")
    out = numpy_helper.from_array(np.ones((1000, 784), np.float32), "Out")
    nodes = [helper.make_node("MatMul", ["z", "In"], ["h0"])]
    nodes += [helper.make_node("MatMul", [f"h{i}", "S"], [f"h{i + 1}"]) for i in range(1000)]
    nodes.append(helper.make_node("MatMul", ["h1000", "Out"], ["logits"]))
    return decoder_graph(nodes, [square, into, out])


def data_dependent_shape():
    """Reshape to a shape read from the input's values: unknowable before running."""
    return decoder_graph([helper.make_node("Cast", ["z"], ["zi"], to=TensorProto.INT64),
                          helper.make_node("ReduceMax", ["zi"], ["shape"], axes=[0], keepdims=0),
                          helper.make_node("Reshape", ["W", "shape"], ["r"], allowzero=0),
                          helper.make_node("MatMul", ["z", "W"], ["zw"]),
                          helper.make_node("Add", ["zw", "r"], ["logits"])], [W])


def external_data():
    tensor = numpy_helper.from_array(np.ones((2, 784), np.float32), "W")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="/etc/passwd")
    return decoder_graph([helper.make_node("MatMul", ["z", "W"], ["logits"])], [tensor])


HOSTILE = {
    "unknown-operator": (lambda: decoder_graph([helper.make_node("EvilOp", ["z"], ["logits"])]),
                         "uses the operator EvilOp, which Latent Lab does not run"),
    "control-flow": (lambda: decoder_graph([helper.make_node("Loop", ["z"], ["logits"])]),
                     "uses the operator Loop"),
    "contrib-domain": (lambda: decoder_graph([helper.make_node("FusedGemm", ["z", "W"], ["logits"],
                                                               domain="com.microsoft")], [W],
                                             opsets=(("", 17), ("com.microsoft", 1))),
                       "imports operators from the domain 'com.microsoft'"),
    "missing-input": (lambda: decoder_graph([helper.make_node("MatMul", ["latent", "W"], ["logits"])], [W],
                                            z_name="latent"),
                      "has the inputs latent; a Latent Lab input set is exactly z"),
    "huge-declared-input": (lambda: decoder_graph([helper.make_node("MatMul", ["z", "W"], ["logits"])], [W],
                                                  z_size=10**12),
                            "declares z as [N, 1000000000000]; it must be [batch, 2]"),
    "huge-inner-tensor": (huge_constant, "bytes of tensors for one row"),
    "too-slow": (slow_chain, "multiply-adds per row"),
    "unknowable-shape": (data_dependent_shape, "whose shape cannot be worked out before running it"),
    "external-data": (external_data, "refers to data in another file"),
    "not-onnx": (lambda: b"\x08\x01" + b"\xff" * 200, "is not a readable ONNX model"),
    "fixed-batch": (lambda: decoder_graph([helper.make_node("MatMul", ["z", "W"], ["logits"])], [W],
                                          inputs=[helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2])]),
                    "fixes the batch size of z at 1"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_decoder_graph_is_one_sentence_quickly(tmp_path, case):
    make, words = HOSTILE[case]
    encoder, _ = good_graphs()
    path = write_onnx_checkpoint(tmp_path / f"{case}.safetensors", encoder, make())
    started = time.perf_counter()
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert time.perf_counter() - started < 15, "refusing a graph must not take long"
    message = str(e.value)
    assert words in message and "\n" not in message, message
    assert message.startswith(f"the decoder graph of {case}.safetensors "), message


def test_a_huge_graph_is_refused_before_it_is_read(tmp_path, monkeypatch):
    encoder, decoder = good_graphs()
    path = write_onnx_checkpoint(tmp_path / "big.safetensors", encoder, decoder)
    monkeypatch.setattr(checkpoints_mod, "MAX_GRAPH_BYTES", 1000)
    with pytest.raises(CheckpointError, match=r"big.safetensors: onnx.(en|de)coder holds [\d,]+ bytes; at most 1,000 "
                                              "are read"):
        load_checkpoint(path)


def test_an_onnx_record_without_its_graphs_or_with_other_tensors_is_one_sentence(tmp_path):
    record = CheckpointRecord(model_config=CONFIG, source=ModelSource(kind="onnx"))
    (tmp_path / "empty.safetensors").write_bytes(
        safetensors_bytes({"w": torch.zeros(2)}, metadata={"latent_lab": record.to_json()}))
    with pytest.raises(CheckpointError, match="says it holds ONNX graphs, but its tensors are w"):
        load_checkpoint(tmp_path / "empty.safetensors")
    encoder, decoder = good_graphs()
    quadrants = ModelConfig(variant="cvae", condition="quadrants", latent_dim=2, prior="standard")
    with pytest.raises(CheckpointError, match="ONNX models are plain VAEs or label CVAEs"):
        load_checkpoint(write_onnx_checkpoint(tmp_path / "q.safetensors", encoder, decoder, quadrants))


def test_graphs_of_the_wrong_sizes_for_the_record_are_one_sentence(tmp_path):
    encoder, decoder = good_graphs()
    wider = CONFIG.replace(latent_dim=3)
    with pytest.raises(CheckpointError, match=r"declares images as|mu the shape|must be \[batch, 3\]|\[1, 3\]"):
        load_checkpoint(write_onnx_checkpoint(tmp_path / "w.safetensors", encoder, decoder, wider))


def test_training_cannot_continue_from_onnx_graphs(tmp_path, fake_data_dir, capsys):
    made = explore(trained(TinyConvVAE()), out=tmp_path / "c.safetensors", eval_samples=0, data_dir=fake_data_dir)
    capsys.readouterr()
    code = main(["train", "--hidden-dims", "32", "--epochs", "1", "--init-from", str(made.path), "--data-dir",
                 str(fake_data_dir), "--out", str(tmp_path / "t.safetensors"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "holds ONNX graphs of a model trained elsewhere" in err and len(err.strip().splitlines()) == 1


def test_a_graph_too_long_to_check_is_refused_at_the_deadline(tmp_path, monkeypatch):
    """5,000 additions of shape values, each folded by the checker: the check stops at its deadline."""
    import vae_core.onnx_graphs as graphs
    monkeypatch.setattr(graphs, "CHECK_SECONDS", 1.0)
    one = numpy_helper.from_array(np.array([1], np.int64), "one")
    nodes = [helper.make_node("Add", ["one" if i == 0 else f"c{i - 1}", "one"], [f"c{i}"]) for i in range(5000)]
    nodes.append(helper.make_node("MatMul", ["z", "W"], ["logits"]))
    encoder, _ = good_graphs()
    path = write_onnx_checkpoint(tmp_path / "long.safetensors", encoder, decoder_graph(nodes, [W, one]))
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="could not be checked within 1 s"):
        load_checkpoint(path)
    assert time.perf_counter() - started < 15

"""BMN against a literal transcription of the reference (JJBOY a92c1d7): mask, weights, outputs, gradients."""

from __future__ import annotations

import warnings

import pytest
import torch

from benchmarks.bmn_reference import ReferenceBMN
from visionzoo.errors import VisionZooError
from visionzoo.models import create_model
from visionzoo.models.bmn import BMN, bm_sample_weights

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

T_SMALL, FEAT_SMALL = 24, 32


def _reference_layout(weights: torch.Tensor, t_scale: int) -> torch.Tensor:
    """Our sparse [N*T, T*T] weights as the reference's dense [T, N*T*T] `sample_mask`."""
    rows, cols = weights.indices()
    n_rows = weights.shape[0]
    mask = torch.sparse_coo_tensor(
        torch.stack([rows % t_scale, (rows // t_scale) * t_scale * t_scale + cols]),
        weights.values(),
        (t_scale, n_rows * t_scale),
        check_invariants=True,
    )
    return mask.to_dense()


@pytest.fixture(scope="module")
def reference_small() -> ReferenceBMN:
    torch.manual_seed(0)
    return ReferenceBMN(temporal_scale=T_SMALL, feat_dim=FEAT_SMALL)


@pytest.fixture(scope="module")
def reference_checkpoint(reference_small: ReferenceBMN, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The reference's `BMN_best.pth.tar` layout: DataParallel `module.` keys, the frozen mask included."""
    path = tmp_path_factory.mktemp("bmn") / "BMN_best.pth.tar"
    state = {"module." + k: v for k, v in reference_small.state_dict().items()}
    torch.save({"epoch": 9, "state_dict": state}, path)
    return str(path)


def test_sample_mask_equals_reference_bit_for_bit_at_t100() -> None:
    reference_mask = ReferenceBMN(temporal_scale=100, feat_dim=4).sample_mask.data
    ours = _reference_layout(bm_sample_weights(100), 100)
    assert ours.shape == reference_mask.shape == (100, 320000)
    assert int((reference_mask != 0).sum()) == 479238
    assert torch.equal(ours, reference_mask)


def test_parameter_count_and_names_match_reference() -> None:
    model = BMN()
    assert sum(p.numel() for p in model.parameters()) == 4_978_564
    reference = ReferenceBMN(temporal_scale=8, feat_dim=400)
    reference_names = {k for k in reference.state_dict() if k != "sample_mask"}
    assert set(BMN(temporal_scale=8).state_dict()) == reference_names


def test_sample_weights_are_not_in_state_dict() -> None:
    for impl in ("sparse", "matmul", "dense"):
        state = BMN(temporal_scale=T_SMALL, feat_dim=FEAT_SMALL, bm_impl=impl).state_dict()
        assert all(k.split(".")[0] in {"x_1d_b", "x_1d_s", "x_1d_e", "x_1d_p", "x_3d_p", "x_2d_p"} for k in state)


@pytest.mark.parametrize("bm_impl", ["sparse", "matmul", "dense"])
def test_outputs_and_gradients_match_reference(
    bm_impl: str, reference_small: ReferenceBMN, reference_checkpoint: str
) -> None:
    model = create_model(
        "bmn", pretrained=reference_checkpoint, temporal_scale=T_SMALL, feat_dim=FEAT_SMALL, bm_impl=bm_impl
    )
    x = torch.randn(2, FEAT_SMALL, T_SMALL, generator=torch.Generator().manual_seed(1))

    def run(net: torch.nn.Module) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        net.zero_grad()
        inputs = x.clone().requires_grad_()
        outputs = net(inputs)
        # A loss whose terms do not cancel, so a ReLU flipping at a 1e-7 pre-activation cannot dominate a gradient.
        sum(out.sum() for out in outputs).backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.requires_grad}
        return [o.detach() for o in outputs] + [inputs.grad], grads

    ours, our_grads = run(model)
    theirs, their_grads = run(reference_small)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))
    assert set(our_grads) == set(their_grads)
    for name, grad in our_grads.items():
        expected = their_grads[name]
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()), msg=name)


def test_invalid_cells_carry_the_conv3d_bias_like_the_reference(reference_small: ReferenceBMN) -> None:
    model = BMN(temporal_scale=T_SMALL, feat_dim=FEAT_SMALL)
    model.load_state_dict({k: v for k, v in reference_small.state_dict().items() if k != "sample_mask"})
    features = torch.randn(1, 256, T_SMALL).relu()
    ours = model._boundary_matching(features)
    lower = torch.tril(torch.ones(T_SMALL, T_SMALL, dtype=torch.bool), diagonal=-1)
    expected = torch.relu(reference_small.x_3d_p[0].bias)[:, None].expand(-1, int(lower.sum()))
    assert torch.equal(ours[0][:, lower], expected)


def test_bf16_autocast_is_close_to_fp32_dense(reference_small: ReferenceBMN) -> None:
    """bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%); after ~7 layers we allow 2% of each output's range."""
    model = BMN(temporal_scale=T_SMALL, feat_dim=FEAT_SMALL)
    model.load_state_dict({k: v for k, v in reference_small.state_dict().items() if k != "sample_mask"})
    x = torch.randn(2, FEAT_SMALL, T_SMALL, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference_small(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ours = model(x)
    for a, b in zip(ours, expected, strict=True):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b, rtol=0.0, atol=0.02 * float(b.abs().max()))


def test_bf16_autocast_backward_runs_sparse_part_in_fp32() -> None:
    model = BMN(temporal_scale=T_SMALL, feat_dim=FEAT_SMALL)
    x = torch.randn(2, FEAT_SMALL, T_SMALL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        confidence, start, end = model(x)
    (confidence.float().mean() + start.float().mean() + end.float().mean()).backward()
    weight_grad = model.x_3d_p[0].weight.grad
    assert weight_grad is not None and weight_grad.dtype == torch.float32 and bool(weight_grad.abs().sum() > 0)


def test_loading_another_models_checkpoint_fails(tmp_path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(3, 3), "fc.bias": torch.zeros(2)}}, path)
    with pytest.raises(VisionZooError, match="weights do not fit BMN"):
        create_model("bmn", pretrained=str(path), temporal_scale=T_SMALL, feat_dim=FEAT_SMALL)


def test_bad_bm_impl_is_a_user_error() -> None:
    with pytest.raises(VisionZooError, match="bm_impl"):
        BMN(temporal_scale=T_SMALL, bm_impl="fast")


def test_matmul_formulation_exports_to_onnx_and_matches_in_onnxruntime(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = BMN(temporal_scale=16, feat_dim=FEAT_SMALL, bm_impl="matmul").eval()
    x = torch.randn(2, FEAT_SMALL, 16)
    path = tmp_path / "bmn.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["x"], dynamo=False, opset_version=17)
    outputs = ort.InferenceSession(str(path)).run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    for got, want in zip(outputs, expected, strict=True):
        torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-5, atol=1e-6)

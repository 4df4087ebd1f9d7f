"""BMN against a literal transcription of the reference (JJBOY a92c1d7): mask, weights, outputs, gradients."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from numerics import BF16, FP32, assert_close, normwise_error

from benchmarks.bmn_reference import ReferenceBMN
from visionzoo.errors import VisionZooError
from visionzoo.models import create_model
from visionzoo.models.bmn import BMN, bm_sample_weights

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

T_SMALL, FEAT_SMALL = 24, 32
INPUT = torch.randn(2, FEAT_SMALL, T_SMALL, generator=torch.Generator().manual_seed(1))


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


def _outputs_and_gradients(net: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The three outputs, and the gradients of the input and every parameter."""
    net.zero_grad()
    inputs = x.clone().requires_grad_()
    outputs = net(inputs)
    # A loss whose terms do not cancel, so a ReLU flipping at a 1e-7 pre-activation cannot dominate a gradient.
    sum(out.sum() for out in outputs).backward()
    found = dict(zip(("confidence_map", "start", "end"), (o.detach() for o in outputs), strict=True))
    found["input.grad"] = inputs.grad
    return found | {f"{n}.grad": p.grad.clone() for n, p in net.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def exact_reference(reference_small: ReferenceBMN) -> dict[str, torch.Tensor]:
    """The reference transcription in float64: the oracle, free of float32 kernels' summation order."""
    return _outputs_and_gradients(copy.deepcopy(reference_small).double(), INPUT.double())


def _errors(model: torch.nn.Module, exact: dict[str, torch.Tensor]) -> dict[str, float]:
    ours = _outputs_and_gradients(model, INPUT)
    assert ours.keys() == exact.keys()
    return {name: normwise_error(value, exact[name]) for name, value in ours.items()}


@pytest.mark.numerics
@pytest.mark.parametrize("bm_impl", ["sparse", "matmul"])
def test_outputs_and_gradients_match_reference(
    bm_impl: str, reference_checkpoint: str, exact_reference: dict[str, torch.Tensor]
) -> None:
    model = create_model(
        "bmn", pretrained=reference_checkpoint, temporal_scale=T_SMALL, feat_dim=FEAT_SMALL, bm_impl=bm_impl
    )
    for name, error in _errors(model, exact_reference).items():
        assert error <= FP32, f"{name}: norm-wise relative error {error:.2e} > {FP32:.0e}"


@pytest.mark.numerics
def test_dense_formulation_is_the_reference_operation_for_operation(
    reference_small: ReferenceBMN, reference_checkpoint: str
) -> None:
    """The same float32 operations in the same order: equal to the bit, on any kernels (which is also why it
    is not compared with float64: oneDNN's AVX2 Conv3d backward puts it 4e-5 away, see tests/numerics.py)."""
    model = create_model(
        "bmn", pretrained=reference_checkpoint, temporal_scale=T_SMALL, feat_dim=FEAT_SMALL, bm_impl="dense"
    )
    ours, theirs = _outputs_and_gradients(model, INPUT), _outputs_and_gradients(reference_small, INPUT)
    for name, value in ours.items():
        assert torch.equal(value, theirs[name]), name


@pytest.mark.numerics
def test_the_reference_comparison_catches_a_wrong_sample_weight_and_a_dropped_bias(
    reference_checkpoint: str, exact_reference: dict[str, torch.Tensor]
) -> None:
    def model() -> BMN:
        return create_model(
            "bmn", pretrained=reference_checkpoint, temporal_scale=T_SMALL, feat_dim=FEAT_SMALL, bm_impl="matmul"
        )

    wrong_weight = model()
    with torch.no_grad():  # one of the sample weights (a mid-map cell's), 10 % off
        row, col = wrong_weight.weights_dense_t.nonzero()[len(wrong_weight.weights_dense_t.nonzero()) // 2]
        wrong_weight.weights_dense_t[row, col] *= 1.1
    assert max(_errors(wrong_weight, exact_reference).values()) > 10 * FP32

    dropped_bias = model()
    with torch.no_grad():  # as if the boundary-matching layer forgot the Conv3d bias
        dropped_bias.x_3d_p[0].bias.zero_()
    assert max(_errors(dropped_bias, exact_reference).values()) > 10 * FP32


@pytest.mark.numerics
@pytest.mark.parametrize("bm_impl", ["sparse", "matmul"])
def test_cells_below_the_diagonal_equal_the_reference_near_it_far_from_it_and_at_the_borders(bm_impl: str) -> None:
    """The 2-D head skips work below the diagonal; the values it puts there (near the diagonal, in the constant
    region, at the left and bottom borders) must still be the reference's. T=40: every kind of region exists."""
    torch.manual_seed(3)
    reference = ReferenceBMN(temporal_scale=40, feat_dim=FEAT_SMALL).double()
    model = BMN(temporal_scale=40, feat_dim=FEAT_SMALL, bm_impl=bm_impl)
    model.load_state_dict({k: v.float() for k, v in reference.state_dict().items() if k != "sample_mask"})
    x = torch.randn(2, FEAT_SMALL, 40, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        exact, ours = reference(x.double())[0], model(x)[0]
    below = torch.tril(torch.ones(40, 40, dtype=torch.bool), diagonal=-1)
    for name, region in (("band", below & ~torch.tril(below, diagonal=-5)), ("far", torch.tril(below, diagonal=-5))):
        assert_close(ours[:, :, region], exact[:, :, region], FP32, name)
    assert_close(ours[:, :, :, :2][:, :, below[:, :2]], exact[:, :, :, :2][:, :, below[:, :2]], FP32, "left border")
    assert_close(ours[:, :, -2:][:, :, below[-2:]], exact[:, :, -2:][:, :, below[-2:]], FP32, "bottom border")


@pytest.mark.numerics
def test_bf16_autocast_is_close_to_fp32_dense(reference_small: ReferenceBMN) -> None:
    """bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%); after ~7 layers we allow 2% (numerics.BF16)."""
    model = BMN(temporal_scale=T_SMALL, feat_dim=FEAT_SMALL)
    model.load_state_dict({k: v for k, v in reference_small.state_dict().items() if k != "sample_mask"})
    x = torch.randn(2, FEAT_SMALL, T_SMALL, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference_small(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ours = model(x)
    for name, a, b in zip(("confidence_map", "start", "end"), ours, expected, strict=True):
        assert a.dtype == torch.bfloat16
        assert_close(a.float(), b, BF16, name)


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


@pytest.mark.numerics
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
        assert_close(got, want, FP32)

"""PyTorch's autocast op policy, as data: which dtype each op runs in under ``autocast``, per device type.

Categories (PyTorch's ``CastPolicy``):

- ``LOWER``: floating inputs (not float64) are cast to the autocast dtype (bfloat16 or float16).
- ``FP32``: floating inputs are cast to float32.
- ``FP32_SET_OPT_DTYPE``: ops with an optional ``dtype=`` (``sum``, ``softmax`` ...): when the first
  input is a 16-bit or 32-bit float and no ``dtype`` is given, the op runs (and returns) in float32.
- ``FP32_APPEND_DTYPE``: ``norm``: computed and returned in float32.
- ``PROMOTE``: inputs are cast to the widest floating dtype among them, starting from the autocast
  dtype (all bfloat16 stays bfloat16; any float32 makes all float32).
- ``BANNED``: raises (``binary_cross_entropy`` on CUDA: its backward is not safe in float16).

An op that is not listed runs in the dtypes it is given. The names are ATen's (the ops PyTorch
registers under its ``AutocastCPU``/``AutocastCUDA`` dispatch keys, PyTorch 2.13:
``aten/src/ATen/autocast_mode.{h,cpp}``), which are the Python names except ``cross_entropy_loss``
(``F.cross_entropy``). ``tests/test_autocast.py`` checks the registered lists against the installed
PyTorch's dispatcher, and the outputs of every CPU op distgrad has against ``torch.autocast("cpu")``.

``COMPOSED`` adds ops that PyTorch does not register but builds from registered ones, with the category
their result follows (``einsum`` on the CPU runs through ``bmm``; ``cross_entropy`` on CUDA through
``log_softmax``): distgrad computes these as one op of its own, so it must look their category up.
"""
from __future__ import annotations

LOWER = "lower_precision_fp"
FP32 = "fp32"
FP32_SET_OPT_DTYPE = "fp32_set_opt_dtype"
FP32_APPEND_DTYPE = "fp32_append_dtype"
PROMOTE = "promote"
BANNED = "banned"

DEVICE_TYPES = ("cpu", "cuda")
DEFAULT_DTYPE_NAMES = {"cpu": "bfloat16", "cuda": "float16"}  # PyTorch's defaults for autocast(device_type)

REGISTERED = {
    "cpu": {
        LOWER: """conv1d conv2d conv3d bmm mm linalg_vecdot baddbmm addmm _addmm_activation addbmm linear
            _convolution matmul conv_tbc mkldnn_rnn_layer conv_transpose1d conv_transpose2d conv_transpose3d prelu
            scaled_dot_product_attention _native_multi_head_attention""",
        FP32: """avg_pool3d binary_cross_entropy grid_sampler polar prod quantile nanquantile stft cdist
            grid_sampler_2d _grid_sampler_2d_cpu_fallback grid_sampler_3d trace view_as_complex cholesky
            cholesky_inverse cholesky_solve inverse lu_solve orgqr ormqr pinverse max_pool3d max_unpool2d
            max_unpool3d adaptive_avg_pool3d reflection_pad1d reflection_pad2d replication_pad1d replication_pad2d
            replication_pad3d mse_loss cosine_embedding_loss nll_loss nll_loss2d hinge_embedding_loss
            poisson_nll_loss smooth_l1_loss cross_entropy_loss l1_loss huber_loss margin_ranking_loss
            soft_margin_loss triplet_margin_loss multi_margin_loss ctc_loss kl_div multilabel_margin_loss
            binary_cross_entropy_with_logits fft_fft fft_ifft fft_fft2 fft_ifft2 fft_fftn fft_ifftn fft_rfft
            fft_irfft fft_rfft2 fft_irfft2 fft_rfftn fft_irfftn fft_hfft fft_ihfft linalg_cond linalg_matrix_rank
            linalg_solve linalg_cholesky linalg_svdvals linalg_eigvals linalg_eigvalsh linalg_inv
            linalg_householder_product linalg_tensorinv linalg_tensorsolve fake_quantize_per_tensor_affine geqrf
            _lu_with_info qr svd triangular_solve fractional_max_pool2d fractional_max_pool3d adaptive_max_pool3d
            multilabel_margin_loss_forward linalg_qr linalg_cholesky_ex linalg_svd linalg_eig linalg_eigh
            linalg_lstsq linalg_inv_ex""",
        PROMOTE: "stack cat index_copy",
    },
    "cuda": {
        LOWER: """_convolution conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d conv_transpose3d
            convolution prelu addmm addmv addr matmul einsum mm mv linalg_vecdot linear addbmm baddbmm bmm
            chain_matmul linalg_multi_dot _thnn_fused_lstm_cell _thnn_fused_gru_cell lstm_cell gru_cell
            rnn_tanh_cell rnn_relu_cell _scaled_dot_product_flash_attention scaled_dot_product_attention
            cudnn_convolution cudnn_convolution_transpose""",
        FP32: """acos asin cosh erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt sinh tan pow softplus
            layer_norm native_layer_norm rms_norm group_norm frobenius_norm nuclear_norm cosine_similarity
            poisson_nll_loss cosine_embedding_loss nll_loss nll_loss2d hinge_embedding_loss kl_div l1_loss
            smooth_l1_loss huber_loss mse_loss margin_ranking_loss multilabel_margin_loss soft_margin_loss
            triplet_margin_loss multi_margin_loss binary_cross_entropy_with_logits dist pdist cdist renorm logsumexp
            upsample_nearest1d _upsample_nearest_exact1d upsample_nearest2d _upsample_nearest_exact2d
            upsample_nearest3d _upsample_nearest_exact3d upsample_linear1d upsample_bilinear2d
            _upsample_bilinear2d_aa upsample_trilinear3d upsample_bicubic2d _upsample_bicubic2d_aa""",
        FP32_SET_OPT_DTYPE: "prod softmax log_softmax cumprod cumsum linalg_vector_norm linalg_matrix_norm sum",
        FP32_APPEND_DTYPE: "norm",
        PROMOTE: "addcdiv addcmul atan2 bilinear cross dot vdot grid_sampler index_put tensordot scatter_add",
        BANNED: "binary_cross_entropy",
    },
}

COMPOSED = {
    # torch.einsum and tensordot contract through bmm/mm; rnn_tanh/relu_cell through linear. A whole
    # recurrent layer ("<mode>_layer", distgrad's names): PyTorch runs a CPU LSTM as mkldnn_rnn_layer and a
    # CPU RNN through linear (low precision), a CPU GRU through gru_cell (left alone).
    "cpu": {LOWER: "einsum tensordot rnn_tanh_cell rnn_relu_cell lstm_layer rnn_tanh_layer rnn_relu_layer"},
    # F.cross_entropy is log_softmax then nll_loss; softmin is softmax(-x); F.normalize divides by a
    # norm; `number / tensor` is reciprocal() * number: PyTorch's CUDA list names them as float32 ops.
    # F.interpolate runs the upsample_* kernels (float32; its mode "area", an adaptive pooling, differs).
    # Every recurrent layer runs in cuDNN (_cudnn_rnn, low precision).
    "cuda": {FP32: "cross_entropy_loss softmin normalize __rtruediv__ interpolate",
             LOWER: "lstm_layer gru_layer rnn_tanh_layer rnn_relu_layer"},
}


def _table(*sources: dict) -> dict:
    """{op name: category} from dicts of {category: whitespace-separated names}."""
    table = {}
    for source in sources:
        for category, names in source.items():
            for name in names.split():
                table[name] = category
    return table


POLICY = {device: _table(REGISTERED[device], COMPOSED[device]) for device in DEVICE_TYPES}


def category(device_type: str, op: str) -> str | None:
    """The category of ``op`` under autocast on ``device_type``; None for an op that is left alone."""
    return POLICY[device_type].get(op)

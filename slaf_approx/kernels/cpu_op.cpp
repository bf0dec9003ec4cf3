// The SLAF op registered with the dispatcher (TORCH_LIBRARY slaf_approx_cpp): one dispatcher call per eager
// forward, with a C++ autograd kernel, over the C kernels of cpu.c (linked in, the same verified build).
//
//   slaf(x, coef, basis, scale, shift, clamp, tlo, thi) -> y
//   slaf_backward(grad, x, coef, basis, ..., need_gx, need_gc) -> (gx, gcoef)   (empty when not needed)
//   slaf_grad_graph(...) -> (gx, gcoef)   differentiable backward (double backward), implemented in Python
//
// basis: the code of kernels.reference.BASIS_CODES; A, B follow kernels.reference.recurrence.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <stdexcept>
#include <vector>

extern "C" {
int slaf_fwd_f32(const float *, float *, const float *, const float *, const float *, int64_t, int64_t, int64_t,
                 int64_t, float, float, int, float, float, int);
int slaf_fwd_f64(const double *, double *, const double *, const double *, const double *, int64_t, int64_t,
                 int64_t, int64_t, double, double, int, double, double, int);
int slaf_bwd_f32(const float *, const float *, float *, double *, const float *, const float *, const float *,
                 int64_t, int64_t, int64_t, int64_t, float, float, int, float, float, int);
int slaf_bwd_f64(const double *, const double *, double *, double *, const double *, const double *,
                 const double *, int64_t, int64_t, int64_t, int64_t, double, double, int, double, double, int);
}

namespace {

using at::Tensor;

const char *error_text(int rc) {
    switch (rc) {
    case 1: return "a required pointer is NULL";
    case 2: return "bad sizes (rows, S, C, K)";
    case 3: return "out of memory";
    case 4: return "A[k] == 0 for some k < K-1: not a polynomial basis";
    default: return "unknown error code";
    }
}

// phi_(k+1) = A_k t phi_k - B_k phi_(k-1), as kernels.reference.recurrence
template <typename T> void recurrence(int64_t basis, int64_t K, std::vector<T> &A, std::vector<T> &B) {
    A.assign(K, T(1));
    B.assign(K, T(0));
    for (int64_t k = 0; k < K; ++k) {
        const double kd = double(k);
        switch (basis) {
        case 0: break;                                                          // power
        case 1: A[k] = k ? T(2) : T(1); B[k] = k ? T(1) : T(0); break;         // chebyshev
        case 2: A[k] = T((2 * kd + 1) / (kd + 1)); B[k] = T(kd / (kd + 1)); break;  // legendre
        case 3: B[k] = T(kd); break;                                            // hermite (He_k)
        default: TORCH_CHECK(false, "unknown basis code ", basis, "; allowed: 0 to 3");
        }
    }
}

struct Layout {
    int64_t rows, S, C, K;
};

// x as [rows, S] (row r uses coefficient row r % C), coef as [C, K]
Layout layout(const Tensor &x, const Tensor &coef) {
    const int64_t K = coef.size(-1);
    if (coef.dim() == 1) return {1, x.numel(), 1, K};
    const int64_t C = coef.size(0), rows = x.size(0) * x.size(1);
    return {rows, rows ? x.numel() / rows : 0, C, K};
}

void check(const Tensor &x, const Tensor &coef) {
    TORCH_CHECK(x.device().is_cpu() && coef.device().is_cpu(), "the SLAF C++ op runs on CPU tensors");
    TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
                "the SLAF C++ op takes float32 or float64, got ", x.scalar_type());
    TORCH_CHECK(coef.dim() == 1 || (coef.dim() == 2 && x.dim() >= 2 && x.size(1) == coef.size(0)),
                "coefficients must be [K] or [C, K] with C the size of x's dim 1");
}

template <typename T>
Tensor fwd_typed(const Tensor &xc, const Tensor &cc, int64_t basis, double scale, double shift, bool clamp,
                 double tlo, double thi) {
    const Layout L = layout(xc, cc);
    Tensor y = at::empty(xc.sizes(), xc.options());
    if (xc.numel() == 0) return y;
    std::vector<T> A, B;
    recurrence<T>(basis, L.K, A, B);
    const int nt = at::get_num_threads();
    int rc;
    if constexpr (std::is_same_v<T, float>)
        rc = slaf_fwd_f32(xc.data_ptr<T>(), y.data_ptr<T>(), cc.data_ptr<T>(), A.data(), B.data(), L.rows, L.S,
                          L.C, L.K, T(scale), T(shift), clamp, T(tlo), T(thi), nt);
    else
        rc = slaf_fwd_f64(xc.data_ptr<T>(), y.data_ptr<T>(), cc.data_ptr<T>(), A.data(), B.data(), L.rows, L.S,
                          L.C, L.K, T(scale), T(shift), clamp, T(tlo), T(thi), nt);
    TORCH_CHECK(rc == 0, "SLAF CPU kernel forward failed: ", error_text(rc));
    return y;
}

Tensor slaf_cpu(const Tensor &x, const Tensor &coef, int64_t basis, double scale, double shift, bool clamp,
                double tlo, double thi) {
    check(x, coef);
    const Tensor xc = x.contiguous(), cc = coef.to(x.scalar_type()).contiguous();
    if (x.scalar_type() == at::kFloat) return fwd_typed<float>(xc, cc, basis, scale, shift, clamp, tlo, thi);
    return fwd_typed<double>(xc, cc, basis, scale, shift, clamp, tlo, thi);
}

template <typename T>
std::tuple<Tensor, Tensor> bwd_typed(const Tensor &gc_, const Tensor &xc, const Tensor &cc, int64_t basis,
                                     double scale, double shift, bool clamp, double tlo, double thi,
                                     bool need_gx, bool need_gc) {
    const Layout L = layout(xc, cc);
    Tensor gx = need_gx ? at::empty(xc.sizes(), xc.options()) : at::empty({0}, xc.options());
    Tensor gcoef = need_gc ? at::zeros({L.C, L.K}, cc.options().dtype(at::kDouble)) : at::empty({0}, cc.options());
    if (xc.numel() && (need_gx || need_gc)) {
        std::vector<T> A, B;
        recurrence<T>(basis, L.K, A, B);
        const int nt = at::get_num_threads();
        T *gxp = need_gx ? gx.data_ptr<T>() : nullptr;
        double *gcp = need_gc ? gcoef.data_ptr<double>() : nullptr;
        int rc;
        if constexpr (std::is_same_v<T, float>)
            rc = slaf_bwd_f32(xc.data_ptr<T>(), gc_.data_ptr<T>(), gxp, gcp, cc.data_ptr<T>(), A.data(), B.data(),
                              L.rows, L.S, L.C, L.K, T(scale), T(shift), clamp, T(tlo), T(thi), nt);
        else
            rc = slaf_bwd_f64(xc.data_ptr<T>(), gc_.data_ptr<T>(), gxp, gcp, cc.data_ptr<T>(), A.data(), B.data(),
                              L.rows, L.S, L.C, L.K, T(scale), T(shift), clamp, T(tlo), T(thi), nt);
        TORCH_CHECK(rc == 0, "SLAF CPU kernel backward failed: ", error_text(rc));
    }
    return {gx, gcoef};
}

std::tuple<Tensor, Tensor> slaf_backward_cpu(const Tensor &grad, const Tensor &x, const Tensor &coef,
                                             int64_t basis, double scale, double shift, bool clamp, double tlo,
                                             double thi, bool need_gx, bool need_gc) {
    check(x, coef);
    const Tensor xc = x.contiguous(), cc = coef.to(x.scalar_type()).contiguous();
    const Tensor gc_ = grad.to(x.scalar_type()).contiguous();
    auto out = x.scalar_type() == at::kFloat
                   ? bwd_typed<float>(gc_, xc, cc, basis, scale, shift, clamp, tlo, thi, need_gx, need_gc)
                   : bwd_typed<double>(gc_, xc, cc, basis, scale, shift, clamp, tlo, thi, need_gx, need_gc);
    Tensor &gcoef = std::get<1>(out);
    if (need_gc) gcoef = gcoef.view(coef.sizes()).to(coef.scalar_type());
    return out;
}

struct SlafFunction : public torch::autograd::Function<SlafFunction> {
    static Tensor forward(torch::autograd::AutogradContext *ctx, const Tensor &x, const Tensor &coef,
                          int64_t basis, double scale, double shift, bool clamp, double tlo, double thi) {
        ctx->save_for_backward({x, coef});
        ctx->saved_data["basis"] = basis;
        ctx->saved_data["scale"] = scale;
        ctx->saved_data["shift"] = shift;
        ctx->saved_data["clamp"] = clamp;
        ctx->saved_data["tlo"] = tlo;
        ctx->saved_data["thi"] = thi;
        return slaf_cpu(x, coef, basis, scale, shift, clamp, tlo, thi);
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                   torch::autograd::variable_list grads) {
        const auto saved = ctx->get_saved_variables();
        const Tensor &x = saved[0], &coef = saved[1];
        const bool need_gx = ctx->needs_input_grad(0), need_gc = ctx->needs_input_grad(1);
        const int64_t basis = ctx->saved_data["basis"].toInt();
        const double scale = ctx->saved_data["scale"].toDouble(), shift = ctx->saved_data["shift"].toDouble();
        const bool clamp = ctx->saved_data["clamp"].toBool();
        const double tlo = ctx->saved_data["tlo"].toDouble(), thi = ctx->saved_data["thi"].toDouble();
        std::tuple<Tensor, Tensor> out;
        if (at::GradMode::is_enabled()) {  // create_graph: the reference's differentiable ops (Python)
            static auto op = c10::Dispatcher::singleton()
                                 .findSchemaOrThrow("slaf_approx_cpp::slaf_grad_graph", "")
                                 .typed<std::tuple<Tensor, Tensor>(const Tensor &, const Tensor &, const Tensor &,
                                                                   int64_t, double, double, bool, double, double,
                                                                   bool, bool)>();
            out = op.call(grads[0], x, coef, basis, scale, shift, clamp, tlo, thi, need_gx, need_gc);
        } else {
            out = slaf_backward_cpu(grads[0], x, coef, basis, scale, shift, clamp, tlo, thi, need_gx, need_gc);
        }
        return {need_gx ? std::get<0>(out) : Tensor(), need_gc ? std::get<1>(out) : Tensor(), Tensor(), Tensor(),
                Tensor(), Tensor(), Tensor(), Tensor()};
    }
};

Tensor slaf_autograd(const Tensor &x, const Tensor &coef, int64_t basis, double scale, double shift, bool clamp,
                     double tlo, double thi) {
    // nothing to record (no_grad, or no input that requires grad): the kernel alone, without the custom
    // Function's bookkeeping (a few microseconds of a 2^10 call)
    if (!at::GradMode::is_enabled() || !(x.requires_grad() || coef.requires_grad())) {
        at::AutoDispatchBelowADInplaceOrView guard;
        return slaf_cpu(x, coef, basis, scale, shift, clamp, tlo, thi);
    }
    return SlafFunction::apply(x, coef, basis, scale, shift, clamp, tlo, thi);
}

}  // namespace

TORCH_LIBRARY(slaf_approx_cpp, m) {
    m.def("slaf(Tensor x, Tensor coef, int basis, float scale, float shift, bool clamp, float tlo, float thi) "
          "-> Tensor");
    m.def("slaf_backward(Tensor grad, Tensor x, Tensor coef, int basis, float scale, float shift, bool clamp, "
          "float tlo, float thi, bool need_gx, bool need_gc) -> (Tensor, Tensor)");
    m.def("slaf_grad_graph(Tensor grad, Tensor x, Tensor coef, int basis, float scale, float shift, bool clamp, "
          "float tlo, float thi, bool need_gx, bool need_gc) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(slaf_approx_cpp, CPU, m) {
    m.impl("slaf", slaf_cpu);
    m.impl("slaf_backward", slaf_backward_cpu);
}

TORCH_LIBRARY_IMPL(slaf_approx_cpp, Autograd, m) {
    m.impl("slaf", slaf_autograd);
}

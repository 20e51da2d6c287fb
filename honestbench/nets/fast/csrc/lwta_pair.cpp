// Fused stochastic LWTA activation for U = 2 at inference (no autograd): the operator
// bench::lwta_pair(h, u, soft, temperature) computes, in one pass over memory, what
// bench.nets.layers.lwta.LWTA.eval_pair computes in seven ATen operations.
//
// h: float32 (N, C) or (N, C, H, W), C even; channel pairs (2k, 2k + 1) compete at every position.
// u: float32 uniforms in [0, 1), one per pair, shape (N, C / 2) or (N, C / 2, H, W), drawn by the caller
//    (torch.rand_like on the pair's first unit, so the random stream is torch's own and seeded as usual).
// hard (soft = false): the second unit wins iff u > sigmoid(h0 - h1); out = (h0 * [lose], h1 * [win]).
// soft: z = (h1 - h0 + logit(clamp(u, 1e-7, 1 - 1e-7))) / temperature; out = (h0 * sigmoid(-z), h1 * sigmoid(z)).
// The exp and log below are Cephes' single-precision polynomials (relative error about 1e-7), written as
// plain arithmetic so that the compiler vectorises the loops; against ATen's sigmoid they can differ in the
// last bit, which changes a hard winner only when u lies within ~1e-7 of the threshold.
//
// Layouts: channels-last 4-d and contiguous 2-d tensors keep each pair adjacent in memory (one flat loop
// over pairs); contiguous NCHW keeps each pair's two planes H * W apart (a loop per plane). Any other layout
// is made contiguous first. u is read in the layout torch.rand_like gives it for those two cases.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace {

inline float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

inline int32_t float_to_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// exp(x), x clamped to [-87, 88] (beyond: 0 and +inf are what sigmoid needs, and the clamp keeps 2^n normal).
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);  // nearest integer
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * bits_to_float((static_cast<int32_t>(n) + 127) << 23);
}

// log(x) for normal x > 0 (the callers clamp to [1e-7, 1 - 1e-7]).
inline float log_approx(float x) {
  int32_t i = float_to_bits(x);
  int32_t e = ((i >> 23) & 0xff) - 126;             // x = m * 2^e with m in [0.5, 1)
  float m = bits_to_float((i & 0x007fffff) | 0x3f000000);
  const int32_t small = m < 0.707106781186547524f;  // then use 2m in [sqrt(0.5), 1) and e - 1
  e -= small;
  m = m + m * static_cast<float>(small) - 1.0f;
  float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float fe = static_cast<float>(e);
  float y = m * z * p + fe * -2.12194440e-4f - 0.5f * z;
  return m + y + fe * 0.693359375f;
}

constexpr float kLogitEps = 1e-7f;

// One pair: a = h0, b = h1, v = its uniform; writes the two outputs.
// The gate of the second unit of pair (a, b) given its uniform v: hard 0 / 1, soft in (0, 1).
inline float gate_hard(float a, float b, float v) {
  const float s = 1.0f / (1.0f + exp_approx(b - a));  // sigmoid(a - b)
  return static_cast<float>(v > s);
}

inline float gate_soft(float a, float b, float v, float inv_t) {
  const float p = std::min(std::max(v, kLogitEps), 1.0f - kLogitEps);
  const float z = (b - a + log_approx(p / (1.0f - p))) * inv_t;
  return 1.0f / (1.0f + exp_approx(-z));  // sigmoid(z)
}

// Pairs adjacent in memory: pair i is (h[2i], h[2i + 1]) with uniform u[i].
template <bool Soft>
void run_adjacent(const float* __restrict h, const float* __restrict u, float* __restrict o, int64_t pairs,
                  float inv_t) {
  for (int64_t i = 0; i < pairs; ++i) {
    const float a = h[2 * i], b = h[2 * i + 1];
    const float g = Soft ? gate_soft(a, b, u[i], inv_t) : gate_hard(a, b, u[i]);
    o[2 * i] = a * (1.0f - g);
    o[2 * i + 1] = b * g;
  }
}

// Two planes: pair i is (a[i], b[i]) with uniform u[i].
template <bool Soft>
void run_planes(const float* __restrict a, const float* __restrict b, const float* __restrict u,
                float* __restrict oa, float* __restrict ob, int64_t n, float inv_t) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = Soft ? gate_soft(a[i], b[i], u[i], inv_t) : gate_hard(a[i], b[i], u[i]);
    oa[i] = a[i] * (1.0f - g);
    ob[i] = b[i] * g;
  }
}

constexpr int64_t kGrain = 8192;  // pairs per parallel task (batch-1 layers stay on one thread)

at::Tensor lwta_pair(const at::Tensor& h_in, const at::Tensor& u_in, bool soft, double temperature) {
  TORCH_CHECK(h_in.device().is_cpu() && h_in.scalar_type() == at::kFloat,
              "bench::lwta_pair: h must be a float32 CPU tensor");
  TORCH_CHECK(u_in.device().is_cpu() && u_in.scalar_type() == at::kFloat,
              "bench::lwta_pair: u must be a float32 CPU tensor");
  TORCH_CHECK(h_in.dim() == 2 || h_in.dim() == 4, "bench::lwta_pair: h must be (N, C) or (N, C, H, W)");
  TORCH_CHECK(h_in.size(1) % 2 == 0, "bench::lwta_pair: the channel count must be even");
  TORCH_CHECK(!soft || temperature > 0, "bench::lwta_pair: the soft temperature must be positive");
  const int64_t n = h_in.size(0), c = h_in.size(1), k = c / 2;
  const int64_t plane = h_in.dim() == 4 ? h_in.size(2) * h_in.size(3) : 1;
  std::vector<int64_t> ushape = h_in.sizes().vec();
  ushape[1] = k;
  TORCH_CHECK(u_in.sizes().vec() == ushape, "bench::lwta_pair: u must have h's shape with half the channels");
  const float inv_t = soft ? static_cast<float>(1.0 / temperature) : 1.0f;

  const bool adjacent = h_in.dim() == 2 ? h_in.is_contiguous()
                                        : h_in.is_contiguous(at::MemoryFormat::ChannelsLast) && plane > 1;
  if (adjacent) {  // pairs adjacent in memory: one flat loop over the n * plane * k pairs
    at::Tensor h = h_in;
    at::Tensor u = h_in.dim() == 2 ? u_in.contiguous() : u_in.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor out = at::empty_like(h);
    const float* hp = h.const_data_ptr<float>();
    const float* up = u.const_data_ptr<float>();
    float* op = out.mutable_data_ptr<float>();
    at::parallel_for(0, n * plane * k, kGrain, [&](int64_t begin, int64_t end) {
      if (soft) {
        run_adjacent<true>(hp + 2 * begin, up + begin, op + 2 * begin, end - begin, inv_t);
      } else {
        run_adjacent<false>(hp + 2 * begin, up + begin, op + 2 * begin, end - begin, inv_t);
      }
    });
    return out;
  }
  // NCHW planes: pair (n, j) reads planes 2j and 2j + 1 of sample n
  at::Tensor h = h_in.contiguous();
  at::Tensor u = u_in.contiguous();
  at::Tensor out = at::empty_like(h);
  const float* hp = h.const_data_ptr<float>();
  const float* up = u.const_data_ptr<float>();
  float* op = out.mutable_data_ptr<float>();
  at::parallel_for(0, n * k, std::max<int64_t>(1, kGrain / plane), [&](int64_t begin, int64_t end) {
    for (int64_t pj = begin; pj < end; ++pj) {
      const float* a = hp + 2 * pj * plane;
      float* oa = op + 2 * pj * plane;
      if (soft) {
        run_planes<true>(a, a + plane, up + pj * plane, oa, oa + plane, plane, inv_t);
      } else {
        run_planes<false>(a, a + plane, up + pj * plane, oa, oa + plane, plane, inv_t);
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY(bench, m) {
  m.def("lwta_pair(Tensor h, Tensor u, bool soft, float temperature) -> Tensor");
}

TORCH_LIBRARY_IMPL(bench, CPU, m) {
  m.impl("lwta_pair", &lwta_pair);
}

// AniSOAP pair coefficients and neighbour sums on NVIDIA GPUs (compiled with NVRTC at run time
// by anisoap-candle/src/fused_cuda/; no headers needed).
//
// pair_coefficients_<T>: one thread per pair. From the neighbour's precision row
// (a00 a01 a02 a11 a12 a22), 1/(a1 a2 a3) and r_ij it forms the Gaussian parameters exactly as
// BatchedBasis::gaussian_parameters does (cofactor inverse of A' = A + I/sigma^2, mu, kappa, the
// scalar factor), runs the moment recurrence of basis::monomials::recurrence_plan into this
// thread's column of shared memory (m[i * blockDim.x + threadIdx.x], so a warp's accesses to one
// moment are consecutive words: no bank conflicts), then contracts with the non-zeros of the
// packed matrix B (column-compressed) and writes the row out[q, 0..K), times the smooth cutoff
// f(|r_ij|) when width > 0 (featomic's shifted cosine, anisoap-candle/src/cutoff.rs: 1 up to
// cutoff - width, 1/2 (1 + cos(pi (r - cutoff + width) / width)) inside the zone, 0 from the
// cutoff on; width = 0 is the original's step, no factor). Moment indices in the
// tables are pre-multiplied by blockDim.x (the host builds them for the block size it launches).
//
// The tables are the same for every thread, so every table read is a warp-uniform load (one
// transaction, cached).
//
//   plan      [n_steps, 5]  dir, parent, grandparent_x, grandparent_y, grandparent_z (the last
//                           four times blockDim.x)
//   weights   [n_steps, 3]  integer weights parent_j as T (0: the term is absent)
//   col_start [K + 1]       column c's non-zeros are col_start[c] .. col_start[c + 1]
//   rows      [nnz]         packed monomial of each non-zero, times blockDim.x
//   values    [nnz]         value of each non-zero
//
// neighbor_sum_<T>: one thread per (centre, coefficient). The pairs of centre c are the rows
// seg[c] .. seg[c + 1] of the coefficient matrix (pairs are grouped by centre); the thread
// zeroes out[c, 0..n_types, k] and adds coef[q, k] to out[c, slot[q], k] in pair order (the
// order of index_add on the CPU), so the result is deterministic.

template <typename T>
__device__ __forceinline__ T pick3(unsigned int i, T a, T b, T c) {
    return i == 0 ? a : (i == 1 ? b : c);
}

// The Gaussian parameters of pair q: mean (mx, my, mz), covariance (s00 .. s22) and the scalar
// factor, times the smooth cutoff (operation order of BatchedBasis::gaussian_parameters).
template <typename T>
struct PairGaussian {
    T mx, my, mz, s00, s01, s02, s11, s12, s22, scale;
};

template <typename T>
__device__ __forceinline__ PairGaussian<T> pair_gaussian(
    const T* __restrict__ precision, const T* __restrict__ inv_prod, const T* __restrict__ r,
    unsigned long long q, T s, T cutoff, T width) {
    const T* a = precision + q * 6;
    const T a00 = a[0], a01 = a[1], a02 = a[2], a11 = a[3], a12 = a[4], a22 = a[5];
    const T rx = r[q * 3 + 0], ry = r[q * 3 + 1], rz = r[q * 3 + 2];
    const T b00 = a00 + s, b11 = a11 + s, b22 = a22 + s;
    const T c00 = b11 * b22 - a12 * a12;
    const T c01 = a02 * a12 - a01 * b22;
    const T c02 = a01 * a12 - a02 * b11;
    const T c11 = b00 * b22 - a02 * a02;
    const T c12 = a01 * a02 - b00 * a12;
    const T c22 = b00 * b11 - a01 * a01;
    const T det = (b00 * c00 + a01 * c01) + a02 * c02;
    const T s00 = c00 / det, s01 = c01 / det, s02 = c02 / det;
    const T s11 = c11 / det, s12 = c12 / det, s22 = c22 / det;
    T scale = inv_prod[q] / sqrt(det);
    T mx = rx, my = ry, mz = rz;
    if (s != T(0)) {
        const T sr_x = (s00 * rx + s01 * ry) + s02 * rz;
        const T sr_y = (s01 * rx + s11 * ry) + s12 * rz;
        const T sr_z = (s02 * rx + s12 * ry) + s22 * rz;
        const T ar_x = (a00 * rx + a01 * ry) + a02 * rz;
        const T ar_y = (a01 * rx + a11 * ry) + a12 * rz;
        const T ar_z = (a02 * rx + a12 * ry) + a22 * rz;
        mx = rx - sr_x * s;
        my = ry - sr_y * s;
        mz = rz - sr_z * s;
        const T kappa = ((sr_x * ar_x + sr_y * ar_y) + sr_z * ar_z) * s;
        scale = exp(kappa * T(-0.5)) * scale;
    }
    // Smooth cutoff: weights the whole row through the scalar factor.
    if (width > T(0)) {
        const T dist = sqrt((rx * rx + ry * ry) + rz * rz);
        T f = T(1);
        if (dist >= cutoff) {
            f = T(0);
        } else if (dist > cutoff - width) {
            f = T(0.5) * (T(1) + cos(T(3.14159265358979323846) * (dist - cutoff + width) / width));
        }
        scale = scale * f;
    }

    return PairGaussian<T>{mx, my, mz, s00, s01, s02, s11, s12, s22, scale};
}

template <typename T>
__device__ __forceinline__ void pair_coefficients(
    const T* __restrict__ precision, const T* __restrict__ inv_prod, const T* __restrict__ r,
    const unsigned int* __restrict__ plan, const T* __restrict__ weights, unsigned int n_steps,
    const unsigned int* __restrict__ col_start, const unsigned int* __restrict__ rows,
    const T* __restrict__ values, unsigned int n_cols, T s, T cutoff, T width,
    unsigned int n_pairs, T* __restrict__ out) {
    extern __shared__ unsigned char shared_bytes[];
    T* m = reinterpret_cast<T*>(shared_bytes);
    const unsigned int tid = threadIdx.x;
    const unsigned int stride = blockDim.x;
    T* mine = m + tid;
    const unsigned long long q = (unsigned long long)blockIdx.x * blockDim.x + tid;
    // Threads never share data (each owns one column of shared memory), so there is no
    // __syncthreads and threads past the end can leave at once.
    if (q >= n_pairs) return;

    const PairGaussian<T> g = pair_gaussian<T>(precision, inv_prod, r, q, s, cutoff, width);
    const T mx = g.mx, my = g.my, mz = g.mz, scale = g.scale;
    const T s00 = g.s00, s01 = g.s01, s02 = g.s02, s11 = g.s11, s12 = g.s12, s22 = g.s22;

    // Moments: m[k + 1] = mu[dir] m[parent] + sum_j Sigma[dir][j] w_j m[grandparent_j].
    mine[0] = T(1);
    for (unsigned int k = 0; k < n_steps; ++k) {
        const unsigned int* step = plan + 5 * k;
        const unsigned int dir = step[0];
        const T* w = weights + 3 * k;
        const T sig0 = pick3(dir, s00, s01, s02);
        const T sig1 = pick3(dir, s01, s11, s12);
        const T sig2 = pick3(dir, s02, s12, s22);
        T acc = pick3(dir, mx, my, mz) * mine[step[1]];
        T coupling = T(0);
        if (w[0] != T(0)) coupling = coupling + (sig0 * w[0]) * mine[step[2]];
        if (w[1] != T(0)) coupling = coupling + (sig1 * w[1]) * mine[step[3]];
        if (w[2] != T(0)) coupling = coupling + (sig2 * w[2]) * mine[step[4]];
        mine[(k + 1) * stride] = acc + coupling;
    }

    // Sparse contraction with B, then the scalar factor.
    T* row_out = out + q * n_cols;
    unsigned int e = col_start[0];
    for (unsigned int c = 0; c < n_cols; ++c) {
        const unsigned int end = col_start[c + 1];
        T acc = T(0);
        for (; e < end; ++e) acc = acc + mine[rows[e]] * values[e];
        row_out[c] = acc * scale;
    }
}

// The moments of N(mu, Sigma) into this thread's shared-memory column `mine` (stride `stride`):
// the recurrence of pair_coefficients, for the differentiable kernels below.
template <typename T>
__device__ __forceinline__ void gaussian_moments(
    const PairGaussian<T>& g, const unsigned int* __restrict__ plan,
    const T* __restrict__ weights, unsigned int n_steps, T* mine, unsigned int stride) {
    mine[0] = T(1);
    for (unsigned int k = 0; k < n_steps; ++k) {
        const unsigned int* step = plan + 5 * k;
        const unsigned int dir = step[0];
        const T* w = weights + 3 * k;
        const T sig0 = pick3(dir, g.s00, g.s01, g.s02);
        const T sig1 = pick3(dir, g.s01, g.s11, g.s12);
        const T sig2 = pick3(dir, g.s02, g.s12, g.s22);
        T acc = pick3(dir, g.mx, g.my, g.mz) * mine[step[1]];
        T coupling = T(0);
        if (w[0] != T(0)) coupling = coupling + (sig0 * w[0]) * mine[step[2]];
        if (w[1] != T(0)) coupling = coupling + (sig1 * w[1]) * mine[step[3]];
        if (w[2] != T(0)) coupling = coupling + (sig2 * w[2]) * mine[step[4]];
        mine[(k + 1) * stride] = acc + coupling;
    }
}

// moments_contract_<T>: the pair kernel from given Gaussian parameters, for autograd (the
// parameters come from differentiable tensor ops). params [P, 10]: mx my mz s00 s01 s02 s11 s12
// s22 scale. out [P, K] = scale * (B^T m). Shared memory: n_moments * blockDim.x of T.
template <typename T>
__device__ __forceinline__ void moments_contract(
    const T* __restrict__ params, const unsigned int* __restrict__ plan,
    const T* __restrict__ weights, unsigned int n_steps, const unsigned int* __restrict__ col_start,
    const unsigned int* __restrict__ rows, const T* __restrict__ values, unsigned int n_cols,
    unsigned int n_pairs, T* __restrict__ out) {
    extern __shared__ unsigned char shared_bytes[];
    T* mine = reinterpret_cast<T*>(shared_bytes) + threadIdx.x;
    const unsigned long long q = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= n_pairs) return;
    const T* p = params + q * 10;
    const PairGaussian<T> g{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]};
    gaussian_moments<T>(g, plan, weights, n_steps, mine, blockDim.x);
    T* row_out = out + q * n_cols;
    unsigned int e = col_start[0];
    for (unsigned int c = 0; c < n_cols; ++c) {
        const unsigned int end = col_start[c + 1];
        T acc = T(0);
        for (; e < end; ++e) acc = acc + mine[rows[e]] * values[e];
        row_out[c] = acc * g.scale;
    }
}

// moments_contract_bwd_<T>: the gradient of moments_contract with respect to its parameters,
// from grad_out [P, K] (d loss / d out). Per pair: the moments m again (first n_moments * blockDim.x
// of shared memory), gbar = B grad_row (second half), d/d scale = m . gbar, d/d m = scale gbar,
// then the Gaussian-moment identities dm_n/dmu_k = n_k m_{n-e_k},
// dm_n/dSigma_kk = n_k (n_k - 1) / 2 m_{n-2e_k}, dm_n/dSigma_kl = n_k n_l m_{n-e_k-e_l} (k < l,
// the symmetric pair as one variable).
//   lower [n_moments, 12]: n_x n_y n_z, then (times blockDim.x) the shared offsets of
//         n-e_x, n-e_y, n-e_z and of n-e_k-e_l for (k, l) = 00 01 02 11 12 22 (0 where the
//         exponent is too small: its coefficient is 0 then).
template <typename T>
__device__ __forceinline__ void moments_contract_bwd(
    const T* __restrict__ params, const T* __restrict__ grad_out,
    const unsigned int* __restrict__ plan, const T* __restrict__ weights, unsigned int n_steps,
    const unsigned int* __restrict__ col_start, const unsigned int* __restrict__ rows,
    const T* __restrict__ values, unsigned int n_cols, const unsigned int* __restrict__ lower,
    unsigned int n_moments, unsigned int n_pairs, T* __restrict__ grad_params) {
    extern __shared__ unsigned char shared_bytes[];
    const unsigned int stride = blockDim.x;
    T* mine = reinterpret_cast<T*>(shared_bytes) + threadIdx.x;
    T* gbar = mine + n_moments * stride;
    const unsigned long long q = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= n_pairs) return;
    const T* p = params + q * 10;
    const PairGaussian<T> g{p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9]};
    gaussian_moments<T>(g, plan, weights, n_steps, mine, stride);
    for (unsigned int n = 0; n < n_moments; ++n) gbar[n * stride] = T(0);
    const T* grad_row = grad_out + q * n_cols;
    unsigned int e = col_start[0];
    for (unsigned int c = 0; c < n_cols; ++c) {
        const unsigned int end = col_start[c + 1];
        const T gc = grad_row[c];
        for (; e < end; ++e) gbar[rows[e]] += values[e] * gc;
    }
    T d_scale = T(0);
    T d[9] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
    for (unsigned int n = 0; n < n_moments; ++n) {
        const T gb = gbar[n * stride];
        d_scale += mine[n * stride] * gb;
        const T gm = g.scale * gb;
        const unsigned int* t = lower + 12 * n;
        const T ex = T(t[0]), ey = T(t[1]), ez = T(t[2]);
        d[0] += gm * ex * mine[t[3]];
        d[1] += gm * ey * mine[t[4]];
        d[2] += gm * ez * mine[t[5]];
        d[3] += gm * (T(0.5) * ex * (ex - T(1))) * mine[t[6]];
        d[4] += gm * (ex * ey) * mine[t[7]];
        d[5] += gm * (ex * ez) * mine[t[8]];
        d[6] += gm * (T(0.5) * ey * (ey - T(1))) * mine[t[9]];
        d[7] += gm * (ey * ez) * mine[t[10]];
        d[8] += gm * (T(0.5) * ez * (ez - T(1))) * mine[t[11]];
    }
    T* out = grad_params + q * 10;
    for (int k = 0; k < 9; ++k) out[k] = d[k];
    out[9] = d_scale;
}

template <typename T>
__device__ __forceinline__ void neighbor_sum(
    const T* __restrict__ coef, const unsigned int* __restrict__ seg,
    const unsigned int* __restrict__ slot, unsigned int n_centers, unsigned int n_types,
    unsigned int n_cols, T* __restrict__ out) {
    const unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (unsigned long long)n_centers * n_cols) return;
    const unsigned long long c = idx / n_cols;
    const unsigned int k = (unsigned int)(idx - c * n_cols);
    T* o = out + c * n_types * n_cols + k;
    for (unsigned int t = 0; t < n_types; ++t) o[(unsigned long long)t * n_cols] = T(0);
    const unsigned int end = seg[c + 1];
    for (unsigned int q = seg[c]; q < end; ++q) {
        o[(unsigned long long)slot[q] * n_cols] += coef[(unsigned long long)q * n_cols + k];
    }
}

#define ANISOAP_KERNELS(T, SUFFIX)                                                             \
    extern "C" __global__ void pair_coefficients_##SUFFIX(                                     \
        const T* precision, const T* inv_prod, const T* r, const unsigned int* plan,           \
        const T* weights, unsigned int n_steps, const unsigned int* col_start,                 \
        const unsigned int* rows, const T* values, unsigned int n_cols, T s, T cutoff,         \
        T width, unsigned int n_pairs, T* out) {                                               \
        pair_coefficients<T>(precision, inv_prod, r, plan, weights, n_steps, col_start, rows,  \
                             values, n_cols, s, cutoff, width, n_pairs, out);                  \
    }                                                                                          \
    extern "C" __global__ void neighbor_sum_##SUFFIX(                                          \
        const T* coef, const unsigned int* seg, const unsigned int* slot,                      \
        unsigned int n_centers, unsigned int n_types, unsigned int n_cols, T* out) {           \
        neighbor_sum<T>(coef, seg, slot, n_centers, n_types, n_cols, out);                     \
    }

// gather_rows_<T>: out[q, c] = src[index[q], c] (one thread per element; index[q] < N checked
// on the host). segment_sum_rows_<T>: its transpose, out[n, c] = sum of grad[perm[p], c] over
// p = seg[n] .. seg[n + 1] in order (perm lists the rows q with index[q] = n, ascending), one
// thread per element: deterministic, unlike an atomic scatter.
template <typename T>
__device__ __forceinline__ void gather_rows(
    const T* __restrict__ src, const unsigned int* __restrict__ index, unsigned int n_rows,
    unsigned int width, T* __restrict__ out) {
    const unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (unsigned long long)n_rows * width) return;
    const unsigned long long q = idx / width;
    const unsigned int c = (unsigned int)(idx - q * width);
    out[idx] = src[(unsigned long long)index[q] * width + c];
}

template <typename T>
__device__ __forceinline__ void segment_sum_rows(
    const T* __restrict__ grad, const unsigned int* __restrict__ perm,
    const unsigned int* __restrict__ seg, unsigned int n_out, unsigned int width,
    T* __restrict__ out) {
    const unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (unsigned long long)n_out * width) return;
    const unsigned long long n = idx / width;
    const unsigned int c = (unsigned int)(idx - n * width);
    T acc = T(0);
    const unsigned int end = seg[n + 1];
    for (unsigned int p = seg[n]; p < end; ++p) {
        acc = acc + grad[(unsigned long long)perm[p] * width + c];
    }
    out[idx] = acc;
}

// The chunked pair density of the differentiable path (fused_cuda/imp/pair_density.rs).
// segment_sum_chunk_<T>: out[n, c] = sum of src[p - base, c] over p = seg[n] .. seg[n + 1] in
// order, for the n_out rows of one chunk (src holds the chunk's pair rows in the order of
// seg, base = seg[0]); the order of the sums is segment_sum_rows's, so the chunked density
// equals the unchunked one bit for bit. scatter_rows_<T>: out[index[q], c] = src[q, c], index
// a permutation (each target written once: no race, no sum).
template <typename T>
__device__ __forceinline__ void segment_sum_chunk(
    const T* __restrict__ src, const unsigned int* __restrict__ seg, unsigned int base,
    unsigned int n_out, unsigned int width, T* __restrict__ out) {
    const unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (unsigned long long)n_out * width) return;
    const unsigned long long n = idx / width;
    const unsigned int c = (unsigned int)(idx - n * width);
    T acc = T(0);
    const unsigned int end = seg[n + 1] - base;
    for (unsigned int p = seg[n] - base; p < end; ++p) {
        acc = acc + src[(unsigned long long)p * width + c];
    }
    out[idx] = acc;
}

template <typename T>
__device__ __forceinline__ void scatter_rows(
    const T* __restrict__ src, const unsigned int* __restrict__ index, unsigned int n_rows,
    unsigned int width, T* __restrict__ out) {
    const unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (unsigned long long)n_rows * width) return;
    const unsigned long long q = idx / width;
    const unsigned int c = (unsigned int)(idx - q * width);
    out[(unsigned long long)index[q] * width + c] = src[idx];
}

#define ANISOAP_DIFFERENTIABLE_KERNELS(T, SUFFIX)                                              \
    extern "C" __global__ void moments_contract_##SUFFIX(                                      \
        const T* params, const unsigned int* plan, const T* weights, unsigned int n_steps,     \
        const unsigned int* col_start, const unsigned int* rows, const T* values,              \
        unsigned int n_cols, unsigned int n_pairs, T* out) {                                   \
        moments_contract<T>(params, plan, weights, n_steps, col_start, rows, values, n_cols,   \
                            n_pairs, out);                                                     \
    }                                                                                          \
    extern "C" __global__ void moments_contract_bwd_##SUFFIX(                                  \
        const T* params, const T* grad_out, const unsigned int* plan, const T* weights,        \
        unsigned int n_steps, const unsigned int* col_start, const unsigned int* rows,         \
        const T* values, unsigned int n_cols, const unsigned int* lower,                       \
        unsigned int n_moments, unsigned int n_pairs, T* grad_params) {                        \
        moments_contract_bwd<T>(params, grad_out, plan, weights, n_steps, col_start, rows,     \
                                values, n_cols, lower, n_moments, n_pairs, grad_params);       \
    }                                                                                          \
    extern "C" __global__ void gather_rows_##SUFFIX(const T* src, const unsigned int* index,   \
                                                    unsigned int n_rows, unsigned int width,   \
                                                    T* out) {                                  \
        gather_rows<T>(src, index, n_rows, width, out);                                        \
    }                                                                                          \
    extern "C" __global__ void segment_sum_rows_##SUFFIX(                                      \
        const T* grad, const unsigned int* perm, const unsigned int* seg, unsigned int n_out,  \
        unsigned int width, T* out) {                                                          \
        segment_sum_rows<T>(grad, perm, seg, n_out, width, out);                               \
    }                                                                                          \
    extern "C" __global__ void segment_sum_chunk_##SUFFIX(                                     \
        const T* src, const unsigned int* seg, unsigned int base, unsigned int n_out,          \
        unsigned int width, T* out) {                                                          \
        segment_sum_chunk<T>(src, seg, base, n_out, width, out);                               \
    }                                                                                          \
    extern "C" __global__ void scatter_rows_##SUFFIX(const T* src, const unsigned int* index,  \
                                                     unsigned int n_rows, unsigned int width,  \
                                                     T* out) {                                 \
        scatter_rows<T>(src, index, n_rows, width, out);                                       \
    }

ANISOAP_DIFFERENTIABLE_KERNELS(double, f64)
ANISOAP_DIFFERENTIABLE_KERNELS(float, f32)
ANISOAP_KERNELS(double, f64)
ANISOAP_KERNELS(float, f32)

// The power spectrum of one centre block of a chunk, and its per-frame partial sums.
// Compiled at run time by NVRTC with --fmad=false (fused_cuda::compiled_ptx), so every
// product and sum is rounded as the host's `backend::host_power_spectra` rounds it.
//
// power_spectrum_rows_<T>: one thread per (member k, feature column f).
//   density  [C, n_types * K] (T, the chunk's normalised density, row-major)
//   members  [M]   chunk-local centre of each block member (each < C, checked on the host)
//   columns  [F, 4] per feature column: first density offset of x[., p] within a centre's
//            row (slot_p * K + channel offset + n_p), the same for q, 2l + 1, N_l (the
//            stride between successive m); every offset + m * stride < n_types * K
//   factor   [F]   (-1)^l / sqrt(2l + 1) of the column's channel
//   out      [M, F] out[k, f] = factor[f] * sum_m x[m, p] x[m, q], m in order
//
// segment_sums_<T>: one thread per (segment s, column f), sums rows seg[s] .. seg[s + 1] of
//   `rows` [M, F] in order, in double precision, into partial [S, F] (segments never cross
//   frames; the host adds the segments of each frame in order).

template <typename T>
__device__ __forceinline__ void power_spectrum_rows(
    const T* __restrict__ density, const unsigned int* __restrict__ members,
    unsigned int n_members, const unsigned int* __restrict__ columns,
    const T* __restrict__ factor, unsigned int n_features, unsigned int row_len,
    T* __restrict__ out) {
    const unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (unsigned long long)n_members * n_features) return;
    const unsigned long long k = idx / n_features;
    const unsigned int f = (unsigned int)(idx - k * n_features);
    const unsigned int* c = columns + 4 * f;
    const unsigned int a = c[0], b = c[1], n_m = c[2], stride = c[3];
    const T* d = density + (unsigned long long)members[k] * row_len;
    T sum = T(0);
    for (unsigned int m = 0; m < n_m; ++m) sum = sum + d[a + m * stride] * d[b + m * stride];
    out[idx] = factor[f] * sum;
}

template <typename T>
__device__ __forceinline__ void segment_sums(
    const T* __restrict__ rows, const unsigned int* __restrict__ seg, unsigned int n_segments,
    unsigned int n_features, double* __restrict__ partial) {
    const unsigned long long idx = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (unsigned long long)n_segments * n_features) return;
    const unsigned long long s = idx / n_features;
    const unsigned int f = (unsigned int)(idx - s * n_features);
    double sum = 0.0;
    const unsigned int end = seg[s + 1];
    for (unsigned int r = seg[s]; r < end; ++r) {
        sum = sum + (double)rows[(unsigned long long)r * n_features + f];
    }
    partial[idx] = sum;
}

#define ANISOAP_SPECTRUM_KERNELS(T, SUFFIX)                                                    \
    extern "C" __global__ void power_spectrum_rows_##SUFFIX(                                   \
        const T* density, const unsigned int* members, unsigned int n_members,                 \
        const unsigned int* columns, const T* factor, unsigned int n_features,                 \
        unsigned int row_len, T* out) {                                                        \
        power_spectrum_rows<T>(density, members, n_members, columns, factor, n_features,       \
                               row_len, out);                                                  \
    }                                                                                          \
    extern "C" __global__ void segment_sums_##SUFFIX(                                          \
        const T* rows, const unsigned int* seg, unsigned int n_segments,                       \
        unsigned int n_features, double* partial) {                                            \
        segment_sums<T>(rows, seg, n_segments, n_features, partial);                           \
    }

ANISOAP_SPECTRUM_KERNELS(double, f64)
ANISOAP_SPECTRUM_KERNELS(float, f32)

// The neighbour search of anisoap-candle/src/neighbors/ on NVIDIA GPUs (compiled with NVRTC at
// run time by anisoap-candle/src/cuda_search/, with --fmad=false; no headers needed).
//
// stage_pairs_<T>: one warp per centre of a chunk (its lanes split the candidate bins; a centre
// with more than WARP_CAP pairs is staged by one lane). It walks the same cell-list candidates as
// Grid::for_each_candidate (the bins within `reach` of the centre's bin, periodic images along
// periodic directions), applies the same pre-filter on wrapped positions and the same final test
// on r_ij = (x_j - x_i) + S . cell (NeighborSearch::for_each_pair), with every floating-point
// operation in the host's order and rounding (__dmul_rn / __dadd_rn: no fused multiply-add), so
// it finds exactly the host's pairs with bit-identical r_ij. The pairs of centre c go to rows
// seg[c] .. seg[c + 1] (seg: the chunk's prefix sum of the counting pass), are sorted there by
// (neighbour, shift) as NeighborSearch::center_pairs sorts them, and then each row receives what
// the pair kernel needs: r_ij in T, the neighbour's precision row, 1/(a1 a2 a3) and type slot.
//
// Writes never leave a centre's rows: a pair beyond seg[c + 1] is counted, not written. A count
// that differs from the counting pass sets bit 1 of *error, a shift outside 32 bits bit 0 (the
// host's counting pass refuses both first; the flag is the device's own check). The host reads
// *error before it uses the rows.
//
// Tables (N particles of all frames, F frames; "slot" = position in the frames' bin-sorted
// order, frame by frame, so a frame's slots are its particle range):
//   frame_of     [N]        frame of each particle
//   frame_u      [F, 8]     nbins_a, nbins_b, nbins_c, pbc_a, pbc_b, pbc_c, first bin, first particle
//   frame_reach  [F, 3]     bins searched each way along each direction
//   frame_f      [F, 10]    cell rows a, b, c (zeros for open frames), squared pre-filter radius
//   bin_of       [N, 3]     3-D bin of each particle
//   image        [N, 3]     image of each particle's wrapped position
//   slot         [N]        slot of each particle
//   positions    [N, 3]     positions as given (the pair vectors use these)
//   bin_start    [bins + F] global slots: bin b of frame f holds bin_start[fb + b] .. [fb + b + 1]
//                           (fb = first bin of f; each frame has nbins + 1 entries)
//   wrapped      [N, 3]     wrapped positions, by slot
//   slot_image   [N, 3]     image, by slot
//   slot_particle [N]       particle (global index) of each slot
//   precision_all [N, 6], inv_all [N], type_slot_all [N]: per-particle data the rows receive

__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }

// a[0] b[0] + a[1] b[1] + a[2] b[2], left to right (neighbors/mod.rs dot).
__device__ __forceinline__ double dot3(const double* a, const double* b) {
    return add_rn(add_rn(mul_rn(a[0], b[0]), mul_rn(a[1], b[1])), mul_rn(a[2], b[2]));
}

// S_a cell[0][c] + S_b cell[1][c] + S_c cell[2][c], left to right (neighbors/mod.rs pair_vector and
// the candidate offset of Grid::for_each_candidate).
__device__ __forceinline__ double shift_component(const double* cell, double sa, double sb,
                                                  double sc, int c) {
    return add_rn(add_rn(mul_rn(sa, cell[c]), mul_rn(sb, cell[3 + c])), mul_rn(sc, cell[6 + c]));
}

// rem_euclid / div_euclid for a positive divisor.
__device__ __forceinline__ void euclid(long long t, long long n, long long* rem, long long* quot) {
    long long q = t / n;
    long long r = t - q * n;
    if (r < 0) {
        r += n;
        q -= 1;
    }
    *rem = r;
    *quot = q;
}

__device__ __forceinline__ bool key_less(unsigned int ja, const int* sa, unsigned int jb,
                                         const int* sb) {
    if (ja != jb) return ja < jb;
    if (sa[0] != sb[0]) return sa[0] < sb[0];
    if (sa[1] != sb[1]) return sa[1] < sb[1];
    return sa[2] < sb[2];
}

// The cell-list tables of all frames (see the header), passed to every kernel.
struct Tables {
    const unsigned int* frame_of;
    const unsigned int* frame_u;
    const int* frame_reach;
    const double* frame_f;
    const unsigned int* bin_of;
    const int* image;
    const unsigned int* slot;
    const double* positions;
    const unsigned int* bin_start;
    const double* wrapped;
    const int* slot_image;
    const unsigned int* slot_particle;
    double cutoff2;
    unsigned int self_pairs;
};

// r_ij = (x_j - x_i) + S . cell, component by component in the host's order.
__device__ __forceinline__ void pair_vector(const Tables& t, const double* cell, unsigned int i,
                                            unsigned int j, double sa, double sb, double sc,
                                            double* r) {
    const double* xi = t.positions + 3 * (unsigned long long)i;
    const double* xj = t.positions + 3 * (unsigned long long)j;
    for (int k = 0; k < 3; ++k) {
        r[k] = add_rn(sub_rn(xj[k], xi[k]), shift_component(cell, sa, sb, sc, k));
    }
}

// What a walk over the candidate bins of centre i needs: its frame's bins and cell, its bin,
// image and wrapped position, and the bin ranges [lo, hi] searched along each direction.
struct CenterWalk {
    long long nb[3];
    bool pbc[3];
    unsigned int first_bin;
    const double* cell;
    double radius2;
    long long img_i[3];
    const double* wi;
    long long lo[3], hi[3];
};

__device__ __forceinline__ CenterWalk center_walk(const Tables& t, unsigned int i) {
    CenterWalk c;
    const unsigned int f = t.frame_of[i];
    const unsigned int* fu = t.frame_u + 8 * f;
    const long long reach[3] = {t.frame_reach[3 * f], t.frame_reach[3 * f + 1],
                                t.frame_reach[3 * f + 2]};
    const long long b[3] = {t.bin_of[3 * i], t.bin_of[3 * i + 1], t.bin_of[3 * i + 2]};
    for (int k = 0; k < 3; ++k) {
        c.nb[k] = fu[k];
        c.pbc[k] = fu[3 + k] != 0;
        c.img_i[k] = t.image[3 * i + k];
        // Bin ranges per direction: [lo, hi] in unwrapped bin coordinates.
        if (c.pbc[k]) {
            c.lo[k] = b[k] - reach[k];
            c.hi[k] = b[k] + reach[k];
        } else {
            c.lo[k] = b[k] > 0 ? b[k] - 1 : 0;
            c.hi[k] = b[k] + 1 < c.nb[k] ? b[k] + 1 : c.nb[k] - 1;
        }
    }
    c.first_bin = fu[6];
    c.cell = t.frame_f + 10 * f;
    c.radius2 = t.frame_f[10 * f + 9];
    c.wi = t.wrapped + 3 * (unsigned long long)t.slot[i];
    return c;
}

// Calls visit(j, s_a, s_b, s_c) for every pair of centre i among the particles of the bin at
// unwrapped coordinates (ua, ub, uc), in slot order. Returns false when some candidate's shift
// does not fit in 32 bits (that candidate is skipped).
template <typename Visit>
__device__ __forceinline__ bool walk_bin(const Tables& t, const CenterWalk& w, unsigned int i,
                                         long long ua, long long ub, long long uc,
                                         Visit& visit) {
    const long long u[3] = {ua, ub, uc};
    long long tq[3], q[3];
    for (int k = 0; k < 3; ++k) {
        tq[k] = u[k];
        q[k] = 0;
        if (w.pbc[k]) euclid(u[k], w.nb[k], &tq[k], &q[k]);
    }
    const unsigned long long l =
        w.first_bin + (unsigned long long)((tq[0] * w.nb[1] + tq[1]) * w.nb[2] + tq[2]);
    double off[3];
    for (int k = 0; k < 3; ++k) {
        off[k] = sub_rn(shift_component(w.cell, (double)q[0], (double)q[1], (double)q[2], k),
                        w.wi[k]);
    }
    bool fits_all = true;
    const unsigned int p_end = t.bin_start[l + 1];
    for (unsigned int p = t.bin_start[l]; p < p_end; ++p) {
        const double* x = t.wrapped + 3 * (unsigned long long)p;
        const double d[3] = {add_rn(x[0], off[0]), add_rn(x[1], off[1]), add_rn(x[2], off[2])};
        if (dot3(d, d) >= w.radius2) continue;
        const unsigned int j = t.slot_particle[p];
        const long long s[3] = {q[0] + w.img_i[0] - t.slot_image[3 * p],
                                q[1] + w.img_i[1] - t.slot_image[3 * p + 1],
                                q[2] + w.img_i[2] - t.slot_image[3 * p + 2]};
        if (j == i && s[0] == 0 && s[1] == 0 && s[2] == 0) continue;
        bool fits = true;
        for (int k = 0; k < 3; ++k) {
            fits = fits && s[k] >= -2147483648LL && s[k] <= 2147483647LL;
        }
        if (!fits) {
            fits_all = false;
            continue;
        }
        double r[3];
        pair_vector(t, w.cell, i, j, (double)s[0], (double)s[1], (double)s[2], r);
        if (!(dot3(r, r) < t.cutoff2)) continue;
        visit(j, (int)s[0], (int)s[1], (int)s[2]);
    }
    return fits_all;
}

// Calls visit(j, s_a, s_b, s_c) for every pair of centre i (the self pair first when
// self_pairs), in candidate order: NeighborSearch::for_each_pair on the device. Returns false
// when some candidate's shift does not fit in 32 bits (that candidate is skipped).
template <typename Visit>
__device__ __forceinline__ bool walk_pairs(const Tables& t, unsigned int i, Visit& visit) {
    const CenterWalk w = center_walk(t, i);
    bool fits_all = true;
    if (t.self_pairs) visit(i, 0, 0, 0);
    for (long long ua = w.lo[0]; ua <= w.hi[0]; ++ua) {
        for (long long ub = w.lo[1]; ub <= w.hi[1]; ++ub) {
            for (long long uc = w.lo[2]; uc <= w.hi[2]; ++uc) {
                fits_all = walk_bin(t, w, i, ua, ub, uc, visit) && fits_all;
            }
        }
    }
    return fits_all;
}

// The same pairs as walk_pairs, found by the 32 lanes of a warp together: lane `lane` walks
// the bins lane, lane + 32, ... of the flattened bin box (lane 0 also visits the self pair),
// so the visits come in no fixed order; what matters is the set of pairs.
template <typename Visit>
__device__ __forceinline__ bool walk_pairs_lanes(const Tables& t, unsigned int i,
                                                 unsigned int lane, Visit& visit) {
    const CenterWalk w = center_walk(t, i);
    bool fits_all = true;
    if (t.self_pairs && lane == 0) visit(i, 0, 0, 0);
    const long long d[3] = {w.hi[0] - w.lo[0] + 1, w.hi[1] - w.lo[1] + 1,
                            w.hi[2] - w.lo[2] + 1};
    const long long plane = d[1] * d[2];
    const long long total = d[0] * plane;
    for (long long u = lane; u < total; u += 32) {
        const long long rest = u % plane;
        fits_all = walk_bin(t, w, i, w.lo[0] + u / plane, w.lo[1] + rest / d[2],
                            w.lo[2] + rest % d[2], visit) &&
                   fits_all;
    }
    return fits_all;
}

// Counting pass visitor: the pair count, the neighbour types seen, the smallest singular
// neighbour (System::build's counting pass).
struct CountVisit {
    unsigned int count;
    unsigned int first_singular;
    const unsigned int* singular;
    const unsigned int* type_slot_all;
    unsigned int* seen_row;
    __device__ void operator()(unsigned int j, int, int, int) {
        ++count;
        unsigned int* flag = seen_row + type_slot_all[j];
        if (*flag == 0) atomicOr(flag, 1u);
        if (singular[j] != 0 && j < first_singular) first_singular = j;
    }
};

// Staging visitor: (neighbour, shift) into the centre's rows, never past them.
struct RowVisit {
    unsigned int q;
    unsigned int end;
    unsigned int* neighbor_out;
    int* shift_out;
    __device__ void operator()(unsigned int j, int sa, int sb, int sc) {
        if (q < end) {
            neighbor_out[q] = j;
            shift_out[3 * q] = sa;
            shift_out[3 * q + 1] = sb;
            shift_out[3 * q + 2] = sc;
        }
        ++q;
    }
};

// Warps per block of the warp-per-centre kernels (they are launched with 32 * SEARCH_WARPS
// threads per block: cuda_search/mod.rs THREADS).
#define SEARCH_WARPS 4
// Most pairs a centre's warp sorts in shared memory; a centre with more is staged by one lane
// (stage_center_serial).
#define WARP_CAP 128

// count_pairs: one warp per particle i < n (its lanes split the candidate bins): counts[i],
// the types seen (seen[slot_i * n_types + slot_j] = 1) and first_singular[i] (the smallest
// singular neighbour, 0xffffffff for none).
__device__ __forceinline__ void count_pairs(const Tables& t, unsigned int n,
                                            const unsigned int* __restrict__ type_slot_all,
                                            const unsigned int* __restrict__ singular,
                                            unsigned int n_types, unsigned int* __restrict__ counts,
                                            unsigned int* __restrict__ seen,
                                            unsigned int* __restrict__ first_singular,
                                            unsigned int* __restrict__ error) {
    const unsigned long long thread = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned int lane = threadIdx.x % 32;
    // The same i for the whole warp, so a warp leaves together.
    if (thread / 32 >= n) return;
    const unsigned int i = (unsigned int)(thread / 32);
    CountVisit visit{0u, 0xffffffffu, singular, type_slot_all,
                     seen + (unsigned long long)type_slot_all[i] * n_types};
    if (!walk_pairs_lanes(t, i, lane, visit)) atomicOr(error, 1u);
    const unsigned int count = __reduce_add_sync(0xffffffffu, visit.count);
    const unsigned int first = __reduce_min_sync(0xffffffffu, visit.first_singular);
    if (lane == 0) {
        counts[i] = count;
        first_singular[i] = first;
    }
}

// What the pair kernel reads for pair (i, j, shift s) in row `row`: r_ij in T, the neighbour's
// precision row, 1/(a1 a2 a3) and type slot.
template <typename T>
__device__ __forceinline__ void write_row(
    const Tables& t, const double* cell, unsigned int i, unsigned int j, const int* s,
    unsigned int row, const T* __restrict__ precision_all, const T* __restrict__ inv_all,
    const unsigned int* __restrict__ type_slot_all, T* __restrict__ r_out,
    T* __restrict__ precision_out, T* __restrict__ inv_out, unsigned int* __restrict__ slot_out) {
    double r[3];
    pair_vector(t, cell, i, j, (double)s[0], (double)s[1], (double)s[2], r);
    for (int k = 0; k < 3; ++k) r_out[3 * (unsigned long long)row + k] = (T)r[k];
    for (int k = 0; k < 6; ++k) {
        precision_out[6 * (unsigned long long)row + k] = precision_all[6 * (unsigned long long)j + k];
    }
    inv_out[row] = inv_all[j];
    slot_out[row] = type_slot_all[j];
}

// The rows of centre i (begin .. end) by one thread: walk, insertion sort by (neighbour,
// shift) in the rows themselves, then what the pair kernel reads.
template <typename T>
__device__ void stage_center_serial(
    const Tables& t, unsigned int i, unsigned int begin, unsigned int end,
    const T* __restrict__ precision_all, const T* __restrict__ inv_all,
    const unsigned int* __restrict__ type_slot_all, unsigned int* __restrict__ neighbor_out,
    int* __restrict__ shift_out, T* __restrict__ r_out, T* __restrict__ precision_out,
    T* __restrict__ inv_out, unsigned int* __restrict__ slot_out, unsigned int* __restrict__ error) {
    RowVisit visit{begin, end, neighbor_out, shift_out};
    if (!walk_pairs(t, i, visit)) atomicOr(error, 1u);
    if (visit.q != end) {
        atomicOr(error, 2u);
        return;
    }
    // Insertion sort of rows begin..end by (neighbour, shift): the host's order.
    for (unsigned int a = begin + 1; a < end; ++a) {
        const unsigned int ja = neighbor_out[a];
        const int sa[3] = {shift_out[3 * a], shift_out[3 * a + 1], shift_out[3 * a + 2]};
        unsigned int z = a;
        while (z > begin && key_less(ja, sa, neighbor_out[z - 1], shift_out + 3 * (z - 1))) {
            neighbor_out[z] = neighbor_out[z - 1];
            shift_out[3 * z] = shift_out[3 * (z - 1)];
            shift_out[3 * z + 1] = shift_out[3 * (z - 1) + 1];
            shift_out[3 * z + 2] = shift_out[3 * (z - 1) + 2];
            --z;
        }
        neighbor_out[z] = ja;
        shift_out[3 * z] = sa[0];
        shift_out[3 * z + 1] = sa[1];
        shift_out[3 * z + 2] = sa[2];
    }
    const double* cell = t.frame_f + 10 * t.frame_of[i];
    for (unsigned int row = begin; row < end; ++row) {
        write_row<T>(t, cell, i, neighbor_out[row], shift_out + 3 * row, row, precision_all,
                     inv_all, type_slot_all, r_out, precision_out, inv_out, slot_out);
    }
}

// Warp visitor: each pair's key (neighbour, shift) into the warp's shared list, in whatever
// order the lanes find them; `fill` counts them all, stored or not (past WARP_CAP).
struct WarpVisit {
    unsigned int* key_j;
    int* key_s;
    unsigned int* fill;
    __device__ void operator()(unsigned int j, int sa, int sb, int sc) {
        const unsigned int at = atomicAdd(fill, 1u);
        if (at < WARP_CAP) {
            key_j[at] = j;
            key_s[3 * at] = sa;
            key_s[3 * at + 1] = sb;
            key_s[3 * at + 2] = sc;
        }
    }
};

// stage_pairs: one warp per centre c < n_centers of the chunk. The lanes find the centre's
// pairs together (walk_pairs_lanes) into shared memory; each pair's row is then its rank by
// (neighbour, shift) among them (keys are distinct: a (neighbour, shift) is one candidate), the
// host's order; each lane writes its pairs' rows. Centres with more than WARP_CAP pairs are
// staged by lane 0 alone (stage_center_serial).
template <typename T>
__device__ __forceinline__ void stage_pairs(
    const Tables& t, unsigned int first_center, unsigned int n_centers,
    const unsigned int* __restrict__ seg, const T* __restrict__ precision_all,
    const T* __restrict__ inv_all, const unsigned int* __restrict__ type_slot_all,
    unsigned int* __restrict__ neighbor_out, int* __restrict__ shift_out, T* __restrict__ r_out,
    T* __restrict__ precision_out, T* __restrict__ inv_out, unsigned int* __restrict__ slot_out,
    unsigned int* __restrict__ error) {
    __shared__ unsigned int key_j_all[SEARCH_WARPS][WARP_CAP];
    __shared__ int key_s_all[SEARCH_WARPS][3 * WARP_CAP];
    __shared__ unsigned int fill_all[SEARCH_WARPS];
    const unsigned long long thread = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    const unsigned int lane = threadIdx.x % 32;
    const unsigned int warp = threadIdx.x / 32;
    // The same centre for the whole warp, so a warp leaves together.
    if (thread / 32 >= n_centers) return;
    const unsigned int c = (unsigned int)(thread / 32);
    const unsigned int i = first_center + c;
    const unsigned int begin = seg[c], end = seg[c + 1];
    const unsigned int n = end - begin;
    if (n > WARP_CAP) {
        if (lane == 0) {
            stage_center_serial<T>(t, i, begin, end, precision_all, inv_all, type_slot_all,
                                   neighbor_out, shift_out, r_out, precision_out, inv_out,
                                   slot_out, error);
        }
        return;
    }
    unsigned int* key_j = key_j_all[warp];
    int* key_s = key_s_all[warp];
    if (lane == 0) fill_all[warp] = 0;
    __syncwarp();
    WarpVisit visit{key_j, key_s, &fill_all[warp]};
    if (!walk_pairs_lanes(t, i, lane, visit)) atomicOr(error, 1u);
    __syncwarp();
    if (fill_all[warp] != n) {
        if (lane == 0) atomicOr(error, 2u);
        return;
    }
    const double* cell = t.frame_f + 10 * t.frame_of[i];
    for (unsigned int e = lane; e < n; e += 32) {
        const unsigned int j = key_j[e];
        const int s[3] = {key_s[3 * e], key_s[3 * e + 1], key_s[3 * e + 2]};
        unsigned int rank = 0;
        for (unsigned int o = 0; o < n; ++o) rank += key_less(key_j[o], key_s + 3 * o, j, s);
        const unsigned int row = begin + rank;
        neighbor_out[row] = j;
        shift_out[3 * row] = s[0];
        shift_out[3 * row + 1] = s[1];
        shift_out[3 * row + 2] = s[2];
        write_row<T>(t, cell, i, j, s, row, precision_all, inv_all, type_slot_all, r_out,
                     precision_out, inv_out, slot_out);
    }
}

#define ANISOAP_TABLE_PARAMS                                                                    \
    const unsigned int *frame_of, const unsigned int *frame_u, const int *frame_reach,          \
        const double *frame_f, const unsigned int *bin_of, const int *image,                    \
        const unsigned int *slot, const double *positions, const unsigned int *bin_start,       \
        const double *wrapped, const int *slot_image, const unsigned int *slot_particle,        \
        double cutoff2, unsigned int self_pairs
#define ANISOAP_TABLES                                                                          \
    Tables {                                                                                    \
        frame_of, frame_u, frame_reach, frame_f, bin_of, image, slot, positions, bin_start,     \
            wrapped, slot_image, slot_particle, cutoff2, self_pairs                             \
    }

extern "C" __global__ void count_pairs_all(ANISOAP_TABLE_PARAMS, unsigned int n,
                                           const unsigned int* type_slot_all,
                                           const unsigned int* singular, unsigned int n_types,
                                           unsigned int* counts, unsigned int* seen,
                                           unsigned int* first_singular, unsigned int* error) {
    count_pairs(ANISOAP_TABLES, n, type_slot_all, singular, n_types, counts, seen, first_singular,
                error);
}

#define ANISOAP_SEARCH_KERNEL(T, SUFFIX)                                                        \
    extern "C" __global__ void stage_pairs_##SUFFIX(                                            \
        ANISOAP_TABLE_PARAMS, unsigned int first_center, unsigned int n_centers,               \
        const unsigned int* seg, const T* precision_all, const T* inv_all,                      \
        const unsigned int* type_slot_all, unsigned int* neighbor_out, int* shift_out,          \
        T* r_out, T* precision_out, T* inv_out, unsigned int* slot_out, unsigned int* error) {  \
        stage_pairs<T>(ANISOAP_TABLES, first_center, n_centers, seg, precision_all, inv_all,    \
                       type_slot_all, neighbor_out, shift_out, r_out, precision_out, inv_out,   \
                       slot_out, error);                                                        \
    }

ANISOAP_SEARCH_KERNEL(double, f64)
ANISOAP_SEARCH_KERNEL(float, f32)

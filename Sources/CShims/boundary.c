// The Boundary attack's proposal arithmetic for one image (Foolbox's draw_proposals): three
// passes over the pixels, the work the attack does outside the model. Sums run in sixteen
// independent lanes folded in a fixed order, which compilers vectorise without reassociating
// anything, so results do not depend on the instruction set; contraction into FMA is off
// for the same reason.
#pragma STDC FP_CONTRACT OFF
#include "include/CShims.h"
#include <math.h>

#define LANES 16

static float fold(const float lanes[LANES]) {
    float total = 0;
    for (int k = 0; k < LANES; k++) total += lanes[k];
    return total;
}

static inline float unit_clamp(float v) { return v < 0 ? 0 : (v > 1 ? 1 : v); }

void rc_boundary_propose(const float *x0, const float *x, float *eta, float *direction, long d,
                         float spherical_step, float source_step, float *source_norm, float *distance) {
    float acc[LANES];
    long i, k, full = d / LANES * LANES;

    // direction = x0 - x, with its squared norm, and what orthogonalising eta (N(0, 1),
    // filled by the caller) against it takes — eta.direction and |eta|^2 — in one pass:
    // eta - projection * direction has squared norm |eta|^2 - (eta.direction)^2 / |direction|^2
    // (in double), and the pass below subtracts the projection as it goes.
    float dot_lanes[LANES], eta_lanes[LANES];
    for (k = 0; k < LANES; k++) { acc[k] = 0; dot_lanes[k] = 0; eta_lanes[k] = 0; }
    for (i = 0; i < full; i += LANES)
        for (k = 0; k < LANES; k++) {
            float v = x0[i + k] - x[i + k], e = eta[i + k];
            direction[i + k] = v; acc[k] += v * v; dot_lanes[k] += e * v; eta_lanes[k] += e * e;
        }
    for (i = full; i < d; i++) {
        float v = x0[i] - x[i], e = eta[i];
        direction[i] = v; acc[i - full] += v * v; dot_lanes[i - full] += e * v; eta_lanes[i - full] += e * e;
    }
    float squares = fold(acc);
    float norm = sqrtf(squares);
    double dot = fold(dot_lanes);
    float projection = (float)(dot / squares);
    double orthogonal = (double)fold(eta_lanes) - dot * dot / squares;
    float scale = spherical_step * norm / (float)sqrt(orthogonal > 0 ? orthogonal : 0);

    // Back onto the sphere around the original, clipped: eta becomes the spherical
    // candidate, direction the step towards the original.
    float sphere = sqrtf(spherical_step * spherical_step + 1);
    for (k = 0; k < LANES; k++) acc[k] = 0;
    for (i = 0; i < full; i += LANES)
        for (k = 0; k < LANES; k++) {
            float orthogonal_eta = eta[i + k] - projection * direction[i + k];
            float point = unit_clamp(x0[i + k] + (orthogonal_eta * scale - direction[i + k]) / sphere);
            float v = x0[i + k] - point;
            eta[i + k] = point; direction[i + k] = v; acc[k] += v * v;
        }
    for (i = full; i < d; i++) {
        float orthogonal_eta = eta[i] - projection * direction[i];
        float point = unit_clamp(x0[i] + (orthogonal_eta * scale - direction[i]) / sphere);
        float v = x0[i] - point;
        eta[i] = point; direction[i] = v; acc[i - full] += v * v;
    }
    float new_norm = sqrtf(fold(acc));

    // A step of source_step * |source| towards the original, corrected for the clip:
    // direction becomes the candidate.
    float step = source_step * norm + new_norm - norm;
    float length = (step > 0 ? step : 0) / new_norm;
    for (k = 0; k < LANES; k++) acc[k] = 0;
    for (i = 0; i < full; i += LANES)
        for (k = 0; k < LANES; k++) {
            float point = unit_clamp(eta[i + k] + length * direction[i + k]);
            float gap = x0[i + k] - point;
            direction[i + k] = point; acc[k] += gap * gap;
        }
    for (i = full; i < d; i++) {
        float point = unit_clamp(eta[i] + length * direction[i]);
        float gap = x0[i] - point;
        direction[i] = point; acc[i - full] += gap * gap;
    }
    *source_norm = norm;
    *distance = sqrtf(fold(acc));
}

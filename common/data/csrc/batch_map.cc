// The training batch map of recipes with random erasing or mixup/cutmix, in one pass over the batch
// (common/data/batch_kernel.py draws the random numbers and calls this through ctypes, which releases the GIL).
//
// Per image the map workers stop at uint8 HWC (decode, crop, flip, RandAugment); this pass then does what used to be
// three: normalise + HWC->CHW (was MindSpore's Normalize and HWC2CHW per image), random erasing, and the mix of image
// i with image n-1-i (mixup: a - d and b + d with d = (1 - lam)(a - b); cutmix: the box taken from the partner).
// Image pairs are processed a row at a time, so every value is written once and the mix reads it back from cache.
//
// Normalisation is a lookup: lut[c * 256 + v] holds (v - mean[c]) / std[c] as float32, computed by the caller, so
// this kernel and the NumPy fallback give the same bits. Built with -ffp-contract=off: a fused multiply-add would
// round the mix differently from the NumPy fallback (aarch64 compilers fuse by default).
#include <algorithm>
#include <cstdint>
#include <cstring>

namespace {

struct Box {
  int32_t y0, y1, x0, x1;
  bool has_row(int64_t y) const { return y0 <= y && y < y1 && x0 < x1; }
};

// Row y of one uint8 HWC image into its 3 CHW rows (out + c * plane + y * width), erased where its box covers it.
void normalise_row(const uint8_t *image, int64_t y, int64_t width, int64_t plane, const float *lut, const Box &erase,
                   float *out) {
  const uint8_t *pixel = image + y * width * 3;
  float *r = out + y * width, *g = r + plane, *b = g + plane;
  for (int64_t x = 0; x < width; ++x) {
    r[x] = lut[pixel[3 * x]];
    g[x] = lut[256 + pixel[3 * x + 1]];
    b[x] = lut[512 + pixel[3 * x + 2]];
  }
  if (erase.has_row(y)) {
    for (float *row : {r, g, b}) std::fill(row + erase.x0, row + erase.x1, 0.f);
  }
}

void mix_rows(float *a, float *b, int64_t width, float keep_other) {
  for (int64_t x = 0; x < width; ++x) {
    const float d = (a[x] - b[x]) * keep_other;
    a[x] -= d;
    b[x] += d;
  }
}

}  // namespace

extern "C" {

// images: n pointers to uint8 (height, width, 3) C-contiguous arrays; lut: 3 x 256 float32; erase: n boxes
// (y0, y1, x0, x1; empty when y0 == y1); mode 0 none, 1 mixup with keep_other = float32(1 - lam), 2 cutmix with
// box `cut`; out: float32 (n, 3, height, width). Returns 0, or 1 on a bad argument.
int zoo_batch_map(const uint8_t *const *images, int64_t n, int64_t height, int64_t width, const float *lut,
                  const int32_t *erase, int32_t mode, float keep_other, const int32_t *cut, float *out) {
  if (n < 0 || height <= 0 || width <= 0 || mode < 0 || mode > 2) return 1;
  const int64_t plane = height * width;
  const Box cut_box = mode == 2 ? Box{cut[0], cut[1], cut[2], cut[3]} : Box{0, 0, 0, 0};
  for (int64_t i = 0; i <= (n - 1) / 2; ++i) {
    const int64_t j = n - 1 - i;
    float *out_i = out + i * 3 * plane, *out_j = out + j * 3 * plane;
    const Box erase_i{erase[4 * i], erase[4 * i + 1], erase[4 * i + 2], erase[4 * i + 3]};
    const Box erase_j{erase[4 * j], erase[4 * j + 1], erase[4 * j + 2], erase[4 * j + 3]};
    for (int64_t y = 0; y < height; ++y) {
      normalise_row(images[i], y, width, plane, lut, erase_i, out_i);
      if (j == i) continue;  // the middle image of an odd batch is its own partner: unchanged
      normalise_row(images[j], y, width, plane, lut, erase_j, out_j);
      for (int64_t c = 0; c < 3; ++c) {
        float *a = out_i + c * plane + y * width, *b = out_j + c * plane + y * width;
        if (mode == 1) {
          mix_rows(a, b, width, keep_other);
        } else if (mode == 2 && cut_box.has_row(y)) {
          std::swap_ranges(a + cut_box.x0, a + cut_box.x1, b + cut_box.x0);
        }
      }
    }
  }
  return 0;
}

}  // extern "C"

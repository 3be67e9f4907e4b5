// Batched matrix transpose: channels-last feature maps into PyTorch's
// channels-first order (flatten), and per-channel columns into rows (batch
// normalization is a row normalization of the transpose). Tiled through
// shared memory so both the reads and the writes are coalesced. Twin of
// src/backend/cpu/layout.rs.

#define TILE 32
#define TILE_ROWS 8

// out [n, c, r] = each [r, c] matrix of x transposed. Block (32, 8) moves
// one 32 x 32 tile, each thread four entries; grid x numbers the tiles of a
// matrix (row tile-major), grid y strides over the n matrices. The tile's
// padding column keeps the column reads free of bank conflicts.
extern "C" __global__ void __launch_bounds__(TILE * TILE_ROWS)
transpose(const float* __restrict__ x, float* __restrict__ out, long long n, int r, int c) {
    __shared__ float tile[TILE][TILE + 1];
    const int col_tiles = (c + TILE - 1) / TILE;
    const int r0 = (blockIdx.x / col_tiles) * TILE;
    const int c0 = (blockIdx.x % col_tiles) * TILE;
    for (long long b = blockIdx.y; b < n; b += gridDim.y) {
        const float* src = x + b * r * (long long)c;
        float* dst = out + b * r * (long long)c;
        int j = c0 + threadIdx.x;
        for (int q = threadIdx.y; q < TILE; q += TILE_ROWS) {
            int i = r0 + q;
            if (i < r && j < c) {
                tile[q][threadIdx.x] = src[(long long)i * c + j];
            }
        }
        __syncthreads();
        int i = r0 + threadIdx.x;
        for (int q = threadIdx.y; q < TILE; q += TILE_ROWS) {
            int jj = c0 + q;
            if (i < r && jj < c) {
                dst[(long long)jj * r + i] = tile[threadIdx.x][q];
            }
        }
        // The next matrix reuses the tile.
        __syncthreads();
    }
}

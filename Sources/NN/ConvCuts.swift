// How the direct convs cut their work into jobs: every rule here is a function of the shapes alone,
// never of the thread count, so that every element is summed by the same GEMM calls in the same
// order on any number of threads (Convolution.swift, "Threads"). `ConvTuning` overrides two of the
// constants for `dsan bench tuning`.

/// The work of one conv is cut into at least this many jobs where its shape allows (more jobs
/// than this only where the tiling needs them), so up to this many workers share it. A function of
/// nothing but this constant and the shapes, which keeps the results independent of the threads.
public let minimumConvJobs = 8

/// Columns below which a tile is not narrowed further for the sake of more jobs.
let minimumSplitColumns = 64

/// The tile width for `positions` positions: `widest` (what the workspace holds), narrowed until
/// one sample has `minimumConvJobs` tiles, but not below `minimumSplitColumns`. A function of the
/// geometry alone — not of the thread count, and not of the samples a rank holds: OpenBLAS rounds
/// an element differently depending on where in a GEMM's columns it falls, so a tile width that
/// followed a rank's share of the batch would make rank counts differ (3e-4 of a gradient at
/// width 64, global batch 3).
func splitColumns(_ widest: Int, positions P: Int) -> Int {
    max(1, min(widest, max(min(P, minimumSplitColumns), (P + minimumConvJobs - 1) / minimumConvJobs)))
}

/// Column panels of a 1×1×1 conv over P positions (see `splitColumns`).
func pointwisePanels(_ P: Int) -> (panel: Int, panels: Int) {
    let panel = splitColumns(P, positions: P)
    return (panel, (P + panel - 1) / panel)
}

/// Blocks of output rows (multiples of 16, the widest GEMM micro-kernel's rows) so that `tileJobs`
/// tiles make at least `minimumConvJobs` jobs where there are rows for them. A function of the
/// shape only.
func rowPanels(_ rows: Int, tileJobs: Int) -> (panelRows: Int, panels: Int) {
    if tileJobs >= minimumConvJobs || tileJobs == 0 || rows <= 16 { return (rows, 1) }
    let wanted = (minimumConvJobs + tileJobs - 1) / tileJobs
    let panelRows = max(16, ((rows + wanted - 1) / wanted + 15) / 16 * 16)
    return (panelRows, (rows + panelRows - 1) / panelRows)
}

/// At most this many jobs where a direct conv's cut goes beyond `minimumConvJobs`: 64 workers of
/// a 64-core node. The stem's weight gradient (`positionChunks`: about 5 % of the step at
/// 64×128×128 and 138×256×256) and, at large sizes, the strided convs' backward
/// (`backwardChannelBlocks`: 3–4 % at 138×256×256) each keep a large share of the step in one
/// region: cut into 8 they left half of a 16-core node idle, and the stem's dW in 32 chunks half
/// of a 64-core one (Docs/performance.md, "On more cores than this machine has").
var maximumConvJobs: Int { ConvTuning.value(.convJobs) }
let defaultMaximumConvJobs = 64

/// Output positions per sample from which the direct backward cuts its input channels into more
/// than `minimumConvJobs` blocks (`backwardChannelBlocks`): below it the blocks' GEMMs are short
/// already. From 2048 (not 4096) since layer3.0.conv1 at 138×256×256 (2304 positions) was the
/// strided backward's last 8-block call there; the demo's strided convs (at most 256 positions)
/// keep their cut and bits.
var manyPositions: Int { ConvTuning.value(.stridedBackwardPositions) }
let defaultManyPositions = 2048

/// Input channels a block of the direct backward keeps at least when it is cut beyond
/// `minimumConvJobs`: 4 (108 rows of a 3³ kernel per GEMM).
let minimumBlockChannels = 4

/// The least number of input-channel blocks of the direct backward (dX and dW together, each
/// block owning its channels of dX and rows of dW): `minimumConvJobs`, and from `manyPositions`
/// output positions up to `maximumConvJobs` while a block keeps `minimumBlockChannels`. A function
/// of the shape alone, so the results do not follow the thread count. At 138×256×256,
/// layer2.0.conv1 (64 channels, 18 432 positions): 16 blocks, layer3.0.conv1 (128, 2304): 32;
/// at 64×128×128 layer2.0.conv1 (64, 2048): 16, layer3.0.conv1 (128, 256): 8.
func backwardChannelBlocks(channels: Int, positions: Int) -> Int {
    guard positions >= manyPositions else { return minimumConvJobs }
    return max(minimumConvJobs, min(maximumConvJobs, channels / minimumBlockChannels))
}

/// Column tiles a chunk keeps at least, when more chunks than `minimumConvJobs` asks for are
/// cut: each chunk's private partial (Cout·rows floats, 88 KB for the stem) is written once and
/// read once, beside the GEMMs of its tiles (67 MFLOP for two of the stem's). 2 since the stem's
/// dW runs by dsan's GEMM: at 64×128×128 its 172 tiles then make 64 chunks where 5 made 34, which
/// left 29 % of 16 workers idle in the granularity bench (Docs/performance.md, "On more cores
/// than this machine has").
let minimumChunkTiles = 2

/// Chunks of column tiles per block of input channels in `directWeightGradientByPositions`: at
/// least `minimumConvJobs` jobs in all, up to `maximumConvJobs` while each chunk keeps
/// `minimumChunkTiles` tiles, and no more chunks than tiles. A function of the shape alone (the
/// partials are added in chunk order, so the chunks fix the result's rounding), never of the
/// thread count. The stem at 138×256×256 (1480 tiles) and at 64×128×128 (172 tiles): 64; at
/// 32×64×64 (22 tiles): 11.
func positionChunks(tiles: Int, blocks: Int) -> Int {
    let least = (minimumConvJobs + blocks - 1) / blocks, most = (maximumConvJobs + blocks - 1) / blocks
    return max(1, min(tiles, max(least, min(most, tiles / minimumChunkTiles))))
}

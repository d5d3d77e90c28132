import VectorKernels

// Which algorithm computes a 3×3×3 stride-1 padding-1 conv, and the Winograd convs' tuning: the
// rules that choose F(2,3), its GEMM and its weight-gradient path, the block and slice sizes, and
// the environment variables that override the defaults for comparisons. The passes themselves are
// in Winograd.swift (F(2,3)) and WinogradF4.swift (F(4,3)).

/// Which algorithm computes the 3×3×3 stride-1 padding-1 convs. Every other conv is direct
/// (vol2col + GEMM) whatever the setting.
public enum ConvAlgorithm: String, Sendable, CaseIterable, CustomStringConvertible {
    /// vol2col + GEMM (Convolution.swift).
    case direct
    /// Winograd F(4×4×4, 3×3×3) where `WinogradF4Conv.isUsed(for:input:)` says it pays
    /// (WinogradF4.swift), else F(2×2×2, 3×3×3) where `WinogradConv.isUsed(for:input:)` says so
    /// (Winograd.swift); the other convs stay direct.
    case winograd
    /// As `.winograd` but never F(4,3): F(2×2×2, 3×3×3) or direct (`DSAN_CONV=winograd2`).
    case winograd2

    /// The process-wide choice from the environment variable `DSAN_CONV` (`direct`, `winograd` or
    /// `winograd2`, read once; `.winograd` when it is unset; an unknown value stops the program
    /// with a message naming the variable and the accepted values), and a task's own:
    /// `ConvAlgorithm.choice.with(.direct) { … }`.
    public static let choice = ImplementationSwitch<ConvAlgorithm>(environment: "DSAN_CONV", default: .winograd)

    /// The algorithm `conv3dForward` / `conv3dBackward` use (`choice.selected`). Setting it sets
    /// the process-wide choice (a command does, once, before its work).
    public static var selected: ConvAlgorithm {
        get { choice.selected }
        set { choice.processWide = newValue }
    }

    public var description: String { rawValue }
}

/// Tuning and dispatch of the Winograd convs.
public enum WinogradConv {
    /// Bytes of transformed input and output (V and M) per block of tiles. The 64 GEMMs of a block
    /// each read one U_ξ (Cout·Cin floats, from memory for the wide layers), so the block must hold
    /// enough tiles to amortise it, while V_ξ and M_ξ of one GEMM stay in L2.
    /// 8 MiB (`defaultBlockMiB`), or the task's `ConvTuning` override (`winograd-block-mib`).
    public static var blockBytes: Int { ConvTuning.value(.winogradBlockMiB) << 20 }
    static let defaultBlockMiB = 8
    /// Fewest tiles in a block (when the channels are so wide that `blockBytes` holds fewer).
    public static let minimumBlockTiles = 32

    /// Floats from one row (channel) of a block's V or M to the next, for `tiles` tiles (F(2,3)
    /// and F(4,3) alike): the tiles rounded up to 16, so that every row starts on a 64-byte cache
    /// line and no 16-lane load or store of a row straddles two, and a line more only where that
    /// is a multiple of 1 KiB, whose rows would fall in the same few L1 sets (or the tiles rounded
    /// up to 8 and `winograd-row-padding` floats more, for comparisons). Until 2026-12-03 every
    /// row was the tiles rounded up to 8 and 8 floats more: at batch 1 layers 3–4 have 32 tiles,
    /// so their rows took 40 floats, 160 bytes, a quarter more to write and read, and every other
    /// row started 32 bytes into a line.
    static func rowStride(tiles: Int) -> Int {
        let padding = ConvTuning.value(.winogradRowPadding)
        if padding > 0 { return (tiles + 7) / 8 * 8 + padding }
        let rounded = (tiles + 15) / 16 * 16
        return rounded % 256 == 0 ? rounded + 16 : rounded
    }

    /// True for the convs Winograd F(2,3) computes: 3×3×3 kernel, stride 1, padding 1.
    public static func applies(to g: Conv3dGeometry) -> Bool {
        g.kernel == Size3(3) && g.stride == Size3(1) && g.padding == Size3(1)
    }

    /// With OpenBLAS's GEMMs (`WinogradGEMM.openBLAS`), the weight gradient takes Winograd from
    /// this many tiles per sample (⌈D/2⌉·⌈H/2⌉·⌈W/2⌉) and stays direct below: its 64 products go
    /// through OpenBLAS (K = tiles per block, dU accumulated over the blocks and transformed once),
    /// which at 32 tiles (layers 3–4 at a 64×128×128 input, batch 1) measured 0.85–1.0× the direct
    /// dW. With the packed GEMM the fused kernel (winograd_dw_body.h) computes them at every tile
    /// count (1.6× the direct dW at 32 tiles on 1 thread; 1.15–1.6× OpenBLAS's GEMMs on layers 1–3
    /// from 256 tiles since its tile chunks are 32 KiB of dM: Docs/performance.md, "At every tile
    /// count"); `dsan bench tuning --setting fused-weight-gradient=0` gives back the
    /// rule before it, OpenBLAS's GEMMs from this many tiles. Per sample, like
    /// `minimumPackedTiles`: a rank's share of the batch must not choose a sample's algorithm.
    public static let minimumWeightGradientTiles = 64

    /// The tiles of one sample of `input`.
    static func tilesPerSample(_ input: Shape5) -> Int { tiles(Shape5(n: 1, c: input.c, d: input.d, h: input.h, w: input.w)) }

    /// With OpenBLAS's GEMMs (`WinogradGEMM.openBLAS`) each pass also copies every U_ξ into
    /// OpenBLAS's layout, so Winograd pays when U is at most 1 MiB per tile, i.e. at least
    /// Cin·Cout / 4096 tiles. At a 64×128×128 input (batch 1) this kept layer4's 512→512 convs
    /// (32 tiles, 64 MiB of U) direct: there Winograd measured 0.65–1.28× (median 1.19×) forward
    /// and 0.89–1.22× (0.94×) dX.
    public static let weightFloatsPerTile = 4096

    /// With dsan's packed GEMM (`WinogradGEMM.packed`) the weight transform writes U_ξ in the
    /// GEMM's layout. Its cost and a tile's saving against the direct conv (432 against 128
    /// multiply-adds) both grow with Cin·Cout, so Winograd pays from a few tiles whatever the
    /// channels; layer4 at 32 tiles gained 2.05× forward (Docs/performance.md, "dsan's packed
    /// GEMM"). Counted per sample, so that how a global batch is split over ranks and
    /// micro-batches never changes the algorithm, and with it the bits, of a sample's convs.
    public static let minimumPackedTiles = 8

    /// With the packed GEMM, a conv of one block (layers 3–4 at batch 1) transforms the weights
    /// panel by panel inside the GEMM phase instead of writing all of U first (`TransformedWeights
    /// .panels`); the same bits either way. Tests turn it off (for their task) to compare.
    @TaskLocal static var transformsPanelsInTheGEMM = true

    /// Columns of A (input channels forward, output channels for dX) per slice when the GEMM phase
    /// transforms the weights panel by panel: a row panel of all 64 A_ξ is transformed and
    /// multiplied one slice of columns at a time, each GEMM going on from the previous slice's
    /// sums, so the slice (64·columns·R floats, `panelSliceBytes`) stays in the worker's L2
    /// instead of going out to L3 and back. The same bits for any slicing (each C element is one
    /// sum over the columns in order). Nil: the rule; 0: whole panels (comparisons, tests).
    @TaskLocal public static var panelSliceColumns: Int? = nil

    /// The slice of one transformed row panel that `panelSliceColumns` keeps in L2: 256 KiB, half
    /// of a Zen 3 core's L2 and a quarter of a Skylake-SP's, leaving room for the rows of V_ξ and
    /// M_ξ the GEMMs stream past it. On the Zen 5 VM's 1 MiB L2, 512 and 768 KiB were no faster
    /// and 64 KiB slower (Docs/performance.md, "In slices that stay in L2").
    static let defaultPanelSliceBytes = 256 << 10
    /// `defaultPanelSliceBytes`, or `dsan bench tuning --setting panel-slice-kib=N`.
    static var panelSliceBytes: Int { ConvTuning.value(.panelSliceKiB) << 10 }

    /// Columns per slice for A with `k` columns and R rows per panel of `matrices` matrices (a
    /// part of the 64, `panelParts`): a multiple of 8 (the transform's run of columns), all of them
    /// when 0 or when one slice holds them.
    public static func panelSlice(columns k: Int, panelRows r: Int, matrices: Int = 64) -> Int {
        let chosen = panelSliceColumns ?? max(8, panelSliceBytes / (matrices * r * MemoryLayout<Float>.size) / 8 * 8)
        return chosen <= 0 ? k : min(k, chosen)
    }

    /// The tiles N·⌈D/2⌉·⌈H/2⌉·⌈W/2⌉ of an input.
    static func tiles(_ s: Shape5) -> Int { s.n * ((s.d + 1) / 2) * ((s.h + 1) / 2) * ((s.w + 1) / 2) }

    /// True when `conv3dForward` / `conv3dBackward` take the Winograd path for `g` on `input`
    /// (for the weight gradient, see also `usesWinogradWeightGradient`).
    public static func isUsed(for g: Conv3dGeometry, input: Shape5) -> Bool {
        guard ConvAlgorithm.selected != .direct && applies(to: g) else { return false }
        switch WinogradGEMM.selected {
        case .packed:   // an empty batch (a rank with no case in a step) stays direct
            return input.n > 0 && tilesPerSample(input) >= minimumPackedTiles
        case .openBLAS: return tiles(input) * weightFloatsPerTile >= g.inChannels * g.outChannels
        }
    }

    /// True when `conv3dBackward` computes dWeight by Winograd for `g` on `input`.
    public static func usesWinogradWeightGradient(for g: Conv3dGeometry, input: Shape5) -> Bool {
        guard isUsed(for: g, input: input) else { return false }
        switch WinogradGEMM.selected {
        case .packed: return true   // by the fused kernel (or OpenBLAS's GEMMs, usesFusedWeightGradient)
        case .openBLAS: return input.n > 0 && tilesPerSample(input) >= minimumWeightGradientTiles
        }
    }

    /// Parts of the 64 ξ into which the fused weight gradient's `jobs` (a panel of output channels
    /// × a chunk of input channels each) cut their products for `workers` workers: 1 (the fused
    /// jobs, each keeping its sums in its cache) while there are at least two jobs per worker,
    /// else the fewest of 2, 4, 8 and 16 that give two items per worker (at most 16: 4 ξ each).
    /// Layer1 has 4 jobs at AVX-512 and layer2 12, which left most of a 16-core node's workers
    /// idle (`dsan bench granularity`). Any `parts` gives the same bits, so it may follow the
    /// workers.
    static func weightGradientParts(jobs: Int, workers: Int) -> Int {
        var parts = 1
        while parts < 16 && jobs * parts < 2 * workers { parts *= 2 }
        return parts
    }

    /// True when Winograd's weight gradient on `input` takes the fused kernel rather than
    /// OpenBLAS's GEMMs: always with the packed GEMM selected, unless the tuning setting
    /// `fused-weight-gradient` is 0 (then below `minimumWeightGradientTiles` tiles per sample).
    static func usesFusedWeightGradient(input: Shape5) -> Bool {
        WinogradGEMM.selected == .packed
            && (ConvTuning.value(.fusedWeightGradient) == 1 || tilesPerSample(input) < minimumWeightGradientTiles)
    }
}

/// What multiplies the F(2,3) forward's and input gradient's 64 matrices per block.
public enum WinogradGEMM: String, Sendable, CaseIterable, CustomStringConvertible {
    /// dsan's GEMM (Sources/VectorKernels/packed_gemm_body.h) on weights the transform writes in
    /// its layout: no per-call copy of U_ξ. The default.
    case packed
    /// OpenBLAS's sgemm on U in `[ξ][Cout][Cin]`, which copies U_ξ at every call
    /// (`DSAN_WINOGRAD_GEMM=openblas`, for comparisons).
    case openBLAS = "openblas"

    /// The process-wide choice from the environment variable `DSAN_WINOGRAD_GEMM` (`packed` or
    /// `openblas`, read once; `.packed` when unset), and a task's own:
    /// `WinogradGEMM.choice.with(.openBLAS) { … }` (tests).
    public static let choice = ImplementationSwitch<WinogradGEMM>(environment: "DSAN_WINOGRAD_GEMM", default: .packed)

    /// The GEMM the F(2,3) convs use (`choice.selected`).
    public static var selected: WinogradGEMM { choice.selected }

    public var description: String { rawValue }
}

// MARK: The one-block phase on more workers than panels

extension WinogradConv {
    /// How the one-block GEMM phase cuts each row panel into jobs: its 64 matrices in
    /// `matrixParts` parts (1, 2 or 4: `dsan_winograd_panel_part_matrices`) and its tiles in
    /// `tileParts`. Any cut gives the same bits: every M element is still one sum over the columns
    /// in order, and the output transform of a part's tiles is that of those tiles alone.
    struct PanelCut: Equatable {
        var matrixParts: Int
        var tileParts: Int
    }

    /// For 1, 2 and 4 matrix parts, the ξ of each part in turn (`dsan_winograd_panel_part_matrices`:
    /// part q's 64 / parts ξ from index q·64 / parts), listed once rather than at every call.
    static let partMatrices: [Int: [Int]] = Dictionary(uniqueKeysWithValues: [1, 2, 4].map { parts in
        var xis = [Int](repeating: 0, count: 64)
        for part in 0..<parts { dsan_winograd_panel_part_matrices(part, parts, &xis[part * 64 / parts]) }
        return (parts, xis)
    })

    /// Extra work per extra matrix part: each part reads its panel's weights again (and
    /// transposes them into vectors), but computes only its own share of the transform.
    /// Measured on one Zen 5 core: 2 parts cost 1.05–1.13×, 4 parts 1.15–1.42× the whole panel's
    /// job (layers 3–4, forward and dX; Docs/performance.md, "More workers than panels").
    static let matrixPartShare = 0.1

    /// Extra work per extra tile part: each repeats its panel's whole weight transform (about a
    /// third of the phase on one core; 2 parts cost 1.33–1.45×, 4 parts 1.86–2.06× on one Zen 5
    /// core).
    static let repeatedShare = 0.3

    /// With fewer row panels than workers (many cores, or AVX-512's 32-row panels: layer3 has 8
    /// at 256 channels) the rest of the workers would idle through the phase. The cut: the
    /// matrix parts g ∈ {1, 2, 4} and tile parts p (parts of at least 8 tiles) that maximise
    /// min(panels·g·p, workers) / ((1 + matrixPartShare·(g − 1))·(1 + repeatedShare·(p − 1))),
    /// the fewest parts on a tie: (1, 1) whenever the panels already occupy every worker (always
    /// on 2 threads here, where finer jobs were measured to buy nothing). `dsan bench tuning
    /// --setting panel-parts=N` or `panel-tile-parts=N` forces one of the two (the other then
    /// follows the rule).
    static func panelCut(panels: Int, tiles: Int, workers: Int) -> PanelCut {
        let forcedMatrices = ConvTuning.value(.panelParts), forcedTiles = ConvTuning.value(.panelTileParts)
        let matrixChoices = forcedMatrices > 0 ? [forcedMatrices] : [1, 2, 4]
        let tileChoices = forcedTiles > 0 ? [max(1, min(forcedTiles, tiles))] : Array(1...max(1, tiles / 8))
        var best = PanelCut(matrixParts: matrixChoices[0], tileParts: tileChoices[0]), bestSpeed = -1.0
        for g in matrixChoices {
            for p in tileChoices {
                let cost = (1 + matrixPartShare * Double(g - 1)) * (1 + repeatedShare * Double(p - 1))
                let speed = Double(min(max(1, panels) * g * p, workers)) / cost
                if speed > bestSpeed { (best, bestSpeed) = (PanelCut(matrixParts: g, tileParts: p), speed) }
            }
        }
        return best
    }
}

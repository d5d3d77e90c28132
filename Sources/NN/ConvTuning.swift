/// Overrides of the convolutions' tuning constants for one task and the synchronous code it calls,
/// so that `dsan bench tuning` can time a setting against the default in one process, pair by
/// pair (`ConvTuning.with(.convJobs, 32) { … }`). Nothing else sets them: a training run uses the
/// defaults, which the constants' own comments justify. The convs read them on the calling
/// thread, before they hand work to `Parallel`'s workers, like `ConvAlgorithm.choice`.
public enum ConvTuning {
    /// A tuning constant that can be overridden, by its name on the command line.
    public enum Setting: String, CaseIterable, Sendable, CustomStringConvertible {
        /// `maximumConvJobs`: the most jobs a direct conv's cut goes to (the stem's weight-gradient
        /// chunks, the strided backward's channel blocks). Changes the stem's dW bits where its
        /// chunk count changes.
        case convJobs = "conv-jobs"
        /// `manyPositions`: output positions per sample from which the strided backward cuts its
        /// input channels beyond `minimumConvJobs` blocks.
        case stridedBackwardPositions = "strided-backward-positions"
        /// `WinogradConv.blockBytes` in MiB: V and M of a block of F(2,3) tiles. Changes the bits
        /// of the convs whose block count changes.
        case winogradBlockMiB = "winograd-block-mib"
        /// The items per worker of the Winograd transform phases (`transformGrain`).
        case transformItemsPerWorker = "transform-items-per-worker"
        /// 1: a direct conv's forward (the stem, the strided 3³ convs) runs by dsan's packed
        /// GEMM, 0: by OpenBLAS's sgemm (`DirectGEMM`). Changes those convs' bits.
        case packedDirectForward = "packed-direct-forward"
        /// 1: a direct conv's backward (the stem's weight gradient, the strided convs' dX and dW)
        /// runs by dsan's packed GEMM, 0: by OpenBLAS's sgemm (`DirectGEMM.selectedForBackward`).
        /// Changes their bits.
        case packedDirectBackward = "packed-direct-backward"
        /// Parts of each row panel's 64 matrices in the one-block Winograd GEMM phase
        /// (`WinogradConv.panelCut`): 1, 2 or 4; 0, the default, is the rule. The same bits.
        case panelParts = "panel-parts"
        /// Parts of each row panel's tiles in the one-block Winograd GEMM phase
        /// (`WinogradConv.panelCut`), each repeating the panel's weight transform; 0, the
        /// default, is the rule. The same bits.
        case panelTileParts = "panel-tile-parts"
        /// 1: the F(2,3) weight gradient by dsan's fused kernel at every tile count; 0: through
        /// OpenBLAS's 64 GEMMs from `WinogradConv.minimumWeightGradientTiles` tiles per sample,
        /// the rule before (`WinogradConv.usesFusedWeightGradient`). Changes those convs' bits.
        case fusedWeightGradient = "fused-weight-gradient"
        /// 1: the 216 GEMMs of an F(4,3) conv (layer1's forward and dX) by dsan's packed GEMM;
        /// 0: by OpenBLAS's sgemm, the code before (`WinogradF4Conv.usesPackedGEMM`). Changes
        /// those convs' bits.
        case packedWinograd4 = "packed-winograd4"
        /// `WinogradF4Conv.minimumTiles` as far as one sample's tiles go (a block must still hold
        /// that many): the 4³ tiles per sample from which a conv takes F(4,3). Changes the bits
        /// of the convs that switch.
        case winograd4SampleTiles = "winograd4-sample-tiles"
        /// 1: the one-block Winograd GEMM phase's weight transform stages its results and copies
        /// them out, as the whole-matrix transform does; 0, the default: it stores each result
        /// straight into its matrix of the slice (`dsan_winograd_weight_transform_panel`). The
        /// same bits.
        case panelStaging = "panel-staging"
        /// Floats a row of a Winograd block's V and M (F(2,3) and F(4,3)) holds beyond its tiles
        /// rounded up to 8 (`WinogradConv.rowStride`); 0, the default, is the rule (the tiles
        /// rounded up to 16, a line more where that is a multiple of 1 KiB). The same bits.
        case winogradRowPadding = "winograd-row-padding"
        /// KiB of a transformed row panel's slice in the one-block Winograd GEMM phase
        /// (`WinogradConv.panelSliceBytes`), kept in the worker's L2. The same bits.
        case panelSliceKiB = "panel-slice-kib"

        /// The value the code uses when nothing overrides it.
        public var defaultValue: Int {
            switch self {
            case .convJobs: return defaultMaximumConvJobs
            case .stridedBackwardPositions: return defaultManyPositions
            case .winogradBlockMiB: return WinogradConv.defaultBlockMiB
            case .transformItemsPerWorker: return defaultTransformItemsPerWorker
            case .packedDirectForward, .packedDirectBackward: return DirectGEMM.choice.processWide == .packed ? 1 : 0
            case .panelParts, .panelTileParts, .panelStaging, .winogradRowPadding: return 0
            case .fusedWeightGradient, .packedWinograd4: return 1
            case .winograd4SampleTiles: return WinogradF4Conv.minimumTiles
            case .panelSliceKiB: return WinogradConv.defaultPanelSliceBytes >> 10
            }
        }

        /// The least value that keeps the code's invariants (a cut into at least
        /// `minimumConvJobs` jobs, a block of at least one MiB, one item per worker).
        public var leastValue: Int {
            switch self {
            case .convJobs: return minimumConvJobs
            case .stridedBackwardPositions, .winogradBlockMiB, .transformItemsPerWorker, .winograd4SampleTiles,
                 .panelSliceKiB: return 1
            case .packedDirectForward, .packedDirectBackward, .fusedWeightGradient, .packedWinograd4, .panelParts,
                 .panelTileParts, .panelStaging, .winogradRowPadding: return 0
            }
        }

        /// The greatest value that means something (nil: no bound).
        public var greatestValue: Int? {
            switch self {
            case .packedDirectForward, .packedDirectBackward, .fusedWeightGradient, .packedWinograd4, .panelStaging: return 1
            case .panelParts: return 4
            default: return nil
            }
        }

        /// Whether the code can run with `value`: within the bounds, and for `panel-parts` one of
        /// 0 (the rule), 1, 2 and 4.
        public func accepts(_ value: Int) -> Bool {
            value >= leastValue && value <= (greatestValue ?? .max) && (self != .panelParts || value != 3)
        }

        public var description: String { rawValue }
    }

    @TaskLocal static var overrides: [Setting: Int] = [:]

    /// Runs `body` with `setting` at `value` (at least `setting.leastValue`) for this task.
    public static func with<R>(_ setting: Setting, _ value: Int, _ body: () throws -> R) rethrows -> R {
        precondition(setting.accepts(value), "ConvTuning: \(setting) = \(value) is out of range")
        var changed = overrides
        changed[setting] = value
        return try $overrides.withValue(changed, operation: body)
    }

    /// The value in effect for this task.
    public static func value(_ setting: Setting) -> Int { overrides[setting] ?? setting.defaultValue }
}

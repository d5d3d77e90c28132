// The scratch memory of the direct convs: the column tiles of vol2col (`ConvWorkspace`), the
// Winograd convs' buffers it keeps, and the grow-on-demand buffer they are built from
// (`ScratchFloats`). How the convs use them is in Convolution.swift.

/// A tile is a block of the column matrix: the rows of `channels` input channels (channels·k³ rows)
/// by `columns` output positions, and it never exceeds one slice of min(`capacity`, `tileBytes`),
/// so memory is bounded whatever the input size: a tile that stays in the core's L2 cache between
/// vol2col writing it and the GEMM reading it is what makes the conv run near the sgemm rate
/// (Docs/performance.md). Each worker gets a slice of its own, so at most `slices` workers run
/// tiles at once; the slice size, and with it the tiling, does not depend on the worker count.
///
/// A workspace made with `init()` follows the thread count: it starts with one slice per thread
/// (`Parallel.threads`, at least 2) and grows to one per thread when a conv runs on more threads
/// than it was made for (`reserveSlices`), so a model created before the threads were set does not
/// cap its direct convs. One made with `init(bytes:)` keeps its size, and with it its bound on the
/// workers (tests and `dsan bench kernels --workspace-mib`).
public final class ConvWorkspace {
    /// The default size: one `tileBytes` slice per thread (`Parallel.threads`), at least 2.
    public static var defaultBytes: Int { max(2, Parallel.threads) * tileBytes }
    /// The most one worker's tile uses, 1 MiB: the L2 cache of one core of the target machine
    /// (AMD Zen 3), and the best of 1–32 MiB tiles measured there (Docs/performance.md).
    public static let tileBytes = 1 << 20
    /// Below this many columns a GEMM loses efficiency, so a tile rather splits the input channels.
    public static let minimumTileColumns = 256

    /// Capacity in floats.
    public private(set) var capacity: Int
    /// The column buffer, `capacity` floats, 64-byte aligned (it moves when the workspace grows).
    public private(set) var columns: UnsafeMutablePointer<Float>
    /// True when the workspace grows to one slice per thread (`init()`).
    public let followsThreads: Bool
    /// Upper bound on the tile width in output positions; tests set it small to force many tiles.
    public var maxTileColumns: Int = .max
    /// Upper bound on the input channels of a tile; tests set it small to force channel blocks.
    public var maxTileChannels: Int = .max

    /// A workspace of the default size that grows with `Parallel.threads`.
    public convenience init() {
        self.init(floats: ConvWorkspace.defaultBytes / MemoryLayout<Float>.stride, followsThreads: true)
    }

    /// A workspace of exactly `bytes` (rounded down to whole floats), never grown.
    public convenience init(bytes: Int) {
        precondition(bytes >= MemoryLayout<Float>.stride, "ConvWorkspace: \(bytes) bytes")
        self.init(floats: bytes / MemoryLayout<Float>.stride, followsThreads: false)
    }

    private init(floats: Int, followsThreads: Bool) {
        capacity = floats
        columns = ConvWorkspace.allocate(floats)
        self.followsThreads = followsThreads
    }

    private static func allocate(_ floats: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: floats * MemoryLayout<Float>.stride, alignment: 64)
        let p = raw.bindMemory(to: Float.self, capacity: floats)
        p.initialize(repeating: 0, count: floats)
        return p
    }

    deinit { UnsafeMutableRawPointer(columns).deallocate(); weightGradientPartials.free(); packedOperands.free() }

    /// The Winograd convs' buffers (transformed weights, a block's transformed input and output),
    /// allocated at first use and grown to the widest conv: 64·Cout·Cin floats for U plus
    /// 2 × 64·C·T for a block (Winograd.swift).
    lazy var winograd = WinogradBuffers()

    /// The private partial weight gradients of `directWeightGradientByPositions` (the stem's dW:
    /// up to 64 chunks × 64·343 floats, 5.6 MB), kept so that a step allocates nothing.
    var weightGradientPartials = ScratchFloats()

    /// Per worker, beside its column slice, what the direct convs by dsan's packed GEMM keep: the
    /// running sums over channel blocks (forward), dY's tile in panels and the running sums of dW
    /// (weight gradients; the stem at AVX-512: 64 × 764 + 64 × 343 floats, 283 KB per worker), and
    /// W[:, block]ᵀ packed (dX). One conv at a time uses it, like the column slices.
    var packedOperands = ScratchFloats()

    /// Floats in one worker's slice: min(`capacity`, `tileBytes` / 4). The same before and after
    /// the workspace grows (it starts with at least two slices), so the tiling never changes.
    public var sliceFloats: Int { min(capacity, ConvWorkspace.tileBytes / MemoryLayout<Float>.stride) }

    /// How many workers can run tiles at once: min(`Parallel.threads`, whole slices in `capacity`).
    public var slices: Int { max(1, min(Parallel.threads, capacity / sliceFloats)) }

    /// Grows a workspace that follows the threads to one slice per thread (`Parallel.threads`),
    /// then returns `slices`. Call it before a parallel region reads `columns`: growing moves the
    /// buffer (its contents are scratch and not kept).
    public func reserveSlices() -> Int {
        let wanted = Parallel.threads * sliceFloats
        if followsThreads && wanted > capacity {
            UnsafeMutableRawPointer(columns).deallocate()
            columns = ConvWorkspace.allocate(wanted)
            capacity = wanted
        }
        return slices
    }

    /// The tile for `geometry` over `positions` output positions: all input channels and as many
    /// columns as fit in one slice when that leaves at least `minimumTileColumns` columns (or all
    /// of them); otherwise `minimumTileColumns` columns and as many whole input channels as fit,
    /// in blocks of equal size. With `minimumBlocks` > 1 the input channels are cut into at least
    /// that many blocks (as far as there are channels), and the columns widen to fill the slice.
    /// The result depends on the geometry, `positions` and the slice size only.
    public func tile(for geometry: Conv3dGeometry, positions: Int, minimumBlocks: Int = 1) -> (columns: Int, channels: Int) {
        let kv = geometry.kernel.volume, cin = geometry.inChannels
        let budget = sliceFloats
        precondition(budget >= kv, "ConvWorkspace: \(budget) floats per worker cannot hold one column of \(kv) rows")
        var channels = cin, columns: Int
        let wanted = min(positions, ConvWorkspace.minimumTileColumns)
        if cin * kv * wanted <= budget {
            columns = min(positions, budget / (cin * kv))
        } else {
            columns = wanted
            channels = max(1, budget / (kv * columns))
        }
        channels = min(channels, maxTileChannels, (cin + minimumBlocks - 1) / max(1, minimumBlocks))
        let blocks = (cin + channels - 1) / channels
        channels = (cin + blocks - 1) / blocks
        columns = max(1, min(positions, maxTileColumns, budget / (kv * channels)))
        return (columns, channels)
    }
}

/// A 64-byte aligned float buffer that grows on demand and is kept between calls, so that a step
/// allocates nothing (the Winograd buffers, the stem's partial weight gradients). Its owner frees
/// it (`free`) in its deinit.
struct ScratchFloats {
    private(set) var pointer: UnsafeMutablePointer<Float>? = nil
    private(set) var count = 0

    /// At least `n` floats (zeros when newly allocated; the old contents are not kept on growth).
    mutating func reserve(_ n: Int) -> UnsafeMutablePointer<Float> {
        if n > count || pointer == nil {
            free()
            pointer = FloatStorage.allocate(n)
            pointer!.initialize(repeating: 0, count: max(n, 1))
            count = max(n, 1)
        }
        return pointer!
    }

    func free() { if let pointer { FloatStorage.free(pointer) } }
}

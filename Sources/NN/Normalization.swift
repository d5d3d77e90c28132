// Batch normalisation over [N, C, D, H, W], PyTorch's BatchNorm3d, with a seam for synchronised
// (cross-rank) statistics. The elementwise passes (normalize, input gradient) run the
// VectorKernels build for this CPU's vector width; the sums stay in Swift in a fixed order.
import VectorKernels

/// Replaces a buffer of per-channel sums by its element-wise sum over all ranks, in place (an
/// `MPI_Allreduce(MPI_IN_PLACE, …, MPI_DOUBLE, MPI_SUM)` of the whole buffer). Every rank must call
/// it with the same length, also a rank whose local batch is empty (its sums are zero).
public typealias BatchNormAllReduce = (UnsafeMutableBufferPointer<Double>) -> Void

/// `BatchNorm3d(C, eps = 1e-5, momentum = 0.1, affine = true)` as in PyTorch, over `[N, C, D, H, W]`
/// activations; statistics are per channel over N·D·H·W.
///
/// Parameters `weight`, `bias` (`[C]`, initialised 1 and 0) with gradients `dWeight`, `dBias`;
/// buffers `runningMean`, `runningVar` (`[C]`, 0 and 1) and `numBatchesTracked`, named like the
/// `state_dict` entries `running_mean`, `running_var`, `num_batches_tracked`. In training mode the
/// batch statistics normalise and the running buffers move by momentum 0.1 towards the batch mean
/// and the *unbiased* batch variance; in eval mode the running buffers normalise.
///
/// ## The synchronisation seam (SyncBatchNorm)
///
/// Synchronised batch norm is `SyncBatchNorm` (Sources/Training/SyncBatchNorm.swift), which sets
/// `allReduce` on every batch norm of the model to a sum over all ranks; this layer knows no MPI.
///
/// `forward` in training mode is three steps, each public so a caller may also run them itself:
/// 1. `computeLocalStatistics(x)` fills `statistics` = [count, Σ(x − K)_c…, Σ(x − K)²_c…] (1 + 2C
///    doubles) over this rank's samples, K_c being `runningMean[c]` (see below);
/// 2. `allReduce?(statistics)`: the seam; a synchronised layer sums the buffer over ranks;
/// 3. `applyStatistics()` turns the (now global) sums into mean and 1/√(var + eps), updates the
///    running buffers, then `normalize(x, into: y)` writes the output.
///
/// `backward` in training mode is likewise
/// 1. `computeLocalGradientSums(dy, input: x)` fills `gradientSums` = [Σdy_c…, Σdy·(x − mean)_c…]
///    (2C doubles) and ACCUMULATES the *local* dBias += Σdy, dWeight += Σdy·x̂ (parameter gradients
///    stay local: the data-parallel gradient all-reduce sums them with every other gradient);
/// 2. `allReduce?(gradientSums)`: the seam again;
/// 3. `computeInputGradient(dy, input: x, into: dx)` with the global sums and the global count.
///
/// Shifted sums: subtracting K_c = running mean keeps Σ(x − K)² − (Σ(x − K))²/n free of
/// cancellation once the running mean tracks the data, and because the running buffers are
/// identical on every rank (broadcast at start, then updated from the same global statistics) the
/// shifted sums of different ranks still add up. Sums are in Double, per channel in a fixed order,
/// so results do not depend on `Parallel.threads`.
public final class BatchNorm3d {
    public let channels: Int
    public let eps: Double = 1e-5
    public let momentum: Double = 0.1

    /// γ, `[C]`.
    public let weight: Tensor
    /// β, `[C]`.
    public let bias: Tensor
    /// Gradients of γ and β, `[C]`; backward accumulates into them.
    public let dWeight: Tensor
    public let dBias: Tensor
    /// Running statistics, `[C]` (buffers, not parameters: never all-reduced as gradients).
    public let runningMean: Tensor
    public let runningVar: Tensor
    public var numBatchesTracked: Int = 0
    /// Training mode (batch statistics) or eval mode (running statistics).
    public var training = true
    /// Cross-rank sum of `statistics` and `gradientSums`; nil means this rank's batch is the batch.
    public var allReduce: BatchNormAllReduce?

    /// The mean and 1/√(var + eps) used by the last forward, `[C]`; the backward reads them.
    public let mean: Tensor
    public let invStd: Tensor
    /// [count, Σ(x − K)_c for c < C, Σ(x − K)²_c for c < C]: the forward's reducible sums.
    public let statistics: UnsafeMutableBufferPointer<Double>
    /// [Σdy_c for c < C, Σdy·(x − mean)_c for c < C]: the backward's reducible sums.
    public let gradientSums: UnsafeMutableBufferPointer<Double>

    /// K_c used by the last `computeLocalStatistics`.
    private let shift: UnsafeMutableBufferPointer<Float>
    /// Global element count per channel of the last training forward (N·D·H·W over all ranks).
    private var normalizedCount: Double = 0
    /// Whether the last forward used batch statistics.
    private var lastForwardTrained = true

    public init(channels: Int) {
        precondition(channels > 0, "BatchNorm3d: channels must be positive")
        self.channels = channels
        weight = Tensor(shape: [channels], repeating: 1)
        bias = Tensor(zeros: [channels])
        dWeight = Tensor(zeros: [channels])
        dBias = Tensor(zeros: [channels])
        runningMean = Tensor(zeros: [channels])
        runningVar = Tensor(shape: [channels], repeating: 1)
        mean = Tensor(zeros: [channels])
        invStd = Tensor(zeros: [channels])
        statistics = .allocate(capacity: 1 + 2 * channels)
        statistics.initialize(repeating: 0)
        gradientSums = .allocate(capacity: 2 * channels)
        gradientSums.initialize(repeating: 0)
        shift = .allocate(capacity: channels)
        shift.initialize(repeating: 0)
    }

    deinit {
        statistics.deallocate()
        gradientSums.deallocate()
        shift.deallocate()
    }

    // MARK: Forward

    /// y = γ (x − mean) / √(var + eps) + β with batch statistics (training, synchronised through
    /// `allReduce` when set) or running statistics (eval). Shapes: x, y `[N, C, D, H, W]`; `y` may
    /// be `x`, but the backward needs the original x, so in-place use is for inference only.
    public func forward(_ x: Tensor, into y: Tensor) {
        if training {
            computeLocalStatistics(x)
            allReduce?(statistics)
            applyStatistics()
        } else {
            useRunningStatistics()
        }
        normalize(x, into: y)
    }

    /// Step 1 of a training forward: writes this rank's `statistics` for x `[N, C, D, H, W]`
    /// (N may be 0).
    public func computeLocalStatistics(_ x: Tensor) {
        let s = checkedShape(x)
        let spatial = s.spatial, perSample = s.perSample, n = s.n, c = channels
        let xp = x.data, st = statistics.baseAddress!, k = shift.baseAddress!
        for ch in 0..<c { k[ch] = runningMean.data[ch] }
        st[0] = Double(n * spatial)
        Parallel.forEach(c) { channelRange in
            for ch in channelRange {
                var s1: Double = 0, s2: Double = 0
                for sample in 0..<n {
                    let (a, b) = shiftedMoments(xp + sample * perSample + ch * spatial, spatial, k[ch])
                    s1 += a
                    s2 += b
                }
                st[1 + ch] = s1
                st[1 + c + ch] = s2
            }
        }
    }

    /// Step 3 of a training forward: mean and 1/√(var + eps) from `statistics` (global after the
    /// seam), running buffers moved by momentum towards mean and unbiased variance,
    /// `numBatchesTracked` incremented.
    public func applyStatistics() {
        let count = statistics[0]
        precondition(count > 1, "BatchNorm3d: expected more than 1 value per channel when training, got \(count)")
        let c = channels
        for ch in 0..<c {
            let shifted = statistics[1 + ch] / count
            let variance = max(statistics[1 + c + ch] / count - shifted * shifted, 0)  // biased
            let mu = Double(shift[ch]) + shifted
            mean.data[ch] = Float(mu)
            invStd.data[ch] = Float(1 / (variance + eps).squareRoot())
            let unbiased = variance * count / (count - 1)
            runningMean.data[ch] = Float((1 - momentum) * Double(runningMean.data[ch]) + momentum * mu)
            runningVar.data[ch] = Float((1 - momentum) * Double(runningVar.data[ch]) + momentum * unbiased)
        }
        numBatchesTracked += 1
        normalizedCount = count
        lastForwardTrained = true
    }

    /// Eval mode: mean and 1/√(var + eps) from the running buffers.
    public func useRunningStatistics() {
        for ch in 0..<channels {
            mean.data[ch] = runningMean.data[ch]
            invStd.data[ch] = Float(1 / (Double(runningVar.data[ch]) + eps).squareRoot())
        }
        lastForwardTrained = false
    }

    /// y = (x − mean)·invStd·γ + β with the current `mean`, `invStd`. Shapes: x, y `[N, C, D, H, W]`.
    public func normalize(_ x: Tensor, into y: Tensor) {
        let s = checkedShape(x)
        VectorLevel.configure()
        precondition(y.count == x.count, "BatchNorm3d.normalize: \(x) into \(y)")
        let spatial = s.spatial, c = channels
        let xp = x.data, yp = y.data
        let mp = mean.data, ip = invStd.data, wp = weight.data, bp = bias.data
        Parallel.forEach(s.n * c) { planes in
            for plane in planes {
                let ch = plane % c
                let a = ip[ch] * wp[ch]
                let b = bp[ch] - mp[ch] * a
                dsan_vk_affine(xp + plane * spatial, yp + plane * spatial, spatial, a, b)
            }
        }
    }

    // MARK: Backward

    /// Gradient of the last forward. x is that forward's input, dy `[N, C, D, H, W]` the output
    /// gradient. ACCUMULATES into `dWeight`, `dBias` (local contributions); WRITES dx (`dx` may be
    /// `dy`). In training mode the mean and variance are functions of x (through the global batch
    /// when `allReduce` is set); in eval mode they are constants.
    public func backward(_ dy: Tensor, input x: Tensor, into dx: Tensor) {
        computeLocalGradientSums(dy, input: x)
        if lastForwardTrained { allReduce?(gradientSums) }
        computeInputGradient(dy, input: x, into: dx)
    }

    /// Step 1 of a backward: this rank's Σdy and Σdy·(x − mean) per channel into `gradientSums`,
    /// and ACCUMULATES dBias += Σdy, dWeight += invStd·Σdy·(x − mean) from these local sums.
    public func computeLocalGradientSums(_ dy: Tensor, input x: Tensor) {
        let s = checkedShape(x)
        precondition(dy.count == x.count, "BatchNorm3d.backward: dy \(dy) for input \(x)")
        let spatial = s.spatial, perSample = s.perSample, n = s.n, c = channels
        let xp = x.data, gp = dy.data, gs = gradientSums.baseAddress!, mp = mean.data
        Parallel.forEach(c) { channelRange in
            for ch in channelRange {
                var sdy: Double = 0, sdyx: Double = 0
                for sample in 0..<n {
                    let o = sample * perSample + ch * spatial
                    let (a, b) = gradientMoments(gp + o, xp + o, spatial, mp[ch])
                    sdy += a
                    sdyx += b
                }
                gs[ch] = sdy
                gs[c + ch] = sdyx
            }
        }
        dBias.resolveLazyZero()
        dWeight.resolveLazyZero()
        for ch in 0..<c {
            dBias.data[ch] += Float(gs[ch])
            dWeight.data[ch] += Float(gs[c + ch] * Double(invStd.data[ch]))
        }
    }

    /// Step 3 of a backward: WRITES dx from the (global after the seam) `gradientSums`:
    /// training dx = γ·invStd·(dy − Σdy/n − (x − mean)·invStd²·Σdy(x − mean)/n), n the global
    /// count; eval dx = γ·invStd·dy. `dx` may be `dy`.
    public func computeInputGradient(_ dy: Tensor, input x: Tensor, into dx: Tensor) {
        let s = checkedShape(x)
        VectorLevel.configure()
        precondition(dy.count == x.count && dx.count == x.count, "BatchNorm3d.backward: \(dy), \(x), \(dx)")
        let spatial = s.spatial, c = channels
        let xp = x.data, gp = dy.data, dp = dx.data, gs = gradientSums.baseAddress!
        let mp = mean.data, ip = invStd.data, wp = weight.data
        let trained = lastForwardTrained, count = normalizedCount
        Parallel.forEach(s.n * c) { planes in
            for plane in planes {
                let ch = plane % c
                let scale = wp[ch] * ip[ch]
                let xs = xp + plane * spatial, gs0 = gp + plane * spatial, ds = dp + plane * spatial
                if trained {
                    let meanDy = Float(gs[ch] / count)
                    let k = Float(gs[c + ch] / count) * ip[ch] * ip[ch]
                    let mu = mp[ch]
                    dsan_vk_bn_input_gradient(gs0, xs, ds, spatial, meanDy, mu, k, scale)
                } else {
                    dsan_vk_scale(gs0, ds, spatial, scale)
                }
            }
        }
    }

    // MARK: Several batch norms in one round

    /// Training forwards of batch norms whose inputs are ready together (a residual block's second
    /// batch norm and its shortcut's): their `statistics` go through the seam as one buffer, so
    /// the ranks meet once instead of once per layer. Same results as calling `forward` on each
    /// (the hook sums element-wise). Falls back to one `forward` each when they do not all train
    /// with the same kind of hook.
    public static func forward(together layers: [(layer: BatchNorm3d, x: Tensor, y: Tensor)]) {
        guard layers.count > 1, let reduce = layers[0].layer.allReduce,
              layers.allSatisfy({ $0.layer.training && $0.layer.allReduce != nil }) else {
            for l in layers { l.layer.forward(l.x, into: l.y) }
            return
        }
        for l in layers { l.layer.computeLocalStatistics(l.x) }
        sumTogether(layers.map(\.layer.statistics), reduce)
        for l in layers {
            l.layer.applyStatistics()
            l.layer.normalize(l.x, into: l.y)
        }
    }

    /// Backwards of batch norms whose output gradients are ready together, their `gradientSums`
    /// through the seam as one buffer (see `forward(together:)`). Each element is
    /// (layer, dy, its forward's input x, dx), as for `backward`.
    public static func backward(together layers: [(layer: BatchNorm3d, dy: Tensor, x: Tensor, dx: Tensor)]) {
        guard layers.count > 1, let reduce = layers[0].layer.allReduce,
              layers.allSatisfy({ $0.layer.lastForwardTrained && $0.layer.allReduce != nil }) else {
            for l in layers { l.layer.backward(l.dy, input: l.x, into: l.dx) }
            return
        }
        for l in layers { l.layer.computeLocalGradientSums(l.dy, input: l.x) }
        sumTogether(layers.map(\.layer.gradientSums), reduce)
        for l in layers { l.layer.computeInputGradient(l.dy, input: l.x, into: l.dx) }
    }

    /// One call of `reduce` over the concatenation of `buffers`, copied back in place.
    private static func sumTogether(_ buffers: [UnsafeMutableBufferPointer<Double>], _ reduce: BatchNormAllReduce) {
        let total = buffers.reduce(0) { $0 + $1.count }
        let joined = UnsafeMutableBufferPointer<Double>.allocate(capacity: total)
        defer { joined.deallocate() }
        var offset = 0
        for b in buffers {
            (joined.baseAddress! + offset).update(from: b.baseAddress!, count: b.count)
            offset += b.count
        }
        reduce(joined)
        offset = 0
        for b in buffers {
            b.baseAddress!.update(from: joined.baseAddress! + offset, count: b.count)
            offset += b.count
        }
    }

    private func checkedShape(_ x: Tensor) -> Shape5 {
        let s = x.shape5
        precondition(s.c == channels, "BatchNorm3d(\(channels)): input \(s) has \(s.c) channels")
        return s
    }
}

/// (Σ(x − k), Σ(x − k)²) over `n` contiguous floats, in Double, in a fixed order.
@inline(__always)
private func shiftedMoments(_ p: UnsafePointer<Float>, _ n: Int, _ k: Float) -> (Double, Double) {
    var s1 = SIMD4<Double>(), s2 = SIMD4<Double>()
    let kv = SIMD4<Float>(repeating: k)
    let raw = UnsafeRawPointer(p)
    var i = 0
    while i + 4 <= n {
        let v = SIMD4<Double>(raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD4<Float>.self) - kv)
        s1 += v
        s2 += v * v
        i += 4
    }
    var t1 = s1.sum(), t2 = s2.sum()
    while i < n {
        let v = Double(p[i] - k)
        t1 += v
        t2 += v * v
        i += 1
    }
    return (t1, t2)
}

/// (Σdy, Σdy·(x − μ)) over `n` contiguous floats, in Double, in a fixed order.
@inline(__always)
private func gradientMoments(_ g: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int,
                             _ mu: Float) -> (Double, Double) {
    var s1 = SIMD4<Double>(), s2 = SIMD4<Double>()
    let mv = SIMD4<Float>(repeating: mu)
    let gr = UnsafeRawPointer(g), xr = UnsafeRawPointer(x)
    var i = 0
    while i + 4 <= n {
        let gv = gr.loadUnaligned(fromByteOffset: i * 4, as: SIMD4<Float>.self)
        let xv = xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD4<Float>.self) - mv
        let gd = SIMD4<Double>(gv)
        s1 += gd
        s2 += gd * SIMD4<Double>(xv)
        i += 4
    }
    var t1 = s1.sum(), t2 = s2.sum()
    while i < n {
        let gd = Double(g[i])
        t1 += gd
        t2 += gd * Double(x[i] - mu)
        i += 1
    }
    return (t1, t2)
}

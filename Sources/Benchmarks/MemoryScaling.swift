import Foundation
import Tensor
import VectorKernels

/// The two memory figures that bound what a training step can gain from more threads, measured
/// with dsan's own pool (`dsan bench threads` runs them in every round):
///
/// - the stream rate of `y = a + b` over arrays far larger than any cache, at 1 thread and at N:
///   a memory-bound pass (Adam, zeroing the gradients, a batch norm over a large activation)
///   gains at most this much;
/// - the rate at which a worker reads a 4 MiB block the *next* worker has just written, against
///   the rate at which it reads one it has just written itself: what a parallel phase pays when
///   its split of the data differs from the previous phase's (the Winograd transforms split
///   channels, their GEMMs split ξ). On a machine whose cores share a last-level cache the two
///   are close; on a virtual machine whose vCPUs do not, the first runs at memory speed.
public struct MemoryScaling {
    /// Floats per streamed array (three arrays).
    public var streamFloats: Int
    /// Floats per worker's block in the handoff probe.
    public var blockFloats: Int

    public init(streamFloats: Int = 32 << 20, blockFloats: Int = 1 << 20) {
        precondition(streamFloats >= 1 && blockFloats >= 64, "MemoryScaling: invalid sizes")
        self.streamFloats = streamFloats
        self.blockFloats = blockFloats
    }

    /// GB/s of `y = a + b` (12 bytes per element) on `threads` of dsan's workers, the median of 3.
    public func streamRate(threads: Int) -> Double {
        let n = streamFloats
        // FloatStorage, as the step's tensors: the same pages (huge ones where the system gives them).
        let a = FloatStorage.allocate(n), b = FloatStorage.allocate(n), y = FloatStorage.allocate(n)
        defer { FloatStorage.free(a); FloatStorage.free(b); FloatStorage.free(y) }
        return Parallel.withThreads(threads) {
            // First touch by the same split as the timed passes (pages land where they are used).
            Parallel.forEach(n, grain: 1 << 16) { r in
                (a + r.lowerBound).update(repeating: 1, count: r.count)
                (b + r.lowerBound).update(repeating: 2, count: r.count)
                (y + r.lowerBound).update(repeating: 0, count: r.count)
            }
            var rates: [Double] = []
            for _ in 0..<3 {
                let start = DispatchTime.now().uptimeNanoseconds
                Parallel.forEach(n, grain: 1 << 16) { r in
                    dsan_vk_add(a + r.lowerBound, b + r.lowerBound, y + r.lowerBound, r.count)
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                rates.append(Double(12 * n) / seconds / 1e9)
            }
            return ContentionProbe.median(rates)
        }
    }

    /// Read rates (GB/s per worker, medians of 5) on `threads` workers of a block each has just
    /// written itself (`own`) and of one the next worker has just written (`neighbour's`).
    public func handoff(threads: Int) -> (own: Double, neighbours: Double) {
        precondition(threads >= 2, "MemoryScaling.handoff: needs at least 2 workers")
        let n = blockFloats
        let blocks = FloatStorage.allocate(threads * n)
        defer { FloatStorage.free(blocks) }
        blocks.initialize(repeating: 0, count: threads * n)
        let seconds = UnsafeMutableBufferPointer<Double>.allocate(capacity: threads)
        defer { seconds.deallocate() }
        let sink = UnsafeMutableBufferPointer<Float>.allocate(capacity: threads)
        defer { sink.deallocate() }
        func round(shift: Int, value: Float) -> Double {
            Parallel.forEachWorker(threads) { w, _ in MemoryScaling.fill(blocks + w * n, n, value) }
            Parallel.forEachWorker(threads) { w, _ in
                let block = blocks + ((w + shift) % threads) * n
                let start = DispatchTime.now().uptimeNanoseconds
                sink[w] = MemoryScaling.sum(block, n)
                seconds[w] = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
            return ContentionProbe.median((0..<threads).map { Double(4 * n) / seconds[$0] / 1e9 })
        }
        var own: [Double] = [], neighbours: [Double] = []
        Parallel.withThreads(threads) {
            for i in 0..<5 {
                own.append(round(shift: 0, value: Float(i)))
                neighbours.append(round(shift: 1, value: Float(i) + 0.5))
            }
        }
        return (ContentionProbe.median(own), ContentionProbe.median(neighbours))
    }

    /// p[i] = value + (i mod 8), with ordinary vector stores: a memset of megabytes may stream
    /// past the caches (glibc's non-temporal threshold), which would leave nothing to hand over.
    @inline(never)
    static func fill(_ p: UnsafeMutablePointer<Float>, _ n: Int, _ value: Float) {
        let lanes = SIMD8<Float>(0, 1, 2, 3, 4, 5, 6, 7) + value
        let raw = UnsafeMutableRawPointer(p)
        var i = 0
        while i + 8 <= n { raw.storeBytes(of: lanes, toByteOffset: 4 * i, as: SIMD8<Float>.self); i += 8 }
        while i < n { p[i] = value + Float(i % 8); i += 1 }
    }

    /// Σ p[0..<n] with four independent vector sums, so that the loop is bound by the loads.
    @inline(never)
    static func sum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        let raw = UnsafeRawPointer(p)
        var i = 0
        while i + 32 <= n {
            s0 += raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            s1 += raw.loadUnaligned(fromByteOffset: 4 * (i + 8), as: SIMD8<Float>.self)
            s2 += raw.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD8<Float>.self)
            s3 += raw.loadUnaligned(fromByteOffset: 4 * (i + 24), as: SIMD8<Float>.self)
            i += 32
        }
        var total = ((s0 + s1) + (s2 + s3)).sum()
        while i < n { total += p[i]; i += 1 }
        return total
    }
}

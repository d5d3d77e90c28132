import MPI
import Tensor

/// Gradients grouped into buckets of about `bucketBytes` in the order backward produces them
/// (last layer first), each summed across ranks by the ring all-reduce (DESIGN.md §4).
///
/// A bucket is packed into one contiguous buffer, reduced, and unpacked. Every rank builds the
/// same buckets from the same model, and the ring checks the lengths once per bucket layout.
/// Batch-norm running statistics are buffers, never gradients, and are not in here.
public final class GradientBuckets {
    public let gradients: [Tensor]
    /// Indices into `gradients` per bucket.
    public let buckets: [[Int]]
    private var buffers: [[Float]]
    private var verified = false

    /// `gradients` in the order backward completes them.
    public init(gradients: [Tensor], bucketBytes: Int = 25 << 20) {
        precondition(bucketBytes > 0, "GradientBuckets: bucketBytes \(bucketBytes)")
        self.gradients = gradients
        var buckets: [[Int]] = [], current: [Int] = [], bytes = 0
        for (i, g) in gradients.enumerated() {
            current.append(i)
            bytes += g.count * 4
            if bytes >= bucketBytes { buckets.append(current); current = []; bytes = 0 }
        }
        if !current.isEmpty { buckets.append(current) }
        self.buckets = buckets
        buffers = buckets.map { b in [Float](repeating: 0, count: b.reduce(0) { $0 + gradients[$1].count }) }
    }

    /// Sums every gradient over all ranks, in place.
    public func allReduce(_ ring: RingAllreduce) throws {
        if ring.comm.size == 1 { return }
        for (k, bucket) in buckets.enumerated() {
            try reduce(bucket: k, bucket, ring)
        }
        verified = true
    }

    private func reduce(bucket k: Int, _ members: [Int], _ ring: RingAllreduce) throws {
        try buffers[k].withUnsafeMutableBufferPointer { buffer in
            var offset = 0
            for i in members {
                let g = gradients[i]
                (buffer.baseAddress! + offset).update(from: g.data, count: g.count)
                offset += g.count
            }
            try ring.allreduce(buffer, verifyLength: !verified)
            offset = 0
            for i in members {
                let g = gradients[i]
                g.data.update(from: buffer.baseAddress! + offset, count: g.count)
                offset += g.count
            }
        }
    }
}

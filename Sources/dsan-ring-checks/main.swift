// The rank-side half of Tests/DistributedTests/RingTests.swift, which launches this under
// `mpirun -np R` (and once alone) and makes the assertions. Every rank runs every check in the
// same order (they are collective) and prints one line per check:
//   "rank r of R: pass NAME"   or   "rank r of R: FAIL NAME: what differed"
// The test requires a `pass` line from every rank for every check it knows. Exit status is
// non-zero when a check failed on this rank.
import Distributed
import Foundation
import MPI
import Tensor

struct Mismatch: Error, CustomStringConvertible {
    var description: String
}

/// A value that depends on rank and index, exactly representable so that sums are exact.
func value(rank: Int, index: Int) -> Float { Float((rank + 1) * 1000 + index % 997) }

/// Fills `count` floats from a per-rank seeded generator, in [-1.0001, 1.0001].
func randomFloats(rank: Int, count: Int) -> [Float] {
    var g = UInt64(rank + 1) &* 0x9E37_79B9_7F4A_7C15
    return (0..<count).map { _ -> Float in
        g = g &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: g >> 11) % 2_000_001 - 1_000_000) / 999_983
    }
}

/// Runs the checks and prints their lines; returns whether all passed.
func runChecks(comm: Communicator) -> Bool {
    let rank = comm.rank, size = comm.size
    var allPassed = true
    func check(_ name: String, _ body: () throws -> Void) {
        do {
            try body()
            print("rank \(rank) of \(size): pass \(name)")
        } catch {
            allPassed = false
            print("rank \(rank) of \(size): FAIL \(name): \(error)")
        }
    }

    let ring = RingAllreduce(comm: comm, timeout: 60)

    // Against MPI_Allreduce: exact on integer-valued floats, at lengths around R and across
    // several messages (3M floats is 12 chunks).
    for n in Array(Set([0, 1, max(0, size - 1), size + 1, 1001, 3_000_001])).sorted() {
        check("ring equals MPI_Allreduce, length \(n)") {
            let x = (0..<n).map { value(rank: rank, index: $0) }
            var viaRing = x, viaMPI = x
            try ring.allreduce(&viaRing)
            try comm.allreduce(&viaMPI)
            if let i = (0..<n).first(where: { viaRing[$0] != viaMPI[$0] }) {
                throw Mismatch(description: "element \(i): ring \(viaRing[i]), MPI_Allreduce \(viaMPI[i])")
            }
        }
    }

    check("ring of random floats within rounding of MPI_Allreduce") {
        let x = randomFloats(rank: rank, count: 100_003)
        var viaRing = x, viaMPI = x
        try ring.allreduce(&viaRing)
        try comm.allreduce(&viaMPI)
        let worst = zip(viaRing, viaMPI).map { abs($0 - $1) }.max() ?? 0
        // R terms of magnitude ≤ 1: rounding differences ≤ R · 2^-23 per element.
        if worst > Float(size) * 1.2e-7 { throw Mismatch(description: "largest difference \(worst)") }
    }

    // The send window changes when messages go out, never what is added in which order: the
    // same bits at every window, over a length of 12 messages per segment and a ragged end.
    check("ring gives the same bits at send windows 1, 2, 3 and 64") {
        let x = randomFloats(rank: rank, count: 3_000_003)
        let saved = RingAllreduce.sendWindow
        defer { RingAllreduce.sendWindow = saved }
        var results: [[Float]] = []
        for window in [1, 2, 3, 64] {
            RingAllreduce.sendWindow = window
            var y = x
            try ring.allreduce(&y)
            results.append(y)
        }
        for (k, y) in results.enumerated().dropFirst() {
            if let i = (0..<y.count).first(where: { y[$0].bitPattern != results[0][$0].bitPattern }) {
                throw Mismatch(description: "window case \(k), element \(i): \(y[i]) against \(results[0][i]) at window 1")
            }
        }
    }

    // Pieces reduced in place as one buffer: empty pieces, pieces longer than a message, and
    // segment boundaries falling inside pieces, against MPI_Allreduce of the concatenation.
    check("ring of pieces equals MPI_Allreduce of their concatenation") {
        let lengths = [0, 5, 300_007, 0, 1, RingAllreduce.chunk, 17, size + 1, 0]
        let x = (0..<lengths.reduce(0, +)).map { value(rank: rank, index: $0) }
        var viaMPI = x
        try comm.allreduce(&viaMPI)
        var pieces: [Tensor] = [], offset = 0
        for n in lengths {
            pieces.append(Tensor(shape: [n], values: Array(x[offset..<(offset + n)])))
            offset += n
        }
        try ring.allreduce(pieces: pieces.map(\.buffer))
        offset = 0
        for (k, p) in pieces.enumerated() {
            if let i = (0..<p.count).first(where: { p.data[$0] != viaMPI[offset + $0] }) {
                throw Mismatch(description: "piece \(k) element \(i): ring \(p.data[i]), MPI_Allreduce \(viaMPI[offset + i])")
            }
            offset += p.count
        }
    }

    // Gradient buckets (several tensors per bucket, buckets smaller than a tensor) sum like
    // MPI_Allreduce of each tensor.
    check("gradient buckets equal MPI_Allreduce of every tensor") {
        let shapes = [[3, 5], [1000], [7, 7, 3], [1], [40_000], [2, 9]]
        var offset = 0
        let tensors = shapes.map { shape -> Tensor in
            let n = shape.reduce(1, *)
            defer { offset += n }
            return Tensor(shape: shape, values: (0..<n).map { value(rank: rank, index: offset + $0) })
        }
        var expected = tensors.map(\.array)
        for i in expected.indices { try comm.allreduce(&expected[i]) }
        let buckets = GradientBuckets(gradients: tensors, bucketBytes: 4_096)
        try buckets.allReduce(ring)
        for (k, t) in tensors.enumerated() where t.array != expected[k] {
            throw Mismatch(description: "tensor \(k) \(t.shape) differs from MPI_Allreduce")
        }
    }

    if size > 1 {
        check("ring refuses the same length in different pieces") {
            let cut = rank == 0 ? 4 : 6
            let a = Tensor(shape: [cut], values: [Float](repeating: 1, count: cut))
            let b = Tensor(shape: [10 - cut], values: [Float](repeating: 1, count: 10 - cut))
            do {
                try ring.allreduce(pieces: [a.buffer, b.buffer])
                throw Mismatch(description: "no error for mismatched pieces")
            } catch let error as RingError {
                guard case .differentPieces(rank, 10, 2) = error else {
                    throw Mismatch(description: "expected differentPieces(rank: \(rank), length: 10, pieces: 2), got \(error)")
                }
            }
        }
        check("ring refuses different lengths") {
            var x = [Float](repeating: 1, count: 10 + (rank == 0 ? 1 : 0))
            do {
                try ring.allreduce(&x)
                throw Mismatch(description: "no error for mismatched lengths")
            } catch let error as RingError {
                guard case .differentLengths(rank, x.count, 10...11) = error else {
                    throw Mismatch(description: "expected differentLengths(rank: \(rank), length: \(x.count), others: 10...11), got \(error)")
                }
            }
        }
    }

    check("final barrier") { try comm.barrier() }
    return allPassed
}

do {
    _ = try MPI.initialize(required: .multiple, minimum: .funneled)
    let passed = runChecks(comm: try Communicator.world)
    fflush(stdout)
    try MPI.finalize()
    exit(passed ? 0 : 1)
} catch {
    fputs("dsan-ring-checks: \(error)\n", stderr)
    exit(2)
}

import MPI
import Tensor
import Testing
@testable import Distributed

/// One rank's share of the ring's work without MPI: how a logical buffer maps onto pieces, the
/// layout signature the ranks compare, the gradient buckets, and the errors a user reads.
@Suite struct PieceLayoutTests {
    /// Pieces of the given lengths, element k of the logical buffer holding k.
    func pieces(_ lengths: [Int]) -> [Tensor] {
        var offset = 0
        return lengths.map { n in
            defer { offset += n }
            return Tensor(shape: [n], values: (0..<n).map { Float(offset + $0) })
        }
    }

    @Test(arguments: [[5, 0, 3, 12], [0, 0, 7], [1], [4, 4, 4, 4], [0, 1, 0, 1, 0]])
    func messagesCoverARangeInOrderWithoutCrossingPieces(lengths: [Int]) {
        let tensors = pieces(lengths)
        let layout = PieceLayout(tensors.map(\.buffer))
        let n = lengths.reduce(0, +)
        #expect(layout.count == n)
        for chunk in [1, 3, 100] {
            for lo in 0...n {
                for hi in lo...n {
                    let messages = layout.messages(lo..<hi, chunk: chunk)
                    // The naive reading: element k of the logical buffer is the value k.
                    let read = messages.flatMap { m in (0..<m.count).map { m.pointer[$0] } }
                    #expect(read == (lo..<hi).map(Float.init), "range \(lo)..<\(hi), chunk \(chunk)")
                    #expect(messages.allSatisfy { $0.count >= 1 && $0.count <= chunk })
                    #expect(messages.map(\.offset) == messages.indices.map { k in lo + messages[..<k].map(\.count).reduce(0, +) })
                    // No message crosses a piece boundary: its last element is in the piece of its first.
                    for m in messages {
                        let piece = tensors.firstIndex { $0.count > 0 && m.pointer >= $0.data && m.pointer < $0.data + $0.count }
                        #expect(piece != nil && m.pointer + m.count <= tensors[piece!].data + tensors[piece!].count)
                    }
                }
            }
        }
    }

    @Test func signatureTellsPieceLengthsApart() {
        let a = pieces([4, 6]), b = pieces([6, 4]), c = pieces([4, 6]), d = pieces([10])
        let sa = PieceLayout(a.map(\.buffer)).signature
        #expect(sa == PieceLayout(c.map(\.buffer)).signature)
        #expect(sa != PieceLayout(b.map(\.buffer)).signature)
        #expect(sa != PieceLayout(d.map(\.buffer)).signature)
        #expect(sa >= 0, "63 bits, so that −signature is representable for the max-reduction")
    }
}

@Suite struct GradientBucketsTests {
    @Test func bucketsCloseOnceTheyReachTheirSizeInOrder() {
        // Bytes: 400, 40, 800, 4, 4, 400 with 440-byte buckets.
        let g = [[100], [10], [200], [1], [1], [100]].map { Tensor(zeros: $0) }
        let b = GradientBuckets(gradients: g, bucketBytes: 440)
        #expect(b.buckets == [[0, 1], [2], [3, 4, 5]])
        #expect(b.buckets.flatMap { $0 } == Array(g.indices), "every gradient once, in backward order")
        #expect((0..<3).map { b.end(of: $0) } == [2, 3, 6])
    }

    @Test func oneBucketWhenTheyAllFit() {
        let b = GradientBuckets(gradients: [[3], [5]].map { Tensor(zeros: $0) })
        #expect(b.buckets == [[0, 1]])
    }
}

@Suite struct RingErrorTests {
    @Test func descriptionsNameTheRankAndWhatToDo() {
        #expect("\(RingError.differentLengths(rank: 1, length: 11, othersBetween: 10...11))"
                == "ring all-reduce on rank 1: ranks pass different lengths (this rank 11, others between 10 and 11); every rank must reduce the same buffer layout")
        #expect("\(RingError.differentPieces(rank: 0, length: 10, pieces: 2))"
                == "ring all-reduce on rank 0: ranks pass the same length 10 in different pieces (this rank 2 pieces); every rank must reduce the same buffer layout")
        let timeout = MPIError(operation: "MPI_Irecv from rank 2", code: -1, message: "timed out after 4.0 s")
        let e = RingError.noProgress(phase: .allGather, rank: 0, neighbour: 2, error: timeout)
        #expect("\(e)" == "ring all-reduce (all-gather) on rank 0: no progress with rank 2: timed out after 4.0 s")
        #expect(e.neighbour == 2)
        #expect(RingError.differentPieces(rank: 0, length: 1, pieces: 1).neighbour == nil)
    }
}

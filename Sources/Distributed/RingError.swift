import MPI

/// Why a ring all-reduce (`RingAllreduce`) failed on this rank. The descriptions are sentences a
/// user can act on; `noProgress` names the neighbour that did not answer.
public enum RingError: Error, CustomStringConvertible, Sendable {
    /// The two halves of the ring algorithm.
    public enum Phase: String, Sendable {
        case reduceScatter = "reduce-scatter"
        case allGather = "all-gather"
    }

    /// The ranks passed buffers of different total lengths: this rank `length`, the others'
    /// lengths lie in `othersBetween`.
    case differentLengths(rank: Int, length: Int, othersBetween: ClosedRange<Int>)
    /// The ranks passed the same total `length` cut into different pieces (this rank `pieces`).
    case differentPieces(rank: Int, length: Int, pieces: Int)
    /// A message to or from `neighbour` failed or timed out in `phase`: that rank has died, hung,
    /// or is too slow for the timeout. `error` is MPI's (or the timeout's) own error.
    case noProgress(phase: Phase, rank: Int, neighbour: Int, error: MPIError)

    /// The rank that did not answer, for `noProgress`.
    public var neighbour: Int? {
        if case .noProgress(_, _, let neighbour, _) = self { return neighbour }
        return nil
    }

    public var description: String {
        switch self {
        case let .differentLengths(rank, length, others):
            "ring all-reduce on rank \(rank): ranks pass different lengths (this rank \(length), others between \(others.lowerBound) and \(others.upperBound)); every rank must reduce the same buffer layout"
        case let .differentPieces(rank, length, pieces):
            "ring all-reduce on rank \(rank): ranks pass the same length \(length) in different pieces (this rank \(pieces) pieces); every rank must reduce the same buffer layout"
        case let .noProgress(phase, rank, neighbour, error):
            "ring all-reduce (\(phase.rawValue)) on rank \(rank): no progress with rank \(neighbour): \(error.message)"
        }
    }
}

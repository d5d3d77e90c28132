import CMPI

/// The MPI thread support levels of `MPI_Init_thread`, weakest first.
public enum ThreadLevel: Int, Comparable, Sendable, CustomStringConvertible {
    /// Only one thread exists.
    case single
    /// Only the main thread makes MPI calls.
    case funneled
    /// Any thread may call MPI, one at a time.
    case serialized
    /// Any thread may call MPI at any time.
    case multiple

    var raw: Int32 {
        switch self {
        case .single: return dsan_mpi_thread_single()
        case .funneled: return dsan_mpi_thread_funneled()
        case .serialized: return dsan_mpi_thread_serialized()
        case .multiple: return dsan_mpi_thread_multiple()
        }
    }

    init(raw: Int32) {
        switch raw {
        case dsan_mpi_thread_multiple(): self = .multiple
        case dsan_mpi_thread_serialized(): self = .serialized
        case dsan_mpi_thread_funneled(): self = .funneled
        default: self = .single
        }
    }

    public static func < (a: ThreadLevel, b: ThreadLevel) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        ["MPI_THREAD_SINGLE", "MPI_THREAD_FUNNELED", "MPI_THREAD_SERIALIZED", "MPI_THREAD_MULTIPLE"][rawValue]
    }
}

/// Process-wide MPI state: initialisation, finalisation, abort.
///
/// A program started without `mpirun` initialises as a singleton: one rank in `COMM_WORLD`.
public enum MPI {
    /// Initialises MPI (`MPI_Init_thread`) asking for `required` thread support, sets
    /// `MPI_ERRORS_RETURN` on `COMM_WORLD` so that failures come back as `MPIError`s, and returns
    /// the level MPI provides. Throws if MPI provides less than `minimum`.
    @discardableResult
    public static func initialize(required: ThreadLevel = .funneled,
                                  minimum: ThreadLevel = .funneled) throws -> ThreadLevel {
        var provided: Int32 = 0
        try check(MPI_Init_thread(nil, nil, required.raw, &provided), "MPI_Init_thread")
        try check(MPI_Comm_set_errhandler(dsan_mpi_comm_world(), dsan_mpi_errors_return()),
                  "MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN)")
        let level = ThreadLevel(raw: provided)
        if level < minimum {
            throw MPIError(operation: "MPI_Init_thread", code: -1,
                           message: "this MPI provides \(level), dsan needs at least \(minimum)")
        }
        return level
    }

    /// Whether `MPI_Init_thread` has run (`MPI_Initialized`).
    public static var isInitialized: Bool {
        var flag: Int32 = 0
        _ = MPI_Initialized(&flag)
        return flag != 0
    }

    /// Whether `MPI_Finalize` has run (`MPI_Finalized`).
    public static var isFinalized: Bool {
        var flag: Int32 = 0
        _ = MPI_Finalized(&flag)
        return flag != 0
    }

    /// Shuts MPI down (`MPI_Finalize`). Every rank must call it before exiting normally.
    public static func finalize() throws {
        try check(MPI_Finalize(), "MPI_Finalize")
    }

    /// Brings the whole job down (`MPI_Abort` on `COMM_WORLD`) with `code` as its exit status.
    /// Used when a rank fails, so that the others do not hang in a collective.
    public static func abort(code: Int32 = 1) -> Never {
        _ = MPI_Abort(dsan_mpi_comm_world(), code)
        // MPI_Abort does not return on a working MPI; make sure of it.
        fatalError("MPI_Abort returned")
    }

    /// Wall-clock seconds (`MPI_Wtime`).
    public static var wallTime: Double { MPI_Wtime() }
}

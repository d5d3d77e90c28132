import BLAS
import Distributed
import MPI
import Tensor

/// One rank of an MPI job (or a process alone, as a singleton), as `dsan train` and `dsan cv`
/// run: MPI initialised asking for MPI_THREAD_MULTIPLE (the all-reduce thread needs it), dsan's
/// and OpenBLAS's threads set to the cores this rank may use (mpirun binds a rank to its cores),
/// and MPI finalised at the end.
public enum MPIJob {
    /// Runs `body` with the job's `Collectives` (waits bounded by `timeout` seconds). When `body`
    /// or MPI fails, `report` receives one line naming the rank ("rank 0 of 2: …") and, with several
    /// ranks, the whole job is brought down (MPI_Abort) so that the others never hang; alone, MPI
    /// is finalised and `MPIJobFailed` (already reported) is thrown.
    public static func run(timeout: Double, report: (String) -> Void, _ body: (Collectives) throws -> Void) throws {
        let level = try MPI.initialize(required: .multiple, minimum: .funneled)
        let world = try Communicator.world
        let cores = ProcessInfoCores.available
        Parallel.threads = cores
        BLAS.threads = cores
        do {
            try body(Collectives(comm: world, timeout: timeout, threadLevel: level))
            try MPI.finalize()
        } catch {
            report("rank \(world.rank) of \(world.size): \(error)")
            if world.size > 1 { MPI.abort(code: 1) }
            try? MPI.finalize()
            throw MPIJobFailed(underlying: error)
        }
    }
}

/// A rank of an `MPIJob` failed; `MPIJob.run` has already reported it.
public struct MPIJobFailed: Error, CustomStringConvertible {
    public var underlying: Error
    public var description: String { "\(underlying)" }
}

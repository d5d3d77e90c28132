import ArgumentParser
import BLAS
import Distributed
import MPI
import Tensor

/// Runs `body` as one rank of an MPI job (or alone, as a singleton): initialises MPI asking for
/// MPI_THREAD_MULTIPLE (the all-reduce thread needs it), sets dsan's and OpenBLAS's threads to
/// the cores this rank may use (mpirun binds a rank to its cores), and finalises. An error
/// prints one line naming the rank and, with several ranks, brings the whole job down
/// (MPI_Abort) so the others never hang.
func runMPIJob(timeout: Double, _ body: (Collectives) throws -> Void) throws {
    let level = try MPI.initialize(required: .multiple, minimum: .funneled)
    let world = try Communicator.world
    let cores = ProcessInfoCores.available
    Parallel.threads = cores
    BLAS.threads = cores
    do {
        try body(Collectives(comm: world, timeout: timeout, threadLevel: level))
        try MPI.finalize()
    } catch {
        printError("dsan: rank \(world.rank) of \(world.size): \(error)")
        if world.size > 1 { MPI.abort(code: 1) }
        try? MPI.finalize()
        throw ExitCode.failure
    }
}

// The rank-side half of the MPI wrapper's multi-rank tests (the ring all-reduce has its own,
// dsan-ring-checks, for Tests/DistributedTests). Tests/MPITests launches this under
// `mpirun -np R` (and once alone, as a singleton); every rank runs every check and prints one
// line "rank r of R: N checks passed" or "rank r of R: FAILED …", so the test can prove that
// every rank ran. Exit status is non-zero if any check failed on this rank.
import MPI

#if canImport(Glibc)
import Glibc
#endif

struct CheckFailure: Error, CustomStringConvertible {
    var description: String
}

final class Checks {
    let comm: Communicator
    var passed = 0
    var failures: [String] = []

    init(comm: Communicator) { self.comm = comm }

    func run(_ name: String, _ body: () throws -> Void) {
        do {
            try body()
            passed += 1
        } catch {
            failures.append("\(name): \(error)")
        }
    }

    func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw CheckFailure(description: message()) }
    }
}

/// A value that depends on rank and index, exactly representable so that sums are exact.
func value(rank: Int, index: Int) -> Float { Float((rank + 1) * 1000 + index % 997) }

/// Lengths that do not divide by typical rank counts, and zero.
let lengths = [0, 1, 7, 1001, 65_537]

func runChecks(_ c: Checks) {
    let comm = c.comm
    let rank = comm.rank, size = comm.size

    c.run("barrier") { try comm.barrier() }

    c.run("allreduce(ones) == size") {
        var ones = [Float](repeating: 1, count: 13)
        try comm.allreduce(&ones)
        try c.expect(ones.allSatisfy { $0 == Float(size) }, "got \(ones.prefix(3)), expected \(size)")
    }

    for n in lengths {
        c.run("allreduce sum, length \(n)") {
            var x = (0..<n).map { value(rank: rank, index: $0) }
            try comm.allreduce(&x)
            for i in 0..<n {
                let expected = (0..<size).reduce(Float(0)) { $0 + value(rank: $1, index: i) }
                try c.expect(x[i] == expected, "x[\(i)] = \(x[i]), expected \(expected)")
            }
        }
    }

    c.run("allreduce max/min (Int64, Double)") {
        var m: [Int64] = [Int64(rank), -Int64(rank)]
        try comm.allreduce(&m, .max)
        try c.expect(m == [Int64(size - 1), 0], "max gave \(m)")
        var d: [Double] = [Double(rank) + 0.5]
        try comm.allreduce(&d, .min)
        try c.expect(d == [0.5], "min gave \(d)")
    }

    // Roots in one fixed order on every rank (a Set's order differs between processes).
    for root in size > 1 ? [0, size - 1] : [0] {
        for n in [1, 1001] {
            c.run("broadcast from root \(root), length \(n)") {
                var x = (0..<n).map { rank == root ? value(rank: root, index: $0) : -1 }
                try comm.broadcast(&x, root: root)
                for i in 0..<n where x[i] != value(rank: root, index: i) {
                    throw CheckFailure(description: "x[\(i)] = \(x[i]), expected \(value(rank: root, index: i))")
                }
            }
        }
    }

    for n in [0, 1, 7, 1001] {
        c.run("allgather, \(n) per rank") {
            let mine = (0..<n).map { Int32(rank * 100_000 + $0) }
            let all = try comm.allgather(mine)
            try c.expect(all.count == n * size, "got \(all.count) elements")
            for r in 0..<size {
                for i in 0..<n where all[r * n + i] != Int32(r * 100_000 + i) {
                    throw CheckFailure(description: "block \(r)[\(i)] = \(all[r * n + i])")
                }
            }
        }
    }

    // Ring shift: send to the right neighbour, receive from the left.
    let right = (rank + 1) % size, left = (rank + size - 1) % size
    for n in [1, 1001] {
        c.run("sendrecv ring shift, length \(n)") {
            let out = (0..<n).map { value(rank: rank, index: $0) }
            var got = [Float](repeating: -1, count: n)
            try out.withUnsafeBufferPointer { s in
                try got.withUnsafeMutableBufferPointer { r in
                    try comm.sendReceive(s, to: right, sendTag: 7, into: r, from: left, receiveTag: 7)
                }
            }
            for i in 0..<n where got[i] != value(rank: left, index: i) {
                throw CheckFailure(description: "got[\(i)] = \(got[i]) from rank \(left)")
            }
        }

        c.run("isend/irecv ring shift with wait and test, length \(n)") {
            let out = (0..<n).map { value(rank: rank, index: $0) + 0.5 }
            var got = [Float](repeating: -1, count: n)
            try out.withUnsafeBufferPointer { s in
                try got.withUnsafeMutableBufferPointer { r in
                    let receive = try comm.ireceive(into: r, from: left, tag: 9)
                    let send = try comm.isend(s, to: right, tag: 9)
                    var polls = 0
                    while try !receive.test() { polls += 1 }
                    try send.wait()
                    try c.expect(receive.isComplete && send.isComplete, "requests not complete")
                }
            }
            for i in 0..<n where got[i] != value(rank: left, index: i) + 0.5 {
                throw CheckFailure(description: "got[\(i)] = \(got[i]) from rank \(left)")
            }
        }
    }

    if size > 1 {
        c.run("blocking send/recv between rank 0 and rank 1") {
            if rank == 0 {
                let msg: [Int64] = [42, -7, Int64.max]
                try msg.withUnsafeBufferPointer { try comm.send($0, to: 1, tag: 3) }
            } else if rank == 1 {
                var msg = [Int64](repeating: 0, count: 3)
                try msg.withUnsafeMutableBufferPointer { try comm.receive(into: $0, from: 0, tag: 3) }
                try c.expect(msg == [42, -7, Int64.max], "received \(msg)")
            }
        }
    }

    c.run("send to an invalid rank throws MPIError with MPI's message") {
        let one: [Float] = [1]
        do {
            try one.withUnsafeBufferPointer { try comm.send($0, to: size + 3, tag: 0) }
            throw CheckFailure(description: "no error for rank \(size + 3)")
        } catch let error as MPIError {
            let text = error.description
            try c.expect(text.contains("MPI_Send to rank \(size + 3)"), "message lacks the operation: \(text)")
            try c.expect(text.lowercased().contains("rank"), "message lacks MPI's text: \(text)")
        }
    }

    c.run("final barrier") { try comm.barrier() }
}

do {
    let level = try MPI.initialize(required: .multiple, minimum: .funneled)
    let comm = try Communicator.world
    let checks = Checks(comm: comm)
    runChecks(checks)
    let prefix = "rank \(comm.rank) of \(comm.size)"
    if checks.failures.isEmpty {
        print("\(prefix): \(checks.passed) checks passed (\(level))")
    } else {
        for f in checks.failures { print("\(prefix): FAILED \(f)") }
    }
    fflush(stdout)
    try MPI.finalize()
    exit(checks.failures.isEmpty ? 0 : 1)
} catch {
    fputs("dsan-mpi-checks: \(error)\n", stderr)
    exit(2)
}

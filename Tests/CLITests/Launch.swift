import BLAS
import Foundation
import NumericalTesting

/// `dsan` chooses its OpenBLAS core at start-up (Docs/performance.md, "CPU and BLAS kernels");
/// this test process keeps the one OpenBLAS picked. A test that compares `dsan`'s numbers with an
/// in-process computation to rounding level runs `dsan` with this environment, so both use the
/// same GEMM kernels and summation order.
let sameBLASKernels = ["OPENBLAS_CORETYPE": BLAS.coreName]

/// Directory holding the built `dsan` executable: the test bundle sits beside it in
/// `.build/<config>/`. `DSAN_BIN_DIR` overrides it.
func productsDirectory() -> URL {
    if let dir = ProcessInfo.processInfo.environment["DSAN_BIN_DIR"] { return URL(fileURLWithPath: dir) }
    var url = Bundle.main.bundleURL
    while !FileManager.default.fileExists(atPath: url.appendingPathComponent("dsan").path), url.pathComponents.count > 1 {
        url.deleteLastPathComponent()
    }
    return url
}

/// Path of the built `dsan`.
let dsanPath = productsDirectory().appendingPathComponent("dsan").path

/// The result of one command.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `executable arguments` to completion with no standard input, capturing its output.
func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
         directory: String? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Drain stderr on another thread so neither pipe can fill and block the child.
    final class Box: @unchecked Sendable { var data = Data() }
    let errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errBox.data = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let errData = errBox.data
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// Runs the built `dsan`.
func dsan(_ arguments: String..., environment: [String: String] = [:]) throws -> CommandResult {
    try run(dsanPath, arguments, environment: environment)
}

/// A fresh temporary directory (removed with the test process's scratch folder).
func scratchDirectory(_ tag: String) throws -> String { try Scratch.directory(tag) }

/// Absolute path of `mpirun`, if installed.
let mpirunPath: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}

import Foundation

/// The directory holding the built products (`dsan`, `dsan-mpi-checks`, `dsan-ring-checks`): the
/// test bundle sits beside them in `.build/<config>/`, so this walks up from the bundle to the
/// first directory holding `product`. `DSAN_BIN_DIR` overrides it.
public func productsDirectory(holding product: String) -> URL {
    if let dir = ProcessInfo.processInfo.environment["DSAN_BIN_DIR"] {
        return URL(fileURLWithPath: dir)
    }
    var url = Bundle.main.bundleURL
    while !FileManager.default.fileExists(atPath: url.appendingPathComponent(product).path),
          url.pathComponents.count > 1 {
        url.deleteLastPathComponent()
    }
    return url
}

/// Absolute path of `mpirun`, if installed.
public let mpirunPath: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}

/// `mpirun` flags for tests: allowed as root (otherwise OpenMPI prints a notice and exits 0
/// having run nothing), oversubscribed so 3 ranks run on 2 cores.
public let mpirunFlags = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]

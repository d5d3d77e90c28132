import Foundation

/// Scratch space for tests: every directory lives under one folder per test process,
/// `<tmp>/dsan-tests-<pid>`, which is removed when the process exits — so a test run leaves
/// nothing behind in /tmp, whichever tests fail. Set `DSAN_KEEP_TEST_FILES=1` to keep it for a
/// look; the folder's path is then printed when the process exits.
public enum Scratch {
    public static let root: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dsan-tests-\(getpid())").path
        try? FileManager.default.removeItem(atPath: path)   // a reused pid's leftovers
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            fatalError("Scratch: cannot create \(path): \(error)")
        }
        atexit {
            if ProcessInfo.processInfo.environment["DSAN_KEEP_TEST_FILES"] != nil {
                FileHandle.standardError.write(Data("test files kept in \(Scratch.root)\n".utf8))
            } else {
                try? FileManager.default.removeItem(atPath: Scratch.root)
            }
        }
        return path
    }()

    /// A new, empty directory `root/<tag>-<uuid>`.
    public static func directory(_ tag: String) throws -> String {
        let path = (root as NSString).appendingPathComponent("\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

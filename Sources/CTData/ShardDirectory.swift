import Foundation

/// The shards one command (`dsan prepare`, `dsan synth`) writes into a directory, kept out of
/// sight until every one of them is complete.
///
/// Each shard is written as `NAME.h5.incomplete` (through `ShardWriter`, itself via
/// `….partial`); `commit()` renames them all to `NAME.h5` once the last is written. A directory
/// is read as every `*.h5` in it, so a run killed at any point leaves none of its shards where
/// they would pass for a complete cohort. A directory that already holds shards is refused
/// unless the command was given its overwrite flag; then the old shards are removed at
/// `commit()`, not before, so an interrupted overwrite loses nothing (Docs/input-rules.md).
public final class ShardDirectoryWriter {
    /// Suffix of a finished shard that waits for the rest of its run.
    public static let incompleteSuffix = ".incomplete"

    public let directory: String
    /// Final paths of the shards staged so far, in order.
    public private(set) var shards: [String] = []
    /// Names of the files of an earlier, interrupted run that `init` removed.
    public let removedLeftovers: [String]
    private let replaced: [String]
    private var committed = false

    /// Creates `directory` if missing. Throws if it holds shards (`*.h5`) and `overwrite` is
    /// false; `overwriteFlag` is the flag named in that error (nil: the command has none).
    /// Removes leftovers of an interrupted run (`*.h5.incomplete`, `*.h5.partial`,
    /// `*.h5.incomplete.partial`): they were never shards.
    public init(directory: String, overwrite: Bool, overwriteFlag: String?) throws {
        self.directory = directory
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let names = try fm.contentsOfDirectory(atPath: directory).sorted()
        let existing = names.filter { $0.hasSuffix(".h5") }
        if !existing.isEmpty && !overwrite {
            let remedy = overwriteFlag.map { "pass \($0) to replace them, or choose an empty directory" }
                ?? "choose an empty directory or remove them"
            throw DataError(file: directory, "already holds \(existing.count) shard(s) (\(existing[0]), …); \(remedy), so cohorts do not mix" + InputRules.seePage)
        }
        let leftovers = names.filter {
            $0.hasSuffix(".h5" + Self.incompleteSuffix) || $0.hasSuffix(".h5.partial") || $0.hasSuffix(".h5" + Self.incompleteSuffix + ".partial")
        }
        for name in leftovers { try fm.removeItem(atPath: (directory as NSString).appendingPathComponent(name)) }
        removedLeftovers = leftovers
        replaced = existing.map { (directory as NSString).appendingPathComponent($0) }
    }

    /// The path to give `ShardWriter` for shard `name` (e.g. `shard-000.h5`).
    public func stagingPath(for name: String) -> String {
        precondition(name.hasSuffix(".h5") && !name.contains("/"), "ShardDirectoryWriter: shard name \(name)")
        let path = (directory as NSString).appendingPathComponent(name)
        shards.append(path)
        return path + Self.incompleteSuffix
    }

    /// Removes the shards this run replaces, then renames every staged shard into place.
    public func commit() throws {
        precondition(!committed, "ShardDirectoryWriter.commit twice")
        committed = true
        let keep = Set(shards)
        for path in replaced where !keep.contains(path) { try FileManager.default.removeItem(atPath: path) }
        for path in shards where rename(path + Self.incompleteSuffix, path) != 0 {
            throw DataError(file: path, "cannot rename \(path + Self.incompleteSuffix) into place: \(String(cString: strerror(errno)))")
        }
    }

    /// Removes every shard this run staged (after a failure); the directory is as it was.
    public func discard() {
        for path in shards {
            try? FileManager.default.removeItem(atPath: path + Self.incompleteSuffix)
            try? FileManager.default.removeItem(atPath: path + Self.incompleteSuffix + ".partial")
        }
    }
}

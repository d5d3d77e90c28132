import Foundation

/// Where a case lives: which shard, which index inside it.
public struct CaseLocation: Sendable, Equatable {
    public var shard: Int
    public var index: Int
}

/// All shards of a directory (`*.h5`, in name order) as one indexed list of cases.
///
/// Opening reads and validates every shard's metadata (not the volumes): all shards share one
/// volume size, and case ids are unique across the directory. Case `i` of the cohort is the
/// i-th case in shard order; samplers and folds work on these indices.
public final class Cohort {
    public let directory: String
    public let shards: [ShardReader]
    public let cases: [CaseInfo]
    public let locations: [CaseLocation]
    /// [D, H, W] shared by every shard.
    public let size: [Int]

    public var count: Int { cases.count }

    public init(directory: String) throws {
        self.directory = directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError(file: directory, "no such directory; pass the folder that `dsan synth` or `dsan prepare` wrote")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
            .filter { $0.hasSuffix(".h5") }.sorted()
        guard !names.isEmpty else {
            throw DataError(file: directory, "holds no shards (*.h5); write some with `dsan synth` or `dsan prepare`")
        }
        var shards: [ShardReader] = [], cases: [CaseInfo] = [], locations: [CaseLocation] = []
        var seen: [String: String] = [:]
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            let shard = try ShardReader(path: path)
            if let first = shards.first, first.size != shard.size {
                throw DataError(file: path, "volumes are \(shard.size.map(String.init).joined(separator: "×")) but \(first.path) has \(first.size.map(String.init).joined(separator: "×")); all shards of a directory must share one size")
            }
            for (i, info) in shard.infos.enumerated() {
                if let other = seen[info.caseID] {
                    throw DataError(file: path, caseID: info.caseID, "duplicate case id, also in \(other); case ids must be unique")
                }
                seen[info.caseID] = path
                cases.append(info)
                locations.append(CaseLocation(shard: shards.count, index: i))
            }
            shards.append(shard)
        }
        self.shards = shards
        self.cases = cases
        self.locations = locations
        self.size = shards[0].size
    }

    /// The shard reader and index of case `i`.
    public func shard(of i: Int) -> (reader: ShardReader, index: Int) {
        let l = locations[i]
        return (shards[l.shard], l.index)
    }
}

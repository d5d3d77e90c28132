import CTData
import Foundation
import Model
import NIfTI
import Tensor
import Training

/// `dsan prepare`: the NIfTI cases of a manifest, preprocessed in parallel (Docs/nifti.md) and
/// written as HDF5 shards in manifest order, `shardSize` cases per shard, into a
/// `ShardDirectoryWriter` that the caller commits or discards.
///
/// At most `jobs` cases are in flight (being prepared, or prepared and waiting for their turn to
/// be written); a case that fails is reported through `caseFailed` and, unless `keepGoing`, stops
/// the run: the cases already running finish, nothing more starts, and `run` throws.
///
/// `run` sets the process-wide `Parallel.threads` for its duration (cores ÷ jobs, through
/// `Parallel.withThreads`, which restores it): run one at a time, and not beside other work in
/// the same process.
public struct ShardPreparation {
    public var manifest: String
    public var size: VolumeSize
    public var shardSize: Int
    public var keepGoing: Bool
    /// Cases prepared at the same time; nil: the cores this process may use.
    public var jobs: Int?

    public init(manifest: String, size: VolumeSize, shardSize: Int, keepGoing: Bool, jobs: Int?) {
        self.manifest = manifest
        self.size = size
        self.shardSize = shardSize
        self.keepGoing = keepGoing
        self.jobs = jobs
    }

    /// What a run wrote.
    public struct Summary: Equatable, Sendable {
        public var cases: Int
        public var covid: Int
        public var withoutInfectionMask: Int
        public var shards: Int
        /// Case ids of the cases skipped with `keepGoing`, in manifest order.
        public var skipped: [String]
    }

    /// The run stopped: which cases failed, or that every case did.
    public struct Failed: Error, CustomStringConvertible {
        public var description: String
    }

    /// Prepares `entries` into `output` (staged; the caller commits). `caseFailed` receives one
    /// line per failed case; `done` the number of cases taken so far, in manifest order.
    public func run(_ entries: [ManifestEntry], into output: ShardDirectoryWriter,
                    caseFailed: (String) -> Void, done: (Int) -> Void) throws -> Summary {
        let options = PreprocessingOptions(size: size.dims)
        let manifestDirectory = (manifest as NSString).deletingLastPathComponent
        let jobs = max(1, min(self.jobs ?? ProcessInfoCores.available, entries.count))
        // Case-level parallelism first; the kernels inside a case share what is left.
        return try Parallel.withThreads(max(1, ProcessInfoCores.available / jobs)) {
            try prepare(entries, jobs: jobs, options: options, manifestDirectory: manifestDirectory, into: output,
                        caseFailed: caseFailed, done: done)
        }
    }

    private func prepare(_ entries: [ManifestEntry], jobs: Int, options: PreprocessingOptions, manifestDirectory: String,
                         into output: ShardDirectoryWriter, caseFailed: (String) -> Void,
                         done: (Int) -> Void) throws -> Summary {
        let progress = ProgressLine("prepare", total: entries.count)
        let shardCount = (entries.count + shardSize - 1) / shardSize
        let digits = max(3, String(max(0, shardCount - 1)).count)
        let source = "dsan prepare --manifest \((manifest as NSString).lastPathComponent) --size \(size)"

        var pending: [Ready] = []          // prepared cases of the next shard, in manifest order
        var written: [String] = []         // shard paths written by this run
        var infos: [CaseInfo] = []
        var failures: [ManifestEntry] = []

        func writeShard() throws {
            guard !pending.isEmpty else { return }
            let name = String(format: "shard-%0\(digits)d.h5", written.count)
            let path = output.stagingPath(for: name)
            let writer = try ShardWriter(path: path, cases: pending.count, size: size.dims, source: source)
            for r in pending {
                try writer.append(r.info, image: .uint8(r.image), lung: r.lung, infection: r.infection, transform: r.transform)
            }
            try writer.finish()
            written.append(path)
            infos += pending.map(\.info)
            pending = []
        }

        let results = OrderedResults<Ready>()
        var launched = 0
        var stop = false
        for next in 0..<entries.count {
            while !stop && launched < entries.count && launched - next < jobs {
                let i = launched, entry = entries[i]
                launched += 1
                DispatchQueue.global(qos: .userInitiated).async {
                    results.put(i, Result { try Self.prepareCase(entry, manifestDirectory: manifestDirectory, options: options) })
                }
            }
            if next >= launched { break }   // stopped: not launched
            switch results.take(next) {
            case .success(let ready):
                if !stop {
                    pending.append(ready)
                    if pending.count == shardSize { try writeShard() }
                }
            case .failure(let error):
                failures.append(entries[next])
                caseFailed("case \(entries[next].caseID) (manifest line \(entries[next].line)) failed: \(error)")
                if !keepGoing { stop = true }   // cases already running still finish and report
            }
            progress.update(next + 1)
            done(next + 1)
        }

        if stop {
            throw Failed(description: "\(failures.count) case(s) failed (\(failures.map(\.caseID).joined(separator: ", "))); no shards written to \(output.directory). Fix them, or pass --keep-going to skip them")
        }
        try writeShard()
        if infos.isEmpty {
            throw Failed(description: "every case failed (\(failures.count)); nothing written to \(output.directory)")
        }
        return Summary(cases: infos.count, covid: infos.filter { $0.label == .covid }.count,
                       withoutInfectionMask: infos.filter { !$0.hasInfectionMask }.count,
                       shards: written.count, skipped: failures.map(\.caseID))
    }

    /// One prepared case as the shard stores it.
    struct Ready: Sendable {
        var info: CaseInfo
        var image: [UInt8]
        var lung: [UInt8]
        var infection: [UInt8]?
        var transform: PreprocessingTransform
    }

    /// Reads and preprocesses one case; the volumes it read are released when it returns.
    static func prepareCase(_ entry: ManifestEntry, manifestDirectory: String, options: PreprocessingOptions) throws -> Ready {
        let image = try NIfTI.read(entry.image)
        let lung = try MaskFiles.read(entry.lung, partsRelativeTo: manifestDirectory)
        let infection = try entry.infection.map { try NIfTI.read($0) }
        let prepared = try Preprocessing.prepare(image: image, lung: lung, infection: infection, options: options)
        let info = CaseInfo(caseID: entry.caseID, patientID: entry.patientID, label: entry.label,
                            infectionRatio: prepared.infectionRatio.map(Float.init) ?? .nan)
        return Ready(info: info, image: prepared.imageBytes, lung: prepared.lung, infection: prepared.infection,
                     transform: prepared.transform)
    }
}

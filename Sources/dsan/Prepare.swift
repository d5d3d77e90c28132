import ArgumentParser
import CTData
import Foundation
import Model
import NIfTI
import Tensor
import Training

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Preprocess NIfTI cases listed in a manifest into HDF5 shards.",
        discussion: """
        The manifest is CSV with the columns case_id,patient_id,label,image,lung,infection (paths \
        relative to the manifest; label covid or cap; an empty infection cell makes a predict-only \
        case). Several lung masks on the image's grid (e.g. lobes) may be joined with + in the lung \
        cell; their union is the lung mask. Each case is reoriented to RAS+, resampled to \
        0.7168 × 0.7168 × 1.25 mm, shrunk by one common factor to fit --size, zero-padded and \
        windowed to [−1350, 150] HU (paper §IV-B, Docs/nifti.md). Shards hold the cases in manifest \
        order with each case's preprocessing transform, so attention maps can be put back on the scan.

        Cases run in parallel (--jobs at a time; a 512×512×300 scan takes about 1 GB while it is \
        prepared). A failed case is reported by name; without --keep-going the run stops and \
        removes the shards it wrote, with --keep-going the failed cases are skipped and listed.

        Example: dsan prepare --manifest cases.csv --out data/prepared --size 138x256x256
        """
    )

    @Option(help: "CSV manifest: case_id,patient_id,label,image,lung,infection.")
    var manifest: String

    @Option(help: "Directory to write the shards into (created if missing; must hold no shards yet).")
    var out: String

    @Option(help: "Volume size DxHxW (each ≥ \(VolumeSize.minimum)).")
    var size = VolumeSize(138, 256, 256)

    @Option(name: .customLong("shard-size"),
            help: "Cases per shard file (a shard's cases wait in memory, 3 bytes per voxel each, until it is written).")
    var shardSize = 16

    @Flag(name: .customLong("keep-going"), help: "Skip cases that fail (listed at the end) instead of stopping.")
    var keepGoing = false

    @Option(help: "Cases prepared at the same time (default: the number of cores).")
    var jobs: Int?

    func validate() throws {
        guard shardSize > 0 else { throw ValidationError("--shard-size must be at least 1, got \(shardSize)") }
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1, got \(jobs)") }
    }

    func run() throws {
        try CommandErrors.reporting {
            let entries = try Manifest.read(manifest)
            // Refuses a directory that already holds shards (they would mix with these); the
            // shards appear together once the last is written.
            let output = try ShardDirectoryWriter(directory: out, overwrite: false, overwriteFlag: nil)
            if !output.removedLeftovers.isEmpty {
                printError("dsan prepare: removed \(output.removedLeftovers.count) unfinished file(s) of an interrupted run from \(out)")
            }
            let (out, total) = (self.out, entries.count)
            let interrupt = InterruptNotice.forShards(command: "prepare", total: total, out: out)
            defer { interrupt.cancel() }
            do {
                try prepare(entries, into: output, interrupt: interrupt)
            } catch {
                output.discard()
                throw error
            }
        }
    }

    /// One prepared case as the shard stores it.
    private struct Ready: Sendable {
        var info: CaseInfo
        var image: [UInt8]
        var lung: [UInt8]
        var infection: [UInt8]?
        var transform: PreprocessingTransform
    }

    private func prepare(_ entries: [ManifestEntry], into output: ShardDirectoryWriter, interrupt: InterruptNotice) throws {
        let options = PreprocessingOptions(size: size.dims)
        let manifestDirectory = (manifest as NSString).deletingLastPathComponent
        let jobs = min(self.jobs ?? ProcessInfoCores.available, entries.count)
        // Case-level parallelism first; the kernels inside a case share what is left.
        Parallel.threads = max(1, ProcessInfoCores.available / jobs)
        let progress = ProgressLine("prepare", total: entries.count)
        let shardCount = (entries.count + shardSize - 1) / shardSize
        let digits = max(3, String(shardCount - 1).count)
        let source = "dsan prepare --manifest \((manifest as NSString).lastPathComponent) --size \(size)"

        var pending: [Ready] = []          // prepared cases of the next shard, in manifest order
        var written: [String] = []         // shard paths written by this run
        var infos: [CaseInfo] = []
        var failures: [(ManifestEntry, Error)] = []

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

        // At most `jobs` cases are in flight (being prepared or waiting for their turn to be
        // written); results are taken in manifest order.
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
            let result = results.take(next)

            switch result {
            case .success(let ready):
                if !stop {
                    pending.append(ready)
                    if pending.count == shardSize { try writeShard() }
                }
            case .failure(let error):
                failures.append((entries[next], error))
                printError("dsan: case \(entries[next].caseID) (manifest line \(entries[next].line)) failed: \(error)")
                if !keepGoing { stop = true }   // cases already running still finish and report
            }
            progress.update(next + 1)
            interrupt.progress = next + 1
        }

        if stop {
            output.discard()
            throw ExitCode.failure.withMessage(
                "\(failures.count) case(s) failed (\(failures.map(\.0.caseID).joined(separator: ", "))); no shards written to \(out). Fix them, or pass --keep-going to skip them")
        }
        try writeShard()
        let covid = infos.filter { $0.label == .covid }.count
        let withoutMask = infos.filter { !$0.hasInfectionMask }.count
        if infos.isEmpty {
            throw ExitCode.failure.withMessage("every case failed (\(failures.count)); nothing written to \(out)")
        }
        try output.commit()
        print("wrote \(infos.count) cases (\(covid) COVID-19, \(infos.count - covid) CAP; \(withoutMask) without infection mask, predict only) in \(written.count) shard(s) at \(size) to \(out)")
        if !failures.isEmpty {
            print("skipped \(failures.count) failed case(s): \(failures.map(\.0.caseID).joined(separator: ", "))")
        }
    }

    /// Reads and preprocesses one case; the volumes it read are released when it returns.
    private static func prepareCase(_ entry: ManifestEntry, manifestDirectory: String, options: PreprocessingOptions) throws -> Ready {
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

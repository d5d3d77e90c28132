import ArgumentParser
import CTData
import Foundation
import Model
import Workflows

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
            let preparation = ShardPreparation(manifest: manifest, size: size, shardSize: shardSize,
                                               keepGoing: keepGoing, jobs: jobs)
            let summary: ShardPreparation.Summary
            do {
                summary = try preparation.run(entries, into: output,
                                              caseFailed: { printError("dsan: \($0)") },
                                              done: { interrupt.progress = $0 })
                try output.commit()
            } catch {
                output.discard()
                throw error
            }
            print("wrote \(summary.cases) cases (\(summary.covid) COVID-19, \(summary.cases - summary.covid) CAP; \(summary.withoutInfectionMask) without infection mask, predict only) in \(summary.shards) shard(s) at \(size) to \(out)")
            if !summary.skipped.isEmpty {
                print("skipped \(summary.skipped.count) failed case(s): \(summary.skipped.joined(separator: ", "))")
            }
        }
    }
}

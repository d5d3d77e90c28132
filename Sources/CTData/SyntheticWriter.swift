import Foundation
import Tensor

extension SyntheticCohort {
    /// Writes a synthetic cohort of `cases` cases at `size` ([D, H, W]) into `directory` as
    /// shards of `shardSize` cases (`shard-000.h5`, …). Cases are generated in parallel and
    /// written in order; `progress(done, total)` is called after each shard. Returns the infos.
    /// The shards appear together when the last is written (`ShardDirectoryWriter`); a
    /// directory that holds shards is refused unless `overwrite`, which replaces them.
    @discardableResult
    public static func write(directory: String, cases: Int, size: [Int], seed: UInt64, shardSize: Int = 64,
                             prefix: String = "synth", overwrite: Bool = false,
                             progress: (Int, Int) -> Void = { _, _ in }) throws -> [CaseInfo] {
        precondition(shardSize > 0, "shardSize \(shardSize)")
        let output = try ShardDirectoryWriter(directory: directory, overwrite: overwrite, overwriteFlag: "--overwrite")
        do {
            let infos = try writeShards(output, cases: cases, size: size, seed: seed, shardSize: shardSize, prefix: prefix, progress: progress)
            try output.commit()
            return infos
        } catch {
            output.discard()
            throw error
        }
    }

    private static func writeShards(_ output: ShardDirectoryWriter, cases: Int, size: [Int], seed: UInt64, shardSize: Int,
                                    prefix: String, progress: (Int, Int) -> Void) throws -> [CaseInfo] {
        let plans = plan(cases: cases, seed: seed, prefix: prefix)
        var infos: [CaseInfo] = []
        let shards = (cases + shardSize - 1) / shardSize
        for s in 0..<shards {
            let batch = Array(plans[(s * shardSize)..<min(cases, (s + 1) * shardSize)])
            var volumes = [Volume?](repeating: nil, count: batch.count)
            volumes.withUnsafeMutableBufferPointer { out in
                let base = out.baseAddress!
                Parallel.forEach(batch.count) { range in
                    for i in range { base[i] = generate(batch[i], size: size, seed: seed) }
                }
            }
            let digits = max(3, String(shards - 1).count)
            let name = String(format: "shard-%0\(digits)d.h5", s)
            let writer = try ShardWriter(path: output.stagingPath(for: name), cases: batch.count,
                                         size: size, source: "dsan synth --cases \(cases) --size \(size.map(String.init).joined(separator: "x")) --seed \(seed)")
            for (p, v) in zip(batch, volumes) {
                let info = CaseInfo(caseID: p.caseID, patientID: p.patientID, label: p.label, infectionRatio: v!.ratio)
                try writer.append(info, image: .uint8(v!.image), lung: v!.lung, infection: v!.infection)
                infos.append(info)
            }
            try writer.finish()
            progress(infos.count, cases)
        }
        return infos
    }
}

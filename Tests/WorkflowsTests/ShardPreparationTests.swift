import CTData
import Foundation
import Model
import NIfTI
import NumericalTesting
import Testing
@testable import Workflows

/// `ShardPreparation`, the loop of `dsan prepare`, without the binary: shard layout, manifest
/// order, and what a failed case does with and without `keepGoing`. (The preprocessing itself is
/// checked voxel by voxel in Tests/CLITests/PrepareTests.)
@Suite struct ShardPreparationTests {
    static func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dsan-prep-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Three 16³ cases at the target spacing, the second with a truncated CT file.
    static func writeCohort(_ dir: String) throws -> [ManifestEntry] {
        let affine = Affine(scale: [0.7168, 0.7168, 1.25])
        for id in ["a", "b", "c"] {
            var ct = Volume(dims: [16, 16, 16], repeating: -600, affine: affine)
            var lung = Volume(dims: [16, 16, 16], affine: affine)
            for k in 2..<14 { for j in 2..<14 { for i in 2..<14 { lung[i, j, k] = 1; ct[i, j, k] = Float(-900 + 10 * i) } } }
            try NIfTI.write(ct, to: "\(dir)/\(id)-ct.nii", as: .int16)
            try NIfTI.write(lung, to: "\(dir)/\(id)-lung.nii", as: .uint8)
        }
        let whole = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/b-ct.nii"))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: "\(dir)/b-ct.nii"))
        let manifest = ["case_id,patient_id,label,image,lung,infection",
                        "a,pa,covid,a-ct.nii,a-lung.nii,", "b,pb,cap,b-ct.nii,b-lung.nii,", "c,pc,cap,c-ct.nii,c-lung.nii,"]
        try manifest.joined(separator: "\n").write(toFile: "\(dir)/cases.csv", atomically: true, encoding: .utf8)
        return try Manifest.read("\(dir)/cases.csv")
    }

    @Test func keepGoingSkipsTheFailedCaseAndKeepsManifestOrder() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let entries = try Self.writeCohort(dir)
        let output = try ShardDirectoryWriter(directory: "\(dir)/shards", overwrite: false, overwriteFlag: nil)
        var failed: [String] = [], done: [Int] = []
        // ThreadSettings: `run` sets the process-wide Parallel.threads, which tests beside this one read.
        let summary = try ThreadSettings.with {
            try ShardPreparation(manifest: "\(dir)/cases.csv", size: VolumeSize(16, 16, 16), shardSize: 1,
                                 keepGoing: true, jobs: 2)
                .run(entries, into: output, caseFailed: { failed.append($0) }, done: { done.append($0) })
        }
        try output.commit()
        #expect(summary == .init(cases: 2, covid: 1, withoutInfectionMask: 2, shards: 2, skipped: ["b"]))
        #expect(failed.count == 1 && failed[0].hasPrefix("case b (manifest line 3) failed:"))
        #expect(done == [1, 2, 3])
        let shards = try FileManager.default.contentsOfDirectory(atPath: "\(dir)/shards").filter { $0.hasSuffix(".h5") }.sorted()
        #expect(shards == ["shard-000.h5", "shard-001.h5"])
        let ids = try shards.map { try ShardReader(path: "\(dir)/shards/\($0)").infos.map(\.caseID) }
        #expect(ids == [["a"], ["c"]])
    }

    @Test func aFailedCaseStopsTheRunWithoutKeepGoing() throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let entries = try Self.writeCohort(dir)
        let output = try ShardDirectoryWriter(directory: "\(dir)/shards", overwrite: false, overwriteFlag: nil)
        var failed: [String] = []
        #expect {
            try ThreadSettings.with {
                _ = try ShardPreparation(manifest: "\(dir)/cases.csv", size: VolumeSize(16, 16, 16), shardSize: 8,
                                         keepGoing: false, jobs: 1)
                    .run(entries, into: output, caseFailed: { failed.append($0) }, done: { _ in })
            }
        } throws: { error in
            "\(error)" == "1 case(s) failed (b); no shards written to \(dir)/shards. Fix them, or pass --keep-going to skip them"
        }
        #expect(failed.count == 1)
        output.discard()
    }
}

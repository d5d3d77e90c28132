import Foundation
import Testing
@testable import CTData
import HDF5

/// The input rules of Docs/input-rules.md (issue 16): what `inspect` refuses, the readers every
/// command uses refuse with the same sentence.
@Suite struct InputRulesTests {
    /// Opens `shard` alone in a directory through every path a command takes: `ShardReader`
    /// (and so `Cohort`) must throw, `Inspection.run` must list the same sentence.
    func refusal(_ shard: RawShard) throws -> String {
        let dir = try temporaryDirectory("rules")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try shard.write(dir + "/bad.h5")
        let opened: String
        do { _ = try Cohort(directory: dir); opened = "no error" } catch { opened = "\(error)" }
        let report = try Inspection.run(directory: dir)
        #expect(report.problems == [opened], "inspect and the readers disagree")
        #expect(!report.isValid)
        return opened.replacingOccurrences(of: dir, with: "DIR")
    }

    @Test func shardWithZeroCases() throws {
        #expect(try refusal(RawShard(n: 0, labels: [], caseIDs: [], ratios: []))
                == "DIR/bad.h5: dataset `image` has shape [0, 4, 5, 6]: the shard holds 0 cases, expected at least 1; remove the file or write it again (see Docs/input-rules.md)")
    }

    @Test func formatVersionOtherThanOne() throws {
        #expect(try refusal(RawShard(format: "dsan-shard", formatVersion: 2))
                == "DIR/bad.h5: attribute `format_version` is 2, expected 1 (the version this dsan reads); update dsan (see Docs/input-rules.md)")
        #expect(try refusal(RawShard(format: "dsan-shard", formatVersion: 0))
                == "DIR/bad.h5: attribute `format_version` is 0, expected 1 (the version this dsan reads); write the shard again with `dsan prepare` (see Docs/input-rules.md)")
        #expect(try refusal(RawShard(format: "something-else"))
                == "DIR/bad.h5: attribute `format` is `something-else`, expected `dsan-shard`: this is not a dsan shard (see Docs/input-rules.md)")
    }

    @Test(arguments: [Float(-0.5), 1.5, .infinity, -.infinity])
    func infectionRatioOutsideTheUnitInterval(ratio: Float) throws {
        #expect(try refusal(RawShard(ratios: [1 / 120, ratio]))
                == "DIR/bad.h5: case b: dataset `infection_ratio` is \(ratio), expected a value in [0, 1] (infection voxels / lung voxels) or NaN (no infection mask) (see Docs/input-rules.md)")
    }

    /// Voxel values are checked as each case is read (`Cohort.load`, what train, cv and predict
    /// feed the network), with the sentence `inspect` prints.
    @Test func voxelValuesAreRefusedWhereverACaseIsRead() throws {
        let dir = try temporaryDirectory("rules-values")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var image = (0..<240).map { Float($0 % 256) / 255 }
        image[130] = 1.25     // case b (voxels 120…239)
        var lung = [UInt8](repeating: 1, count: 240)
        lung[3] = 2           // case a
        try RawShard(imageType: .float32, imageValues: image, lungValues: lung).write(dir + "/s.h5")
        var inf = (0..<240).map { Float($0 % 256) / 255 }
        inf[5] = .infinity
        try RawShard(imageType: .float32, caseIDs: ["c", "d"], imageValues: inf).write(dir + "/t.h5")
        let cohort = try Cohort(directory: dir)
        let report = try Inspection.run(directory: dir)
        let expected = [
            "\(dir)/s.h5: case a: dataset `lung`: voxel 3 is 2, expected 0 or 1 (a binary mask) (see Docs/input-rules.md)",
            "\(dir)/s.h5: case b: dataset `image`: voxel 10 is 1.25, expected a value in [0, 1] (CT windowed to [−1350, 150] HU) (see Docs/input-rules.md)",
            "\(dir)/t.h5: case c: dataset `image`: voxel 5 is inf, expected a finite value in [0, 1]; re-run prepare on the source scan (see Docs/input-rules.md)",
        ]
        #expect(report.problems == expected)
        for (i, message) in zip([0, 1, 2], expected) {
            let error = #expect(throws: DataError.self) { _ = try cohort.load(i) }
            #expect(error?.description == message)
        }
        #expect(try cohort.load(3).input.count == 120)   // case d is valid
    }

    /// issue 16: `--folds 50` on 16 patients left fold 49 empty, trained without validation and
    /// exited 0.
    @Test func foldsWithoutACaseAreRefused() throws {
        let cases = (0..<16).map { CaseInfo(caseID: "c\($0)", patientID: "p\($0)", label: $0 < 10 ? .covid : .cap, infectionRatio: 0.01) }
        let error = #expect(throws: DataError.self) { _ = try Folds(cases: cases, folds: 50, seed: 1) }
        #expect(error?.description == "cohort: 50 folds of 16 patients (10 COVID-19, 6 CAP; all scans of a patient share a fold, split per label) leave folds 10…49 (40) without a case; use --folds 10 or fewer (see Docs/input-rules.md)")
        _ = try Folds(cases: cases, folds: 10, seed: 1)
        #expect(throws: DataError.self) { _ = try Folds(cases: cases, folds: 11, seed: 1) }
    }

    @Test func volumesSmallerThanTheNetworkTakes() throws {
        let dir = try temporaryDirectory("rules-size")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try RawShard().write(dir + "/s.h5")   // 4×5×6
        let error = #expect(throws: DataError.self) {
            _ = try InputRules.checkTraining(data: dir, validation: nil, fold: -1, folds: 5, seed: 1, sampling: "uniform", batch: 2, minimumEdge: 16)
        }
        #expect(error?.description == "\(dir)/s.h5: volumes are 4×5×6 voxels (D = 4), expected at least 16 in every dimension: the network downsamples by 16; prepare the data again with a larger --size (see Docs/input-rules.md)")
        let report = try Inspection.run(directory: dir, minimumEdge: 16)
        #expect(report.problems == [error?.description ?? ""])
        #expect(try InputRules.checkTraining(data: dir, validation: nil, fold: -1, folds: 5, seed: 1, sampling: "size-balanced", batch: 2, minimumEdge: 4).warnings.count == 2)
    }
}

/// A command's shards appear together when all are written; a folder with shards is refused
/// without the overwrite flag (issue 16: `synth` mixed cohorts, an interrupted `prepare` left
/// complete-looking shards).
@Suite struct ShardDirectoryTests {
    @Test func shardsAppearOnlyAtCommitAndOldOnesGoThen() throws {
        let dir = try temporaryDirectory("stage")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try SyntheticCohort.write(directory: dir, cases: 3, size: [16, 16, 16], seed: 1, shardSize: 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["shard-000.h5", "shard-001.h5", "shard-002.h5"])

        let refused = #expect(throws: DataError.self) {
            try SyntheticCohort.write(directory: dir, cases: 2, size: [16, 16, 16], seed: 2, shardSize: 1)
        }
        #expect(refused?.description == "\(dir): already holds 3 shard(s) (shard-000.h5, …); pass --overwrite to replace them, or choose an empty directory, so cohorts do not mix (see Docs/input-rules.md)")

        // Staged shards are not shards: the old cohort stays whole until commit.
        let output = try ShardDirectoryWriter(directory: dir, overwrite: true, overwriteFlag: "--overwrite")
        let w = try ShardWriter(path: output.stagingPath(for: "shard-000.h5"), cases: 1, size: [16, 16, 16], source: "test")
        let n = 16 * 16 * 16
        try w.append(CaseInfo(caseID: "new", patientID: "p", label: .cap, infectionRatio: 0), image: .uint8([UInt8](repeating: 9, count: n)),
                     lung: [UInt8](repeating: 1, count: n), infection: [UInt8](repeating: 0, count: n))
        try w.finish()
        #expect(try Cohort(directory: dir).count == 3)
        try output.commit()
        #expect(try Cohort(directory: dir).cases.map(\.caseID) == ["new"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["shard-000.h5"])
    }

    @Test func leftoversOfAnInterruptedRunAreRemovedNotRead() throws {
        let dir = try temporaryDirectory("leftover")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["shard-000.h5.incomplete", "shard-001.h5.incomplete.partial"] {
            try "x".write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        }
        #expect(throws: DataError.self) { _ = try Cohort(directory: dir) }   // holds no shards
        let output = try ShardDirectoryWriter(directory: dir, overwrite: false, overwriteFlag: nil)
        #expect(output.removedLeftovers == ["shard-000.h5.incomplete", "shard-001.h5.incomplete.partial"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }
}

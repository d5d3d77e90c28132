import CTData
import Foundation
import HDF5
import Model
import Testing

/// The cases of issue 16 that do not live in the trainer's step loop: each shows the exact
/// refusal a user reads (Docs/input-rules.md).
@Suite struct InputRulesCLITests {
    static let train = ["train", "--width", "2", "--epochs", "1", "--batch", "2", "--timeout", "60"]

    /// Runs `dsan train` with `arguments`, expects a non-zero exit (not a signal) and returns
    /// stderr with `dir` written as DIR.
    func refusedTraining(_ dir: String, _ arguments: [String]) throws -> String {
        let r = try run(dsanPath, Self.train + arguments)
        #expect(r.status == 1, "exit \(r.status): \(r.stderr)")
        // The log's first line names the CPU and the BLAS core (DESIGN.md §10), the second the
        // memory pages; the refusal follows.
        let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first?.contains(" CPU ") == true, "\(r.stderr)")
        #expect(lines.dropFirst().first?.contains(" memory pages: ") == true, "\(r.stderr)")
        return lines.dropFirst(2).joined(separator: "\n").replacingOccurrences(of: dir, with: "DIR")
    }

    /// A shard whose datasets hold 0 cases (issue 16: SIGILL in `UniformSampler.init`).
    static func writeEmptyShard(_ path: String, size: [Int] = [16, 32, 32]) throws {
        let file = try File(creating: path)
        for name in ["image", "lung", "infection"] { _ = try file.createDataset(name, type: .uint8, shape: [0] + size) }
        _ = try file.createDataset("label", type: .uint8, shape: [0])
        _ = try file.createDataset("infection_ratio", type: .float32, shape: [0])
        _ = try file.createDataset("case_id", type: .string, shape: [0])
        _ = try file.createDataset("patient_id", type: .string, shape: [0])
    }

    @Test func emptyShardAndEmptyValidationSetAreRefused() throws {
        let dir = try scratchDirectory("rules-empty")
        try FileManager.default.createDirectory(atPath: dir + "/empty", withIntermediateDirectories: true)
        try Self.writeEmptyShard(dir + "/empty/shard-000.h5")
        let expected = "dsan: rank 0 of 1: DIR/empty/shard-000.h5: dataset `image` has shape [0, 16, 32, 32]: the shard holds 0 cases, expected at least 1; remove the file or write it again (see Docs/input-rules.md)\n"
        #expect(try refusedTraining(dir, ["--data", dir + "/empty", "--out", dir + "/run"]) == expected)
        #expect(try refusedTraining(dir, ["--data", trainingData, "--val", dir + "/empty", "--out", dir + "/run"]) == expected)
        let inspect = try dsan("inspect", dir + "/empty")
        #expect(inspect.status == 1 && inspect.stderr.contains("the shard holds 0 cases"), "\(inspect.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/run"), "nothing is written before the checks")
    }

    @Test func moreFoldsThanPatientsIsRefused() throws {
        let dir = try scratchDirectory("rules-folds")
        let stderr = try refusedTraining(dir, ["--data", trainingData, "--folds", "50", "--fold", "49", "--out", dir + "/run"])
        #expect(stderr.hasPrefix("dsan: rank 0 of 1: cohort: 50 folds of "), "\(stderr)")
        #expect(stderr.contains(" without a case; use --folds "), "\(stderr)")
        #expect(stderr.hasSuffix(" or fewer (see Docs/input-rules.md)\n"), "\(stderr)")
    }

    /// `dsan cv` applies the same start-up checks as `dsan train` before its first fold.
    @Test func crossValidationChecksItsInputsLikeTrain() throws {
        let dir = try scratchDirectory("rules-cv")
        let r = try run(dsanPath, ["cv", "--data", trainingData, "--out", dir + "/cv", "--width", "100000", "--folds", "2"])
        #expect(r.status == 1, "exit \(r.status): \(r.stderr)")
        #expect(r.stderr.contains("width 100000 at 16×32×32 needs at least "), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/cv/fold-0/us/steps.jsonl"))
    }

    @Test func aWidthNoMachineHoldsIsAnErrorNotSIGABRT() throws {
        let dir = try scratchDirectory("rules-width")
        let stderr = try refusedTraining(dir, ["--data", trainingData, "--width", "100000", "--out", dir + "/run"])
        #expect(stderr.hasPrefix("dsan: rank 0 of 1: width 100000 at 16×32×32 needs at least "), "\(stderr)")
        #expect(stderr.contains("parameters with their gradients and Adam moments, and the activations of 2 case(s) at once), this machine has "), "\(stderr)")
        #expect(stderr.hasSuffix(": use a smaller --width (64 is the paper's), a smaller --batch or --micro-batch, or smaller volumes (see Docs/input-rules.md)\n"), "\(stderr)")
    }

    @Test func volumesSmallerThanTheNetworkTakesAreRefusedByTrainAndInspect() throws {
        let dir = try scratchDirectory("rules-small")
        try SyntheticCohort.write(directory: dir + "/small", cases: 2, size: [8, 16, 16], seed: 1)
        let message = "DIR/small/shard-000.h5: volumes are 8×16×16 voxels (D = 8), expected at least 16 in every dimension: the network downsamples by 16; prepare the data again with a larger --size (see Docs/input-rules.md)"
        #expect(try refusedTraining(dir, ["--data", dir + "/small", "--out", dir + "/run"]) == "dsan: rank 0 of 1: \(message)\n")
        let inspect = try dsan("inspect", dir + "/small")
        #expect(inspect.status == 1)
        #expect(inspect.stderr.replacingOccurrences(of: dir, with: "DIR").contains("problem: \(message)\n"), "\(inspect.stderr)")
    }

    /// Attributes and per-case values `inspect` flags are refused by `train` with the same words.
    @Test func formatVersionAndRatioThatInspectFlagsStopTrain() throws {
        let dir = try scratchDirectory("rules-attrs")
        try SyntheticCohort.write(directory: dir + "/v2", cases: 4, size: [16, 32, 32], seed: 1)
        try File(opening: dir + "/v2/shard-000.h5", mode: .readWrite).setAttribute("format_version", Int64(2))
        let v2 = "DIR/v2/shard-000.h5: attribute `format_version` is 2, expected 1 (the version this dsan reads); update dsan (see Docs/input-rules.md)"
        #expect(try refusedTraining(dir, ["--data", dir + "/v2", "--out", dir + "/run"]) == "dsan: rank 0 of 1: \(v2)\n")
        #expect(try dsan("inspect", dir + "/v2").stderr.replacingOccurrences(of: dir, with: "DIR").contains("problem: \(v2)\n"))

        try SyntheticCohort.write(directory: dir + "/ratio", cases: 4, size: [16, 32, 32], seed: 1)
        let cases = try Cohort(directory: dir + "/ratio").cases
        do {
            let file = try File(opening: dir + "/ratio/shard-000.h5", mode: .readWrite)
            try file.dataset("infection_ratio").write(cases.enumerated().map { $0.offset == 2 ? Float(-0.5) : $0.element.infectionRatio })
        }
        #expect(try refusedTraining(dir, ["--data", dir + "/ratio", "--out", dir + "/run"])
                == "dsan: rank 0 of 1: DIR/ratio/shard-000.h5: case \(cases[2].caseID): dataset `infection_ratio` is -0.5, expected a value in [0, 1] (infection voxels / lung voxels) or NaN (no infection mask) (see Docs/input-rules.md)\n")
    }

    /// A NaN voxel inside the lung (issue 16: `train` exited 0 with NaN weights) stops the job
    /// when the case is read, naming file, case, dataset and voxel.
    @Test func aNaNVoxelStopsTrainingAndPrediction() throws {
        let dir = try scratchDirectory("rules-nan")
        try FileManager.default.createDirectory(atPath: dir + "/nan", withIntermediateDirectories: true)
        let size = [16, 32, 32], n = 16 * 32 * 32
        let writer = try ShardWriter(path: dir + "/nan/shard-000.h5", cases: 2, size: size, imageType: .float32, source: "test")
        var infection = [UInt8](repeating: 0, count: n)
        for v in 0..<64 { infection[v] = 1 }
        for (k, id) in ["a", "b"].enumerated() {
            var image = [Float](repeating: 0.5, count: n)
            if k == 1 { image[1000] = .nan }
            try writer.append(CaseInfo(caseID: id, patientID: "p-" + id, label: k == 0 ? .covid : .cap, infectionRatio: Float(64) / Float(n)),
                              image: .float32(image), lung: [UInt8](repeating: 1, count: n), infection: infection)
        }
        try writer.finish()
        let message = "DIR/nan/shard-000.h5: case b: dataset `image`: voxel 1000 is nan, expected a finite value in [0, 1]; re-run prepare on the source scan (see Docs/input-rules.md)"
        let stderr = try refusedTraining(dir, ["--data", dir + "/nan", "--out", dir + "/run"])
        #expect(stderr.hasSuffix("dsan: rank 0 of 1: \(message)\n"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/run/last.h5"), "no checkpoint of a poisoned run")

        try PredictTests.tinyCheckpoint(dir + "/model.h5")
        let predict = try dsan("predict", "--model", dir + "/model.h5", "--data", dir + "/nan", "--out", dir + "/p.csv")
        #expect(predict.status == 1)
        #expect(predict.stderr.replacingOccurrences(of: dir, with: "DIR").hasSuffix("\ndsan: \(message)\n"), "\(predict.stderr)")
    }

    /// A checkpoint with one NaN weight: `predict`, `--init` and `--resume` refuse it by name.
    @Test func aNaNWeightIsRefusedByPredictInitAndResume() throws {
        let dir = try scratchDirectory("rules-nanweight")
        try PredictTests.tinyCheckpoint(dir + "/model.h5")
        func poison(_ path: String) throws {
            let d = try File(opening: path, mode: .readWrite).dataset("layer1.0.conv2.weight")
            var values = try d.read(as: Float.self)
            values[3] = .nan
            try d.write(values)
        }
        try poison(dir + "/model.h5")
        let cause = "cannot load checkpoint: `layer1.0.conv2.weight` holds 1 non-finite value(s), the first nan at index 3; a checkpoint must hold finite values only; use an earlier checkpoint (see Docs/input-rules.md)"
        let predict = try dsan("predict", "--model", dir + "/model.h5", "--data", trainingData, "--out", dir + "/p.csv")
        #expect(predict.status == 1)
        #expect(predict.stderr == "dsan: \(dir)/model.h5: \(cause)\n")
        #expect(try refusedTraining(dir, ["--data", trainingData, "--init", dir + "/model.h5", "--out", dir + "/init"]) == "dsan: rank 0 of 1: DIR/model.h5: \(cause)\n")

        let first = try run(dsanPath, Self.train + ["--data", trainingData, "--steps", "1", "--out", dir + "/run"])
        #expect(first.status == 0, "\(first.stderr)")
        try poison(dir + "/run/last.h5")
        #expect(try refusedTraining(dir, ["--data", trainingData, "--resume", "--out", dir + "/run"]) == "dsan: rank 0 of 1: DIR/run/last.h5: \(cause)\n")
    }

    /// A size-balanced cohort with an empty group trains, with a warning at start naming it.
    @Test func sizeBalancedWarnsAboutEmptyGroups() throws {
        let dir = try scratchDirectory("rules-groups")
        try SyntheticCohort.write(directory: dir + "/two", cases: 2, size: [16, 32, 32], seed: 1)
        let cohort = try Cohort(directory: dir + "/two")
        let empty = SamplingGroup.allCases.filter { g in !cohort.cases.contains { SamplingGroup(label: $0.label, ratio: $0.infectionRatio) == g } }
        #expect(empty.count >= 2)   // two cases fill at most two of four groups
        let r = try run(dsanPath, Self.train + ["--data", dir + "/two", "--sampling", "size-balanced", "--steps", "1", "--out", dir + "/run"])
        #expect(r.status == 0, "\(r.stderr)")
        for g in empty {
            #expect(r.stderr.contains("dsan: warning: size-balanced sampling: group \(g) has no training case, so its probability is 0"), "\(r.stderr)")
        }
    }

    /// `synth` into a folder that holds shards refuses without --overwrite (issue 16: a mixed
    /// cohort); with it, the old shards are replaced, not mixed.
    @Test func synthRefusesToMixCohorts() throws {
        let dir = try scratchDirectory("rules-synth")
        #expect(try dsan("synth", "--out", dir, "--cases", "4", "--size", "16x16x16", "--shard-size", "1").status == 0)
        let again = try dsan("synth", "--out", dir, "--cases", "2", "--size", "16x16x16", "--seed", "2")
        #expect(again.status == 1)
        #expect(again.stderr == "dsan: \(dir): already holds 4 shard(s) (shard-000.h5, …); pass --overwrite to replace them, or choose an empty directory, so cohorts do not mix (see Docs/input-rules.md)\n")
        #expect(try Cohort(directory: dir).count == 4)
        let overwrite = try dsan("synth", "--out", dir, "--cases", "2", "--size", "16x16x16", "--seed", "2", "--overwrite")
        #expect(overwrite.status == 0, "\(overwrite.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["shard-000.h5"])
        #expect(try Cohort(directory: dir).count == 2)
    }
}

/// An interrupted `prepare` or `synth` leaves no shard of its own and says how to continue
/// (issue 16: 32 of 40 cases in complete-looking shards that `inspect` passed).
@Suite(.serialized) struct InterruptedWriteTests {
    /// Starts `dsan arguments`, waits until a staged shard appears in `out`, sends `signal`, and
    /// returns the exit status and stderr.
    func interrupt(_ arguments: [String], out: String, signal: Int32) throws -> (status: Int32, stderr: String, staged: Bool) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: dsanPath)
        process.arguments = arguments
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var staged = false
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
            if names.contains(where: { $0.hasSuffix(ShardDirectoryWriter.incompleteSuffix) }) { staged = true; break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        kill(process.processIdentifier, signal)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text, staged)
    }

    @Test func interruptedPrepareLeavesNoShardsAndSaysHowToContinue() throws {
        let dir = try scratchDirectory("rules-interrupt")
        var rows = ["case_id,patient_id,label,image,lung,infection"]
        for i in 0..<40 {
            try PrepareTests.writeCase(dir, "c\(i)", flipped: false, ext: "nii")
            rows.append(PrepareTests.row("c\(i)", i % 2 == 0 ? "covid" : "cap", "nii"))
        }
        try (rows.joined(separator: "\n") + "\n").write(toFile: dir + "/cases.csv", atomically: true, encoding: .utf8)
        // A large --size makes each shard take long enough to be interrupted while staged.
        let r = try interrupt(["prepare", "--manifest", dir + "/cases.csv", "--out", dir + "/shards", "--size", "96x192x192",
                               "--shard-size", "2", "--jobs", "1"], out: dir + "/shards", signal: SIGINT)
        #expect(r.staged, "a shard was staged before the signal")
        #expect(r.status == 130, "\(r.stderr)")
        let line = try #require(r.stderr.split(separator: "\n").last.map(String.init))
        #expect(line.hasPrefix("dsan prepare: interrupted by SIGINT after "), "\(r.stderr)")
        #expect(line.hasSuffix(" of 40 cases; \(dir)/shards holds none of this run's shards (its unfinished files end in .incomplete or .partial, and the next run into \(dir)/shards removes them). To continue, run the same command again: it starts over (see Docs/input-rules.md)"), "\(line)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir + "/shards")
        #expect(!left.isEmpty && !left.contains { $0.hasSuffix(".h5") }, "\(left)")
        #expect(try dsan("inspect", dir + "/shards").status == 1)

        // The next run removes the leftovers and writes a whole cohort.
        try (rows.prefix(3).joined(separator: "\n") + "\n").write(toFile: dir + "/two.csv", atomically: true, encoding: .utf8)
        let again = try dsan("prepare", "--manifest", dir + "/two.csv", "--out", dir + "/shards", "--size", "16x16x16")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("dsan prepare: removed \(left.count) unfinished file(s) of an interrupted run from \(dir)/shards"), "\(again.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/shards") == ["shard-000.h5"])
    }

    @Test func terminatedSynthOverwriteKeepsTheOldCohort() throws {
        let dir = try scratchDirectory("rules-term")
        #expect(try dsan("synth", "--out", dir, "--cases", "3", "--size", "16x16x16").status == 0)
        let r = try interrupt(["synth", "--out", dir, "--cases", "400", "--size", "64x96x96", "--shard-size", "2", "--overwrite"],
                              out: dir, signal: SIGTERM)
        #expect(r.staged)
        #expect(r.status == 143, "\(r.stderr)")
        #expect(r.stderr.contains("dsan synth: interrupted by SIGTERM after "), "\(r.stderr)")
        #expect(try Cohort(directory: dir).count == 3, "the old cohort is whole until the new one is complete")
    }
}

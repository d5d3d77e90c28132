import CTData
import HDF5
import Foundation
import Model
import NIfTI
import Tensor
import Testing
import Training

/// `dsan predict` run like a user, checked against an in-process eval-mode forward of the same model.
@Suite struct PredictTests {
    /// A tiny model whose batch-norm running statistics are not the initial ones (so eval mode
    /// matters), saved as a checkpoint.
    static func tinyCheckpoint(_ path: String, attention: Bool = true, seed: UInt64 = 3) throws {
        let model = ResNet3D(config: ModelConfig(width: 2, attention: attention), seed: seed)
        var rng = SystemRandomNumberGenerator()
        let input = Tensor(shape: [2, 1, 16, 32, 32], values: (0..<(2 * 16 * 32 * 32)).map { _ in Float.random(in: 0...1, using: &rng) })
        model.forward(input)   // training mode: the running statistics move
        try Checkpoint.save(model, to: path)
    }

    /// The reference: the checkpoint loaded in-process, eval mode, case by case.
    static func reference(_ checkpoint: String, _ cohort: Cohort) throws -> (probabilities: [Float], maps: [[Float]]) {
        let model = ResNet3D(config: try Checkpoint.modelConfig(at: checkpoint))
        try Checkpoint.load(into: model, from: checkpoint)
        model.training = false
        var p: [Float] = [], maps: [[Float]] = []
        for i in 0..<cohort.count {
            let c = try cohort.load(i)
            let logit = model.forward(Tensor(shape: [1, 1] + cohort.size, values: c.input), explain: true).buffer[0]
            p.append(1 / (1 + exp(-logit)))
            maps.append(model.attentionMap.array)
        }
        return (p, maps)
    }

    static func csvRows(_ path: String) throws -> [[String]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    /// An ensemble file runs both models and combines each case by its infection ratio (§5).
    @Test func ensembleFileCombinesBothModelsPerCase() throws {
        let dir = try scratchDirectory("predict-ensemble")
        try Self.tinyCheckpoint("\(dir)/us.h5", seed: 3)
        try Self.tinyCheckpoint("\(dir)/ss.h5", seed: 4)
        let rule = EnsembleRule(wOut: 0.2, wIn: 0.9)
        try EnsembleFile(usCheckpoint: "us.h5", ssCheckpoint: "ss.h5", rule: rule).write(to: "\(dir)/ensemble.json")
        try SyntheticCohort.write(directory: "\(dir)/data", cases: 5, size: [16, 32, 32], seed: 2, shardSize: 5)
        let r = try dsan("predict", "--model", "\(dir)/ensemble.json", "--data", "\(dir)/data", "--out", "\(dir)/p.csv", "--batch", "2")
        #expect(r.status == 0, "\(r.stderr)")
        let cohort = try Cohort(directory: "\(dir)/data")
        let us = try Self.reference("\(dir)/us.h5", cohort).probabilities, ss = try Self.reference("\(dir)/ss.h5", cohort).probabilities
        let rows = try Self.csvRows("\(dir)/p.csv").dropFirst()
        #expect(rows.count == 5)
        for (i, row) in rows.enumerated() {
            let ratio = Double(cohort.cases[i].infectionRatio)
            let expected = rule.combine(us: Double(us[i]), ss: Double(ss[i]), ratio: ratio)
            #expect(abs(Double(row[4])! - expected) < 1e-5, "case \(i): \(row[4]) vs \(expected)")
        }
    }

    @Test func shardsGiveTheInProcessProbabilitiesAndMaps() throws {
        let dir = try scratchDirectory("predict")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.tinyCheckpoint("\(dir)/model.h5")
        try SyntheticCohort.write(directory: "\(dir)/data", cases: 3, size: [16, 32, 32], seed: 5, shardSize: 2)
        let r = try dsan("predict", "--model", "\(dir)/model.h5", "--data", "\(dir)/data", "--out", "\(dir)/p.csv",
                         "--attention-maps", "\(dir)/maps", "--batch", "2", environment: sameBLASKernels)
        #expect(r.status == 0, "\(r.stderr)")

        let cohort = try Cohort(directory: "\(dir)/data")
        let (expected, maps) = try Self.reference("\(dir)/model.h5", cohort)
        let rows = try Self.csvRows("\(dir)/p.csv")
        #expect(rows.first == ["case_id", "patient_id", "label", "infection_ratio", "probability"])
        #expect(rows.count == 4)
        for (i, row) in rows.dropFirst().enumerated() where row.count == 5 {
            let info = cohort.cases[i]
            #expect(row[0] == info.caseID && row[1] == info.patientID && row[2] == String(info.label.rawValue))
            #expect(Float(row[3]) == info.infectionRatio)
            let p = try #require(Float(row[4]))
            #expect(abs(p - expected[i]) <= 1e-5, "\(info.caseID): \(p) vs \(expected[i])")

            let map = try NIfTI.read("\(dir)/maps/\(info.caseID).nii.gz")
            #expect(map.dims == [32, 32, 16])
            #expect(map.affine.maxDifference(Affine(scale: [0.7168, 0.7168, 1.25])) < 1e-6)
            let worst = zip(map.voxels, maps[i]).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst <= 1e-5, "\(info.caseID): map differs by \(worst)")
        }
    }

    @Test func oneNIfTIScanGivesAMapOnItsOwnGrid() throws {
        let dir = try scratchDirectory("predict-scan")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Self.tinyCheckpoint("\(dir)/model.h5", attention: false)
        // A 24 × 20 × 14 scan stored LPS with 1.5 × 1.5 × 2.5 mm voxels, lungs a box.
        let affine = Affine(scale: [-1.5, -1.5, 2.5], offset: [40, 30, -60])
        let dims = [24, 20, 14]
        var ct = Volume(dims: dims, repeating: -1000, affine: affine)
        var lung = Volume(dims: dims, affine: affine)
        for k in 0..<14 { for j in 0..<20 { for i in 0..<24 {
            ct[i, j, k] = Float(-1000 + 40 * ((i * 7 + j * 3 + k * 5) % 25))
            if (3..<21).contains(i) && (3..<17).contains(j) && (2..<12).contains(k) { lung[i, j, k] = 1 }
        } } }
        try NIfTI.write(ct, to: "\(dir)/ct.nii.gz", as: .int16)
        try NIfTI.write(lung, to: "\(dir)/lung.nii.gz", as: .uint8)

        let r = try dsan("predict", "--model", "\(dir)/model.h5", "--image", "\(dir)/ct.nii.gz", "--lung", "\(dir)/lung.nii.gz",
                         "--out", "\(dir)/out", "--size", "16x32x32")
        #expect(r.status == 0, "\(r.stderr)")
        let map = try NIfTI.read("\(dir)/out/attention.nii.gz")
        #expect(map.dims == dims)
        #expect(map.affine.maxDifference(affine) < 1e-4)
        #expect(map.voxels.allSatisfy { $0 >= 0 && $0 <= 1 })

        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/out/prediction.json"))) as! [String: Any]
        let p = try #require(json["probability"] as? Double)
        #expect(json["model"] as? String == "\(dir)/model.h5")
        #expect(json["label"] as? Int == (p >= 0.5 ? 1 : 0))
        #expect(json["infection_ratio"] == nil)

        // In process: the same preprocessing (image quantised as shards store it) and eval forward.
        let prepared = try Preprocessing.prepare(image: NIfTI.read("\(dir)/ct.nii.gz"), lung: NIfTI.read("\(dir)/lung.nii.gz"),
                                                 options: PreprocessingOptions(size: [16, 32, 32]))
        let bytes = prepared.imageBytes
        let input = (0..<bytes.count).map { prepared.lung[$0] != 0 ? Float(bytes[$0]) / 255 : 0 }
        let model = ResNet3D(config: try Checkpoint.modelConfig(at: "\(dir)/model.h5"))
        try Checkpoint.load(into: model, from: "\(dir)/model.h5")
        model.training = false
        let logit = model.forward(Tensor(shape: [1, 1, 16, 32, 32], values: input), explain: true).buffer[0]
        #expect(abs(Float(p) - 1 / (1 + exp(-logit))) <= 1e-5)
        let expectedMap = prepared.transform.toSourceGrid(model.attentionMap.array)
        let worst = zip(map.voxels, expectedMap.voxels).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-5)
    }

    @Test func goldenErrors() throws {
        let dir = try scratchDirectory("predict-errors")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let neither = try dsan("predict", "--model", "m.h5", "--out", "p.csv")
        #expect(neither.status != 0)
        #expect(neither.stderr.hasPrefix("Error: give --data DIR (prepared shards) or --image CT.nii.gz --lung L.nii.gz (one scan)\n"), "\(neither.stderr)")
        let both = try dsan("predict", "--model", "m.h5", "--data", "d", "--image", "ct.nii", "--lung", "l.nii", "--out", "p.csv")
        #expect(both.stderr.hasPrefix("Error: --data (shards) and --image/--lung/--infection (one scan) are the two forms of predict; give one of them\n"), "\(both.stderr)")

        let missing = try dsan("predict", "--model", "\(dir)/none.h5", "--data", dir, "--out", "\(dir)/p.csv")
        #expect(missing.status != 0)
        #expect(missing.stderr == "dsan: \(dir)/none.h5: no such file; --model takes a checkpoint written by `dsan train` (e.g. RUN/best.h5)\n")

        try "{\"w_out\": 0.35, \"w_in\": 0.96}\n".write(toFile: "\(dir)/ensemble.json", atomically: true, encoding: .utf8)
        let ensemble = try dsan("predict", "--model", "\(dir)/ensemble.json", "--data", dir, "--out", "\(dir)/p.csv")
        #expect(ensemble.status != 0)
        #expect(ensemble.stderr.hasPrefix("dsan: \(dir)/ensemble.json: "), "\(ensemble.stderr)")

        // Shards of 8×16×16: smaller than the model takes.
        try Self.tinyCheckpoint("\(dir)/model.h5")
        try SyntheticCohort.write(directory: "\(dir)/small", cases: 1, size: [8, 16, 16], seed: 1)
        let small = try dsan("predict", "--model", "\(dir)/model.h5", "--data", "\(dir)/small", "--out", "\(dir)/p.csv")
        #expect(small.status != 0)
        #expect(small.stderr == "dsan: \(dir)/model.h5: the model takes volumes of at least 16 voxels per dimension, these are 8x16x16; prepare the data again with a larger --size\n")

        // A checkpoint that lacks a weight does not load: the cause in one line.
        try Self.tinyCheckpoint("\(dir)/broken.h5")
        try File(opening: "\(dir)/broken.h5", mode: .readWrite).remove("fc.weight")
        try SyntheticCohort.write(directory: "\(dir)/data", cases: 1, size: [16, 32, 32], seed: 1)
        let broken = try dsan("predict", "--model", "\(dir)/broken.h5", "--data", "\(dir)/data", "--out", "\(dir)/p.csv")
        #expect(broken.status != 0)
        #expect(broken.stderr == "dsan: \(dir)/broken.h5: cannot load checkpoint: missing `fc.weight`\n")
    }

    /// Golden help: a change to the flags or their wording shows up here (STYLE.md, "Tests that can fail").
    @Test func help() throws {
        let r = try dsan("predict", "--help")
        #expect(r.status == 0)
        #expect(r.stdout == Self.helpText + "\n")
    }

    static let helpText = #"""
OVERVIEW: Predict COVID-19 vs CAP with a trained model, on shards or on one
NIfTI scan.

With --data DIR --out FILE.csv: every case of a shard directory. The CSV has
the columns case_id,patient_id,label,infection_ratio,probability (label 1 =
COVID-19, 0 = CAP; the ratio is empty for a case without infection mask). With
--attention-maps MAPS, one MAPS/<case_id>.nii.gz per case at the shards' size,
placed on the source scan when the shard records how it was prepared (shards of
`dsan prepare` do).

With --image CT.nii.gz --lung L.nii.gz [--infection I.nii.gz] --out DIR: one
scan, preprocessed as `dsan prepare` does, giving DIR/prediction.json and
DIR/attention.nii.gz on the scan's own voxel grid (it overlays in ITK-SNAP or
3D Slicer).

The model runs in eval mode (batch-norm running statistics). Maps are T(A) with
attention on, and with attention off the normalised class activation map (=
Grad-CAM on layer4). With an ensemble file (`dsan ensemble`) both models run,
and each case's probability and map are w·US + (1 − w)·SS with w chosen by its
infection ratio (DESIGN.md §5).

Example: dsan predict --model run/best.h5 --data data/test --out predictions.csv

USAGE: dsan predict --model <model> [--data <data>] --out <out> [--attention-maps <attention-maps>] [--attention <attention>] [--batch <batch>] [--image <image>] [--lung <lung>] [--infection <infection>] [--size <size>]

OPTIONS:
  --model <model>         Checkpoint written by `dsan train`, or an ensemble
                          file written by `dsan ensemble`.
  --data <data>           Directory of shards to predict on (first form).
  --out <out>             Output: the CSV file (with --data) or a directory
                          (with --image).
  --attention-maps <attention-maps>
                          Directory for one <case_id>.nii.gz attention map per
                          case (with --data).
  --attention <attention> Attention module on or off (default: as the
                          checkpoint says); off explains with the normalised
                          CAM. (values: on, off)
  --batch <batch>         Cases per forward pass (with --data). (default: 1)
  --image <image>         CT scan in HU, NIfTI (second form).
  --lung <lung>           Lung mask on the scan's grid; several (e.g. lobes)
                          may be joined with +.
  --infection <infection> Infection mask on the scan's grid (optional; gives
                          the infection ratio).
  --size <size>           Network input size DxHxW for --image (each ≥ 16;
                          default 138x256x256).
  --version               Show the version.
  -h, --help              Show help information.

"""#
}

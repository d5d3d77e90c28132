import ArgumentParser
import CTData
import Evaluation
import Foundation
import Model
import NIfTI
import Tensor
import Training
import Workflows

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict COVID-19 vs CAP with a trained model, on shards or on one NIfTI scan.",
        discussion: """
        With --data DIR --out FILE.csv: every case of a shard directory. The CSV has the columns \
        case_id,patient_id,label,infection_ratio,probability (label 1 = COVID-19, 0 = CAP; the \
        ratio is empty for a case without infection mask). With --attention-maps MAPS, one \
        MAPS/<case_id>.nii.gz per case at the shards' size, placed on the source scan when the \
        shard records how it was prepared (shards of `dsan prepare` do).

        With --image CT.nii.gz --lung L.nii.gz [--infection I.nii.gz] --out DIR: one scan, \
        preprocessed as `dsan prepare` does, giving DIR/prediction.json and DIR/attention.nii.gz \
        on the scan's own voxel grid (it overlays in ITK-SNAP or 3D Slicer).

        The model runs in eval mode (batch-norm running statistics). Maps are T(A) with attention \
        on, and with attention off the normalised class activation map (= Grad-CAM on layer4). \
        With an ensemble file (`dsan ensemble`) both models run, and each case's probability and \
        map are w·US + (1 − w)·SS with w chosen by its infection ratio (DESIGN.md §5).

        Example: dsan predict --model run/best.h5 --data data/test --out predictions.csv
        """
    )

    enum Toggle: String, ExpressibleByArgument, CaseIterable {
        case on, off
    }

    @Option(help: "Checkpoint written by `dsan train`, or an ensemble file written by `dsan ensemble`.")
    var model: String

    @Option(help: "Directory of shards to predict on (first form).")
    var data: String?

    @Option(help: "Output: the CSV file (with --data) or a directory (with --image).")
    var out: String

    @Option(name: .customLong("attention-maps"), help: "Directory for one <case_id>.nii.gz attention map per case (with --data).")
    var attentionMaps: String?

    @Option(help: "Attention module on or off (default: as the checkpoint says); off explains with the normalised CAM.")
    var attention: Toggle?

    @Option(help: "Cases per forward pass (with --data).")
    var batch = 1

    @Option(help: "CT scan in HU, NIfTI (second form).")
    var image: String?

    @Option(help: "Lung mask on the scan's grid; several (e.g. lobes) may be joined with +.")
    var lung: String?

    @Option(help: "Infection mask on the scan's grid (optional; gives the infection ratio).")
    var infection: String?

    @Option(help: "Network input size DxHxW for --image (each ≥ \(VolumeSize.minimum); default 138x256x256).")
    var size: VolumeSize?

    func validate() throws {
        let scanForm = image != nil || lung != nil || infection != nil
        if data != nil && scanForm {
            throw ValidationError("--data (shards) and --image/--lung/--infection (one scan) are the two forms of predict; give one of them")
        }
        if data == nil && !scanForm {
            throw ValidationError("give --data DIR (prepared shards) or --image CT.nii.gz --lung L.nii.gz (one scan)")
        }
        if scanForm {
            if image == nil { throw ValidationError("--lung and --infection need --image CT.nii.gz") }
            if lung == nil { throw ValidationError("--image needs --lung L.nii.gz (the network input is image × lung)") }
            if attentionMaps != nil {
                throw ValidationError("--attention-maps is for --data; with --image the map is written to OUT/attention.nii.gz")
            }
        } else if size != nil {
            throw ValidationError("--size is for --image; shards keep the size they were prepared at")
        }
        guard batch > 0 else { throw ValidationError("--batch must be at least 1, got \(batch)") }
    }

    func run() throws {
        try CommandErrors.reporting {
            let predictor = try ModelSource.identify(model).load(attention: attention.map { $0 == .on })
            if let data {
                try predictShards(data, predictor)
            } else {
                try predictScan(predictor)
            }
        }
    }

    // MARK: - Shards

    private func predictShards(_ directory: String, _ predictor: Predictor) throws {
        let cohort = try Cohort(directory: directory)
        let progress = ProgressLine("predict", total: cohort.count)
        try ShardPrediction.predict(cohort: cohort, indices: Array(0..<cohort.count), with: predictor, batch: batch,
                         csv: out, attentionMaps: attentionMaps) { progress.update($0) }
        print("predicted \(cohort.count) cases with \(predictor.name) → \(out)"
              + (attentionMaps.map { "; \(predictor.attention ? "attention maps T(A)" : "normalised CAMs") in \($0)" } ?? ""))
    }

    // MARK: - One scan

    private func predictScan(_ predictor: Predictor) throws {
        let size = self.size ?? VolumeSize(138, 256, 256)
        let result = try ScanPrediction.predict(image: image!, lung: lung!, infection: infection, size: size.dims,
                                                with: predictor, out: out)
        let probability = result.probability
        print(String(format: "P(COVID-19) = %.4f → %@; wrote %@/prediction.json and attention.nii.gz (%@ on the scan's grid)",
                     probability, probability >= 0.5 ? "COVID-19" : "CAP", out, result.scanDims.map(String.init).joined(separator: "×")))
    }
}

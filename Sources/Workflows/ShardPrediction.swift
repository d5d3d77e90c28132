import CTData
import Evaluation
import Foundation
import NIfTI
import Tensor

/// Predicting the cases of a shard directory with a `Predictor`: the predictions CSV and, on
/// request, one attention map per case. Used by `dsan predict --data` and `dsan cv`.
public enum ShardPrediction {
    /// Predicts `indices` of `cohort` in batches of `batch`, writes the predictions CSV to `csv`
    /// and, with `attentionMaps`, `<case_id>.nii.gz` maps at input size for the cases in
    /// `mapsFor` (all when nil), placed on the source scan when the shard records how it was
    /// prepared. `progress` gets the number of cases done after each batch.
    public static func predict(cohort: Cohort, indices: [Int], with predictor: any Predictor, batch: Int, csv: String,
                               attentionMaps: String?, mapsFor: Set<Int>? = nil, progress: (Int) -> Void = { _ in }) throws {
        try predictor.check(size: cohort.size)
        try TextFile.createParent(of: csv)
        if let attentionMaps {
            try FileManager.default.createDirectory(atPath: attentionMaps, withIntermediateDirectories: true)
        }
        let (d, h, w) = (cohort.size[0], cohort.size[1], cohort.size[2])
        let voxels = d * h * w
        let prefetcher = Prefetcher(cohort: cohort, depth: max(2, batch))
        defer { prefetcher.stop() }
        prefetcher.schedule(indices)

        var predictions: [Prediction] = []
        var start = 0
        while start < indices.count {
            let n = min(batch, indices.count - start)
            var cases: [LoadedCase] = []
            let input = Tensor(zeros: [n, 1, d, h, w])
            for k in 0..<n {
                let c = try prefetcher.next()
                c.input.withUnsafeBufferPointer { input.data.advanced(by: k * voxels).update(from: $0.baseAddress!, count: voxels) }
                cases.append(c)
            }
            let ratios = cases.map { $0.info.infectionRatio.isNaN ? nil : Double($0.info.infectionRatio) }
            let explain = attentionMaps != nil && (mapsFor == nil || cases.contains { mapsFor!.contains($0.index) })
            let (p, maps) = predictor.predict(input, ratios: ratios, explain: explain)
            for (k, c) in cases.enumerated() {
                predictions.append(Prediction(case: c.info, probability: p[k]))
                if let attentionMaps, let maps, mapsFor?.contains(c.index) ?? true {
                    let (reader, index) = cohort.shard(of: c.index)
                    let affine = reader.transform(index)?.outputAffine
                        ?? Affine(scale: ShardFormat.spacing.map(Double.init))
                    let map = Array(UnsafeBufferPointer(start: maps.data.advanced(by: k * voxels), count: voxels))
                    // [D, H, W] with x fastest is NIfTI's memory order for dims [W, H, D].
                    let volume = Volume(dims: [w, h, d], voxels: map, affine: affine, name: c.info.caseID)
                    try NIfTI.write(volume, to: (attentionMaps as NSString).appendingPathComponent(fileName(c.info.caseID) + ".nii.gz"))
                }
            }
            start += n
            progress(start)
        }
        try PredictionsCSV.write(predictions, to: csv)
    }

    /// A case id as a file name: path separators replaced.
    public static func fileName(_ caseID: String) -> String {
        caseID.replacingOccurrences(of: "/", with: "_")
    }
}

import CTData
import Evaluation
import Foundation
import NIfTI
import Tensor

/// Predicting one NIfTI scan (`dsan predict --image`): the scan preprocessed as `dsan prepare`
/// does, through a `Predictor`, giving `OUT/prediction.json` and `OUT/attention.nii.gz` on the
/// scan's own voxel grid.
public struct ScanPrediction: Sendable {
    /// P(COVID-19).
    public var probability: Float
    /// Infection voxels / lung voxels; nil without an infection mask.
    public var infectionRatio: Double?
    /// The scan's dims (those of the map written).
    public var scanDims: [Int]

    /// Reads `image`, the `lung` mask (parts joined with `+`) and the optional `infection` mask,
    /// prepares the network input at `size` [D, H, W], predicts with `predictor` and writes both
    /// files into the directory `out` (created).
    public static func predict(image: String, lung: String, infection: String?, size: [Int],
                               with predictor: any Predictor, out: String) throws -> ScanPrediction {
        try predictor.check(size: size)
        let scan = try NIfTI.read(image)
        let lungMask = try MaskFiles.read(lung, partsRelativeTo: nil)
        let infectionMask = try infection.map { try NIfTI.read($0) }
        let prepared = try Preprocessing.prepare(image: scan, lung: lungMask, infection: infectionMask,
                                                 options: PreprocessingOptions(size: size))
        // The same input as from a shard: the image quantised to uint8 as shards store it, × lung.
        let bytes = prepared.imageBytes
        let input = Tensor(zeros: [1, 1] + size)
        for i in 0..<bytes.count where prepared.lung[i] != 0 { input.data[i] = Float(bytes[i]) / 255 }
        let (p, maps) = predictor.predict(input, ratios: [prepared.infectionRatio], explain: true)
        let probability = p[0]

        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let mapPath = (out as NSString).appendingPathComponent("attention.nii.gz")
        let map = prepared.transform.toSourceGrid(maps!.array, name: mapPath)
        try NIfTI.write(map, to: mapPath)
        var json: [String: Any] = [
            "model": predictor.name,
            "image": image,
            "probability": Double(probability),
            "threshold": 0.5,
            "prediction": probability >= 0.5 ? "covid" : "cap",
            "label": probability >= 0.5 ? 1 : 0,
            "size": size,
            "attention_map": "attention.nii.gz",
            "attention_map_kind": predictor.attention ? "T(A)" : "normalised CAM",
        ]
        if let r = prepared.infectionRatio { json["infection_ratio"] = r }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        try TextFile.write(String(decoding: data, as: UTF8.self) + "\n", to: (out as NSString).appendingPathComponent("prediction.json"))
        return ScanPrediction(probability: probability, infectionRatio: prepared.infectionRatio, scanDims: scan.dims)
    }
}

import CTData
import Foundation
import HDF5
import Model
import Tensor
import Evaluation

/// What `--model` names: one checkpoint, or an ensemble file of DESIGN.md §5.
public enum ModelSource {
    case checkpoint(String)
    case ensemble(String)

    /// HDF5's 8-byte file signature.
    public static let hdf5Signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Tells a checkpoint from an ensemble file by its contents, not its name.
    public static func identify(_ path: String) throws -> ModelSource {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError(file: path, "no such file; --model takes a checkpoint written by `dsan train` (e.g. RUN/best.h5)")
        }
        guard !isDirectory.boolValue else {
            throw DataError(file: path, "is a directory; --model takes a checkpoint file (e.g. RUN/best.h5)")
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw DataError(file: path, "cannot be read (permissions?)")
        }
        let head = [UInt8](handle.readData(ofLength: 512))
        try? handle.close()
        if Array(head.prefix(8)) == hdf5Signature {
            let file = try File(opening: path)
            if try file.hasAttribute("format") {
                let format = try file.stringAttribute("format")
                if format.contains("ensemble") { return .ensemble(path) }
                if format != Checkpoint.format {
                    throw DataError(file: path, "is an HDF5 file of format `\(format)`, not a checkpoint (`\(Checkpoint.format)`)")
                }
            }
            return .checkpoint(path)
        }
        let text = String(decoding: head, as: UTF8.self)
        if text.contains("w_out") || text.contains("w_in") || text.contains("ensemble") { return .ensemble(path) }
        throw DataError(file: path, "is not a checkpoint (not an HDF5 file); --model takes a checkpoint written by `dsan train`")
    }

    /// Loads the model for inference (eval mode). `attention` overrides the checkpoint's setting
    /// (it changes only which map is explained, T(A) or the normalised CAM, not the logits).
    public func load(attention: Bool?) throws -> any Predictor {
        switch self {
        case .checkpoint(let path):
            return try CheckpointPredictor(path: path, attention: attention)
        case .ensemble(let path):
            return try EnsemblePredictor(path: path, attention: attention)
        }
    }
}

/// A model that gives probabilities and explanation maps for a batch of network inputs.
public protocol Predictor: AnyObject {
    /// What was loaded, for outputs (e.g. the checkpoint path).
    var name: String { get }
    /// Whether the maps are T(A) (attention on) or the normalised CAM (attention off).
    var attention: Bool { get }
    /// Throws when the model cannot take inputs of `size` [D, H, W].
    func check(size: [Int]) throws
    /// P(COVID-19) per sample of `input` [n, 1, D, H, W]; with `explain`, also the maps
    /// [n, 1, D, H, W] (owned by the predictor, valid until the next call). `ratios` are the
    /// samples' infection ratios (nil when unknown); an ensemble chooses its weight by them.
    func predict(_ input: Tensor, ratios: [Double?], explain: Bool) -> (probabilities: [Float], maps: Tensor?)
}

/// One `ResNet3D` from a checkpoint, in eval mode (batch norms use their running statistics).
public final class CheckpointPredictor: Predictor {
    public let name: String
    public let model: ResNet3D
    /// The smallest volume side the network takes (DESIGN.md §1: every size ≥ 16 must work).
    public static let minimumSide = 16

    public init(path: String, attention: Bool?) throws {
        var config = try Checkpoint.modelConfig(at: path, attention: attention ?? true)
        if let attention { config.attention = attention }
        model = ResNet3D(config: config)
        try Checkpoint.load(into: model, from: path)
        model.training = false
        model.releaseGradients()   // never read here: their 242 MiB (width 64) go back to the kernel
        name = path
    }

    public var attention: Bool { model.config.attention }

    public func check(size: [Int]) throws {
        if size.contains(where: { $0 < Self.minimumSide }) {
            throw DataError(file: name, "the model takes volumes of at least \(Self.minimumSide) voxels per dimension, these are \(size.map(String.init).joined(separator: "x")); prepare the data again with a larger --size")
        }
    }

    public func predict(_ input: Tensor, ratios: [Double?], explain: Bool) -> (probabilities: [Float], maps: Tensor?) {
        let logits = model.forward(input, explain: explain)
        // σ(logit) = 1 / (1 + e^−logit).
        let p = (0..<logits.count).map { 1 / (1 + exp(-logits.buffer[$0])) }
        return (p, explain ? model.attentionMap : nil)
    }
}

/// The dual-sampling ensemble of DESIGN.md §5: both checkpoints of an ensemble file, combined per
/// case as P = w·P_US + (1 − w)·P_SS with w chosen by the case's infection ratio. Its map is the
/// same weighted mean of the two models' maps.
public final class EnsemblePredictor: Predictor {
    public let name: String
    public let file: EnsembleFile
    public let us: CheckpointPredictor
    public let ss: CheckpointPredictor
    private var combined = Tensor(zeros: [0])

    public init(path: String, attention: Bool?) throws {
        file = try EnsembleFile.load(path)
        let (usPath, ssPath) = file.resolvedCheckpoints(relativeTo: path)
        us = try CheckpointPredictor(path: usPath, attention: attention)
        ss = try CheckpointPredictor(path: ssPath, attention: attention)
        name = path
    }

    public var attention: Bool { us.attention }

    public func check(size: [Int]) throws {
        try us.check(size: size)
        try ss.check(size: size)
    }

    public func predict(_ input: Tensor, ratios: [Double?], explain: Bool) -> (probabilities: [Float], maps: Tensor?) {
        let a = us.predict(input, ratios: ratios, explain: explain)
        let aMaps = a.maps?.copy()
        let b = ss.predict(input, ratios: ratios, explain: explain)
        let n = a.probabilities.count
        let p = (0..<n).map { Float(file.combine(us: Double(a.probabilities[$0]), ss: Double(b.probabilities[$0]), ratio: ratios[$0])) }
        guard explain, let aMaps, let bMaps = b.maps else { return (p, nil) }
        if combined.shape != aMaps.shape { combined = Tensor(zeros: aMaps.shape) }
        let per = aMaps.count / max(n, 1)
        for k in 0..<n {
            let w = Float(file.rule.weight(ratio: ratios[k]))
            for i in (k * per)..<((k + 1) * per) { combined.data[i] = w * aMaps.data[i] + (1 - w) * bMaps.data[i] }
        }
        return (p, combined)
    }
}

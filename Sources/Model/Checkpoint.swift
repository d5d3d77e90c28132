import Foundation
import HDF5
import NN

/// A checkpoint that cannot be loaded: names the file and every problem at once (like PyTorch's
/// `load_state_dict`, which lists all missing and unexpected keys).
public struct CheckpointError: Error, CustomStringConvertible {
    public var file: String
    public var problems: [String]
    /// Whether it was writing the checkpoint that failed (otherwise loading it).
    public var writing = false

    public init(file: String, problems: [String], writing: Bool = false) {
        self.file = file
        self.problems = problems
        self.writing = writing
    }

    public var description: String {
        "\(file): cannot \(writing ? "write" : "load") checkpoint: " + problems.joined(separator: "; ")
    }
}

/// Adam's state as PyTorch names it: the step count and `exp_avg` / `exp_avg_sq` per parameter.
public struct OptimizerSnapshot {
    public var step: Int
    public var learningRate: Double
    public var firstMoments: [String: Tensor]
    public var secondMoments: [String: Tensor]
}

/// HDF5 checkpoints (DESIGN.md §8, Docs/checkpoints.md).
///
/// Root: one float32 dataset per `state_dict` key in PyTorch's shape (`num_batches_tracked` is a
/// float32 scalar), so `h5py` + `torch.from_numpy` loads them into the PyTorch module directly.
/// Group `optimizer`: `step` (int64), `lr` (float64), and groups `exp_avg` and `exp_avg_sq` with one
/// dataset per parameter name. Root attributes: `format` = `dsan-checkpoint`, `format_version`,
/// `model_config` (JSON), and, from the trainer, `training_state` (JSON: epoch, step, sampler and
/// random state) and `configuration` (the resolved run configuration). Files are written under a
/// temporary name and renamed, so a killed writer never leaves a truncated checkpoint.
public enum Checkpoint {
    public static let format = "dsan-checkpoint"
    public static let version: Int64 = 1

    /// Every `state_dict` entry of the model: parameters, running statistics and
    /// `num_batches_tracked`, each as a tensor (the last as a fresh one-element tensor).
    public static func stateDict(_ model: ResNet3D) -> [(String, Tensor)] {
        var entries: [(String, Tensor)] = model.registry.parameters.map { ($0.name, $0.value) }
        entries += model.registry.buffers.map { ($0.name, $0.value) }
        for (name, bn) in model.registry.batchNorms {
            entries.append((name + ".num_batches_tracked", Tensor(shape: [], values: [Float(bn.numBatchesTracked)])))
        }
        return entries
    }

    /// Writes `model` (and optionally the optimizer and trainer state) to `path`, atomically.
    public static func save(_ model: ResNet3D, optimizer: Adam? = nil, trainingState: String? = nil,
                            configuration: String? = nil, to path: String) throws {
        let temporary = path + ".partial"
        do {
            try writeState(model, optimizer: optimizer, trainingState: trainingState, configuration: configuration, to: temporary)
        } catch {
            unlink(temporary)
            let text = "\(error)"
            if text.contains("errno = \(ENOSPC)") || text.contains("No space left on device") {
                throw CheckpointError(file: path, problems: [
                    "the file system is full (No space left on device) while writing \(temporary); "
                    + (FileManager.default.fileExists(atPath: path) ? "\(path) is unchanged" : "nothing was written")
                    + ". Free space or choose another --out, then continue with --resume"], writing: true)
            }
            throw error
        }
        if rename(temporary, path) != 0 {
            throw CheckpointError(file: path, problems: ["cannot rename \(temporary) into place: \(String(cString: strerror(errno)))"], writing: true)
        }
    }

    /// The body of `save`: every dataset and attribute into a new file at `path`.
    private static func writeState(_ model: ResNet3D, optimizer: Adam?, trainingState: String?,
                                   configuration: String?, to temporary: String) throws {
        do {
            let file = try File(creating: temporary)
            try file.setAttribute("format", format)
            try file.setAttribute("format_version", version)
            let config = try JSONEncoder().encode(model.config)
            try file.setAttribute("model_config", String(decoding: config, as: UTF8.self))
            if let trainingState { try file.setAttribute("training_state", trainingState) }
            if let configuration { try file.setAttribute("configuration", configuration) }
            for (name, tensor) in stateDict(model) {
                try file.createDataset(name, type: .float32, shape: tensor.shape)
                    .write(UnsafeBufferPointer(tensor.buffer), start: tensor.shape.map { _ in 0 }, count: tensor.shape)
            }
            if let optimizer {
                let group = try file.createGroup("optimizer")
                try group.createDataset("step", type: .int64, shape: []).write([Int64(optimizer.stepCount)])
                try group.createDataset("lr", type: .float64, shape: []).write([optimizer.learningRate])
                let m = try group.createGroup("exp_avg"), v = try group.createGroup("exp_avg_sq")
                for (k, p) in model.registry.parameters.enumerated() {
                    for (g, t) in [(m, optimizer.firstMoments[k]), (v, optimizer.secondMoments[k])] {
                        try g.createDataset(p.name, type: .float32, shape: t.shape)
                            .write(UnsafeBufferPointer(t.buffer), start: t.shape.map { _ in 0 }, count: t.shape)
                    }
                }
            }
            try file.flush()
        }
    }

    /// The model configuration stored in a checkpoint; for a plain `state_dict` file (as a
    /// PyTorch user writes with h5py) it is inferred: width from `conv1.weight`, blocks per layer
    /// from the `layerL.B.` names, attention as `attention` says (it has no weights of its own).
    public static func modelConfig(at path: String, attention: Bool = true) throws -> ModelConfig {
        let file = try File(opening: path)
        if try file.hasAttribute("model_config") {
            let text = try file.stringAttribute("model_config")
            do { return try JSONDecoder().decode(ModelConfig.self, from: Data(text.utf8)) } catch {
                throw CheckpointError(file: path, problems: ["attribute `model_config` is not valid: \(error)"])
            }
        }
        guard try file.contains("conv1.weight") else {
            throw CheckpointError(file: path, problems: ["no `conv1.weight` dataset: this is not a dsan or PyTorch ResNet3D checkpoint"])
        }
        let width = try file.dataset("conv1.weight").shape.first ?? 0
        let names = try file.childNames()
        let blocks = (1...4).map { l in
            Set(names.compactMap { n -> Int? in
                let parts = n.split(separator: ".")
                return parts.count > 2 && parts[0] == "layer\(l)" ? Int(parts[1]) : nil
            }).count
        }
        return ModelConfig(width: width, blocks: blocks, attention: attention)
    }

    /// Loads every `state_dict` entry into `model` (and the optimizer state when both are given),
    /// checking every name and shape first and listing every missing, unexpected or mis-shaped
    /// entry in one error, then every tensor that holds a NaN or an infinity (weights, buffers
    /// and optimizer moments). Returns the `training_state` attribute when present. After an
    /// error the model's values are unspecified.
    @discardableResult
    public static func load(into model: ResNet3D, optimizer: Adam? = nil, from path: String) throws -> String? {
        let file = try File(opening: path)
        let expected = stateDict(model)
        let present = Set(try file.childNames().filter { $0 != "optimizer" })
        var problems: [String] = []
        var datasets: [(String, Tensor, Dataset)] = []
        for (name, tensor) in expected {
            guard present.contains(name) else {
                problems.append("missing `\(name)`")
                continue
            }
            let d = try file.dataset(name)
            // A scalar may be stored as shape [] or [1].
            let shapeOK = d.shape == tensor.shape || (tensor.shape.isEmpty && d.shape == [1])
            if !shapeOK {
                problems.append("`\(name)` has shape \(d.shape), the model expects \(tensor.shape)")
            } else if d.elementType != .float32 {
                problems.append("`\(name)` is \(d.elementType), expected float32")
            } else {
                datasets.append((name, tensor, d))
            }
        }
        let known = Set(expected.map(\.0))
        for name in present.sorted() where !known.contains(name) {
            problems.append("unexpected `\(name)`")
        }
        if !problems.isEmpty { throw CheckpointError(file: path, problems: problems) }
        for (name, tensor, d) in datasets {
            if name.hasSuffix(".num_batches_tracked") {
                let v = try d.read(as: Float.self)
                if let bad = nonFinite(v, name) { problems.append(bad); continue }
                let bnName = String(name.dropLast(".num_batches_tracked".count))
                model.registry.batchNorms.first { $0.name == bnName }!.layer.numBatchesTracked = Int(v[0])
            } else {
                try d.read(into: tensor.buffer, start: d.shape.map { _ in 0 }, count: d.shape)
                if let bad = nonFinite(UnsafeBufferPointer(tensor.buffer), name) { problems.append(bad) }
            }
        }
        // A NaN or infinite weight makes every prediction NaN or constant: refuse it here, for
        // `predict`, `--init` and `--resume` alike (Docs/input-rules.md).
        if !problems.isEmpty {
            throw CheckpointError(file: path, problems: problems + ["a checkpoint must hold finite values only; use an earlier checkpoint (see Docs/input-rules.md)"])
        }
        if let optimizer {
            guard try file.contains("optimizer") else {
                throw CheckpointError(file: path, problems: ["no `optimizer` group: the checkpoint holds weights only and cannot resume training"])
            }
            let group = try file.group("optimizer")
            optimizer.stepCount = Int(try group.dataset("step").read(as: Int64.self)[0])
            optimizer.learningRate = try group.dataset("lr").read(as: Double.self)[0]
            let m = try group.group("exp_avg"), v = try group.group("exp_avg_sq")
            for (k, p) in model.registry.parameters.enumerated() {
                for (g, t) in [(m, optimizer.firstMoments[k]), (v, optimizer.secondMoments[k])] {
                    let d = try g.dataset(p.name)
                    guard d.shape == t.shape else {
                        throw CheckpointError(file: path, problems: ["optimizer state `\(g.path)/\(p.name)` has shape \(d.shape), expected \(t.shape)"])
                    }
                    try d.read(into: t.buffer, start: d.shape.map { _ in 0 }, count: d.shape)
                    if let bad = nonFinite(UnsafeBufferPointer(t.buffer), "\(g.path)/\(p.name)") { problems.append(bad) }
                }
            }
            if !problems.isEmpty {
                throw CheckpointError(file: path, problems: problems + ["a checkpoint must hold finite values only; use an earlier checkpoint (see Docs/input-rules.md)"])
            }
        }
        return try file.hasAttribute("training_state") ? try file.stringAttribute("training_state") : nil
    }

    /// "`NAME` holds K non-finite value(s), the first nan at index I" or nil when all are finite.
    static func nonFinite<C: Collection>(_ values: C, _ name: String) -> String? where C.Element == Float, C.Index == Int {
        var count = 0, first: (index: Int, value: Float)?
        for i in values.indices where !values[i].isFinite {
            count += 1
            if first == nil { first = (i - values.startIndex, values[i]) }
        }
        guard let first else { return nil }
        return "`\(name)` holds \(count) non-finite value(s), the first \(first.value) at index \(first.index)"
    }
}

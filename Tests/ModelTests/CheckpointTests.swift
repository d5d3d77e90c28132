import Foundation
import HDF5
import Testing
@testable import Model
import NN
import NumericalTesting

func temporaryPath(_ name: String) throws -> String {
    (try Scratch.directory("ckpt") as NSString).appendingPathComponent(name)
}

@Suite struct CheckpointTests {
    /// A trained-looking tiny model: one training forward moves the BN running statistics.
    func model(seed: UInt64) -> (ResNet3D, Tensor) {
        let m = ResNet3D(config: ModelConfig(width: 2), seed: seed)
        let x = Tensor(zeros: [2, 1, 16, 20, 18])
        var rng = SplitMix64(seed: 99)
        x.fillUniform(0, 1, rng: &rng)
        m.forward(x)
        return (m, x)
    }

    func probabilities(_ m: ResNet3D, _ x: Tensor) -> [Float] {
        m.training = false
        defer { m.training = true }
        return m.forward(x).array.map { 1 / (1 + expf(-$0)) }
    }

    @Test func saveLoadPredictGivesIdenticalProbabilities() throws {
        let path = try temporaryPath("model.h5")
        let (a, x) = model(seed: 1)
        let optimizer = Adam(parameters: a.registry.parameters.map { ($0.value, $0.gradient) })
        for p in a.registry.parameters { p.gradient.fill(0.01) }
        optimizer.step()
        try Checkpoint.save(a, optimizer: optimizer, trainingState: #"{"epoch":3}"#, configuration: "lr: 0.0002", to: path)
        #expect(!FileManager.default.fileExists(atPath: path + ".partial"))

        let config = try Checkpoint.modelConfig(at: path)
        #expect(config == a.config)
        let b = ResNet3D(config: config, seed: 2)
        let optimizer2 = Adam(parameters: b.registry.parameters.map { ($0.value, $0.gradient) })
        let state = try Checkpoint.load(into: b, optimizer: optimizer2, from: path)
        #expect(state == #"{"epoch":3}"#)
        for ((na, ta), (nb, tb)) in zip(Checkpoint.stateDict(a), Checkpoint.stateDict(b)) {
            #expect(na == nb && ta.array == tb.array, "\(na)")
        }
        #expect(optimizer2.stepCount == 1)
        #expect(zip(optimizer.firstMoments, optimizer2.firstMoments).allSatisfy { $0.array == $1.array })
        #expect(zip(optimizer.secondMoments, optimizer2.secondMoments).allSatisfy { $0.array == $1.array })
        #expect(probabilities(a, x) == probabilities(b, x))
    }

    @Test func plainStateDictFileLoadsForPrediction() throws {
        // What a PyTorch user writes: `for k, v in sd.items(): f[k] = v.float().numpy()`.
        let path = try temporaryPath("plain.h5")
        let (a, x) = model(seed: 3)
        do {
            let file = try File(creating: path)
            for (name, t) in Checkpoint.stateDict(a) {
                try file.createDataset(name, type: .float32, shape: t.shape).write(t.array)
            }
        }
        let config = try Checkpoint.modelConfig(at: path)
        #expect(config == ModelConfig(width: 2, blocks: [3, 4, 6, 3], attention: true))
        let b = ResNet3D(config: config, seed: 4)
        try Checkpoint.load(into: b, from: path)
        #expect(probabilities(a, x) == probabilities(b, x))
        // Weights only: resuming training from it is refused with a reason.
        let optimizer = Adam(parameters: b.registry.parameters.map { ($0.value, $0.gradient) })
        let error = #expect(throws: CheckpointError.self) { try Checkpoint.load(into: b, optimizer: optimizer, from: path) }
        #expect(error?.description.contains("holds weights only and cannot resume training") == true)
    }

    @Test func renamedAndReshapedTensorsAreAllNamed() throws {
        let path = try temporaryPath("bad.h5")
        let (a, _) = model(seed: 5)
        do {
            let file = try File(creating: path)
            for (name, t) in Checkpoint.stateDict(a) {
                switch name {
                case "layer2.0.conv1.weight":   // renamed, as a typo in a conversion script would
                    try file.createDataset("layer2.0.conv_1.weight", type: .float32, shape: t.shape).write(t.array)
                case "fc.weight":               // reshaped
                    try file.createDataset(name, type: .float32, shape: [t.count]).write(t.array)
                default:
                    try file.createDataset(name, type: .float32, shape: t.shape).write(t.array)
                }
            }
        }
        let b = ResNet3D(config: a.config, seed: 6)
        let error = #expect(throws: CheckpointError.self) { try Checkpoint.load(into: b, from: path) }
        #expect(error?.description == "\(path): cannot load checkpoint: missing `layer2.0.conv1.weight`; `fc.weight` has shape [16], the model expects [1, 16]; unexpected `layer2.0.conv_1.weight`")
    }
}

@Suite struct NonFiniteCheckpointTests {
    /// A checkpoint with one NaN weight (or an infinite optimizer moment) is refused naming the
    /// tensor, by the loader that `predict`, `--init` and `--resume` share (issue 16).
    @Test func aNaNWeightIsRefusedByName() throws {
        let path = try temporaryPath("nan.h5")
        let a = ResNet3D(config: ModelConfig(width: 2), seed: 1)
        let optimizer = Adam(parameters: a.registry.parameters.map { ($0.value, $0.gradient) })
        a.registry.parameters.first { $0.name == "layer2.0.conv1.weight" }!.value.buffer[5] = .nan
        try Checkpoint.save(a, optimizer: optimizer, to: path)
        let b = ResNet3D(config: ModelConfig(width: 2), seed: 2)
        do {
            try Checkpoint.load(into: b, from: path)
            Issue.record("a NaN weight was loaded")
        } catch let error as CheckpointError {
            #expect(error.description == "\(path): cannot load checkpoint: `layer2.0.conv1.weight` holds 1 non-finite value(s), the first nan at index 5; a checkpoint must hold finite values only; use an earlier checkpoint (see Docs/input-rules.md)")
        }

        let good = try temporaryPath("inf-moment.h5")
        let c = ResNet3D(config: ModelConfig(width: 2), seed: 1)
        let adam = Adam(parameters: c.registry.parameters.map { ($0.value, $0.gradient) })
        adam.secondMoments[0].buffer[0] = .infinity
        try Checkpoint.save(c, optimizer: adam, to: good)
        let d = ResNet3D(config: ModelConfig(width: 2), seed: 2)
        try Checkpoint.load(into: d, from: good)   // weights only: the moments are not read
        let adam2 = Adam(parameters: d.registry.parameters.map { ($0.value, $0.gradient) })
        #expect(throws: CheckpointError.self) { try Checkpoint.load(into: d, optimizer: adam2, from: good) }
    }
}

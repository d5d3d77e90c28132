import NumericalTesting
import Testing
@testable import Model
import NN

/// A tiny ResNet34-shaped network (all 16 blocks, width 2) and a two-case batch: one COVID-19
/// case with an infection mask, one CAP case.
struct TinyProblem {
    let model: ResNet3D
    let input: Tensor
    let masks: Tensor
    let labels: [Float] = [1, 0]
    let objective = Objective(lambda: 0.5)
    /// Check λ·L_ex alone (its gradient must never reach fc.weight).
    var attentionOnly = false

    init(width: Int = 2, size: (Int, Int, Int) = (16, 32, 32), seed: UInt64 = 11) {
        model = ResNet3D(config: ModelConfig(width: width), seed: seed)
        let (d, h, w) = size
        input = Tensor(zeros: [2, 1, d, h, w])
        var rng = SplitMix64(seed: seed + 1)
        input.fillUniform(0, 1, rng: &rng)
        masks = Tensor(zeros: [2, 1, d, h, w])
        // A lesion in the first case's upper-left quadrant.
        for z in 2..<(d / 2) { for y in 3..<(h / 2) { for x in 4..<(w / 2) { masks[0, 0, z, y, x] = 1 } } }
        // A positive fc weight keeps the class activation map alive (A = ReLU(Σ w_c f_c) > 0 with
        // f ≥ 0), so the attention loss sends gradient everywhere.
        var wrng = SplitMix64(seed: seed + 2)
        model.fcWeight.fillUniform(0.05, 0.5, rng: &wrng)
    }

    /// L for the current parameters (fresh forward; BN running buffers are restored so repeated
    /// evaluations see the same state).
    func loss() -> Double {
        let saved = model.batchNorms.map { ($0.runningMean.copy(), $0.runningVar.copy(), $0.numBatchesTracked) }
        defer {
            for (bn, s) in zip(model.batchNorms, saved) {
                bn.runningMean.assign(s.0); bn.runningVar.assign(s.1); bn.numBatchesTracked = s.2
            }
        }
        model.forward(input)
        let l = try! objective.evaluate(model: model, labels: labels, masks: masks, sum: { $0 })
        return attentionOnly ? objective.lambda * l.attention : l.total
    }

    /// Analytic gradients of L into every parameter gradient.
    func gradients() -> StepLosses {
        model.zeroGradients()
        let saved = model.batchNorms.map { ($0.runningMean.copy(), $0.runningVar.copy(), $0.numBatchesTracked) }
        model.forward(input)
        let losses = try! objective.evaluate(model: model, labels: labels, masks: masks, sum: { $0 })
        if attentionOnly {
            model.backward(dLogits: Tensor(zeros: [labels.count, 1]), dAttention: objective.dAttention)
        } else {
            objective.backward(model: model)
        }
        for (bn, s) in zip(model.batchNorms, saved) {
            bn.runningMean.assign(s.0); bn.runningVar.assign(s.1); bn.numBatchesTracked = s.2
        }
        return losses
    }
}

@Suite struct ResNetShapeTests {
    @Test func featureMapIsOneSixteenthOfTheInput() {
        let model = ResNet3D(config: .paper, seed: 0)
        #expect(model.featureShape(for: Shape5(n: 1, c: 1, d: 138, h: 256, w: 256)) == Shape5(n: 1, c: 512, d: 9, h: 16, w: 16))
        #expect(model.featureShape(for: Shape5(n: 1, c: 1, d: 64, h: 128, w: 128)) == Shape5(n: 1, c: 512, d: 4, h: 8, w: 8))
        #expect(model.featureShape(for: Shape5(n: 2, c: 1, d: 40, h: 70, w: 90)) == Shape5(n: 2, c: 512, d: 3, h: 5, w: 6))
    }

    @Test func stateDictNamesAndLayoutsArePyTorchs() {
        let model = ResNet3D(config: .paper, seed: 0)
        let names = model.registry.parameters.map(\.name)
        #expect(names.count == 1 + 2 + (3 + 4 + 6 + 3) * 6 + 3 * 3 + 1)
        #expect(names.prefix(3) == ["conv1.weight", "bn1.weight", "bn1.bias"])
        #expect(names.contains("layer2.0.downsample.0.weight") && names.contains("layer2.0.downsample.1.bias"))
        #expect(!names.contains("layer1.0.downsample.0.weight") && !names.contains("layer4.1.downsample.0.weight"))
        // layer4 keeps stride 1 but doubles the channels, so its first block has a shortcut conv.
        #expect(names.contains("layer4.0.downsample.0.weight"))
        #expect(names.contains("layer3.5.conv2.weight") && names.last == "fc.weight")
        let shapes = Dictionary(uniqueKeysWithValues: model.registry.parameters.map { ($0.name, $0.value.shape) })
        #expect(shapes["conv1.weight"] == [64, 1, 7, 7, 7])
        #expect(shapes["layer2.0.downsample.0.weight"] == [128, 64, 1, 1, 1])
        #expect(shapes["layer4.0.conv1.weight"] == [512, 256, 3, 3, 3])
        #expect(shapes["fc.weight"] == [1, 512])
        #expect(model.layers[3][0].downsample?.geometry.stride == Size3(1))
        let buffers = model.registry.buffers.map(\.name)
        #expect(buffers.contains("layer1.2.bn2.running_var") && buffers.first == "bn1.running_mean")
        let count = model.registry.parameters.reduce(0) { $0 + $1.value.count }
        #expect(count == 63_470_144, "ResNet3D-34 parameter count (computed by hand from §1)")
    }

    @Test func oddSizeForwardGivesLogitsAndAttentionAtInputSize() {
        let p = TinyProblem(size: (17, 33, 21))
        let logits = p.model.forward(p.input)
        #expect(logits.shape == [2, 1])
        #expect(p.model.attentionMap.shape == [2, 1, 17, 33, 21])
        #expect(p.model.featureMap.shape == [2, 16, 2, 3, 2])
        #expect(p.model.attentionMap.array.allSatisfy { $0 >= 0 && $0 <= 1 })
    }
}

@Suite struct ResNetGradientTests {
    @Test(arguments: [false, true])
    func wholeNetworkGradientMatchesFiniteDifferences(attentionOnly: Bool) {
        var p = TinyProblem()
        p.attentionOnly = attentionOnly
        let losses = p.gradients()
        #expect(losses.attention > 0 && losses.covidCases == 1 && losses.globalBatch == 2)
        // The class activation map is alive, so the attention loss sends gradient into layer4.
        #expect(p.model.attention.cam.array.contains { $0 > 0 })
        // Each parameter tensor is checked at its two largest gradient entries and one random
        // entry, by central differences with step 3e-4; the denominator of the relative error is
        // floored at 10 % of the tensor's largest gradient and at 2e-2, so small entries are
        // compared absolutely: float32 rounding makes L itself noisy at about 2e-6 (measured:
        // one-sided slopes of a 0.015 entry jump by ±0.02 at step 1e-4), which a difference
        // quotient turns into ~1e-2 of noise. The loss is far from linear at this scale: T(A) = σ(100 (Â − 0.4))
        // is steep, batch norm sees 8 values per channel in layers 3–4, and the ~10⁴ ReLU and
        // max-pool kinks mean a step of any size flips a few of them, which perturbs single
        // entries by several per cent, and a batch-norm weight that scales 4096 stem values
        // (whose max-pool windows and ReLUs all move) by tens of per cent. A wrong backward is
        // wrong on most entries by O(1), so the test bounds the distribution: median < 1e-2,
        // 90th percentile < 8e-2, and at least 97 % of entries < 0.25. (Measured: median 3e-3,
        // p90 3–5e-2, one or two stem entries beyond 0.25.)
        // Measured by hand: the largest stem entry's error shrinks from 0.74 at step 1e-2 to
        // 0.007 at 1e-4, as it does for a correct gradient meeting kinks.
        var errors: [(Double, String)] = []
        for (k, param) in p.model.registry.parameters.enumerated() {
            let analytic = param.gradient.copy()
            let magnitudes = analytic.array.map { abs($0) }
            let peak = Double(magnitudes.max() ?? 0)
            if attentionOnly && param.name == "fc.weight" {
                #expect(peak == 0, "the attention loss must not reach fc.weight")
                continue
            }
            if peak == 0 { continue }   // e.g. kernel taps that only ever see padding
            let largest = magnitudes.indices.sorted { magnitudes[$0] > magnitudes[$1] }.prefix(2)
            for i in Array(largest) + sampleIndices(analytic.count, 1, seed: UInt64(k)) {
                let r = checkGradient(param.value, analytic: analytic, indices: [i], eps: 3e-4,
                                      scale: max(2e-2, 0.1 * peak)) { p.loss() }
                errors.append((r.worstRelativeError, "\(param.name): \(r)"))
            }
        }
        errors.sort { $0.0 < $1.0 }
        let median = errors[errors.count / 2].0, p90 = errors[errors.count * 9 / 10].0
        #expect(errors.count >= 320, "only \(errors.count) entries had a gradient")
        #expect(median < 1e-2, "median relative error \(median)")
        #expect(p90 < 8e-2, "90th percentile \(p90): \(errors[errors.count * 9 / 10].1)")
        let outliers = errors.filter { $0.0 >= 0.25 }
        #expect(outliers.count * 100 <= errors.count * 3, "\(outliers.count) entries off by ≥ 25 %: \(outliers.map(\.1))")
        print("whole-network gradient check (attention only: \(attentionOnly)): \(errors.count) entries, median \(median), p90 \(p90), worst \(errors.last!.1)")
    }

    /// `zeroGradients` only marks the gradients (`Tensor.zeroLazily`): the backward writes or
    /// resolves every one of them, so a step on top of last step's gradients gives what a step on
    /// gradients really zeroed gives, and a second backward without zeroing adds to the first (as
    /// micro-batches do), as it does onto zeros really written. At 64³ with width 4 every kind of weight-gradient writer runs: layer1's
    /// and layer2's Winograd dW through OpenBLAS, layers 3–4's fused kernel (8 tiles per sample),
    /// the direct convs (stem, strided, downsample), batch norm and fc. Poisoned marks (NaN) make
    /// a writer that adds into a mark it did not take show.
    @Test func lazyZeroingGivesTheGradientsOfAnEagerOne() {
        let saved = Tensor.poisonsLazyZeros
        defer { Tensor.poisonsLazyZeros = saved }
        Tensor.poisonsLazyZeros = true
        let p = TinyProblem(width: 4, size: (64, 64, 64))
        let parameters = p.model.registry.parameters
        _ = p.gradients()                           // last step's gradients, left in place
        _ = p.gradients()                           // lazily zeroed, then written over them
        #expect(parameters.allSatisfy { !$0.gradient.isLazilyZero })
        let lazy = parameters.map(\.gradient.array)
        for (g, p) in zip(lazy, parameters) { #expect(g.allSatisfy { $0.isFinite }, "\(p.name)") }
        #expect(lazy.contains { $0.contains { $0 != 0 } })

        p.model.zeroGradients()
        p.model.resolveGradients()                  // zeros written first, then added onto
        #expect(parameters.allSatisfy { $0.gradient.array.allSatisfy { $0 == 0 } })
        let stats = p.model.batchNorms.map { ($0.runningMean.copy(), $0.runningVar.copy(), $0.numBatchesTracked) }
        func backward() {
            p.model.forward(p.input)
            _ = try! p.objective.evaluate(model: p.model, labels: p.labels, masks: p.masks, sum: { $0 })
            p.objective.backward(model: p.model)
            for (bn, s) in zip(p.model.batchNorms, stats) {
                bn.runningMean.assign(s.0); bn.runningVar.assign(s.1); bn.numBatchesTracked = s.2
            }
        }
        backward()
        for (k, p) in parameters.enumerated() where p.gradient.array != lazy[k] { Issue.record("\(p.name) differs") }
        backward()                                  // no zeroing: the second pass adds
        let eagerTwice = parameters.map(\.gradient.array)
        p.model.zeroGradients()
        backward()
        backward()
        for (k, p) in parameters.enumerated() where p.gradient.array != eagerTwice[k] {
            Issue.record("\(p.name): two passes after a lazy zero differ from two after real zeros")
        }
        #expect(zip(eagerTwice, lazy).contains { $0 != $1 })   // the second pass did add
    }

    @Test func attentionGradientNeverReachesFCWeight() {
        let p = TinyProblem()
        p.model.zeroGradients()
        p.model.forward(p.input)
        _ = try! p.objective.evaluate(model: p.model, labels: p.labels, masks: p.masks, sum: { $0 })
        // Attention loss only.
        let zero = Tensor(zeros: [2, 1])
        p.model.backward(dLogits: zero, dAttention: p.objective.dAttention)
        #expect(p.model.fcGradient.array.allSatisfy { $0 == 0 })
        #expect(p.model.registry.parameters.first { $0.name == "layer4.2.conv2.weight" }!.gradient.array.contains { $0 != 0 })
        // Classification loss only: reaches fc.weight.
        p.model.zeroGradients()
        p.model.forward(p.input)
        _ = try! p.objective.evaluate(model: p.model, labels: p.labels, masks: p.masks, sum: { $0 })
        p.model.backward(dLogits: p.objective.dLogits, dAttention: nil)
        #expect(p.model.fcGradient.array.contains { $0 != 0 })
    }
}

@Suite struct InferencePathTests {
    /// Eval mode runs through shared buffers; it must compute exactly what the layer-by-layer
    /// path with each layer's own buffers computes.
    @Test func sharedBufferInferenceEqualsLayerByLayerEval() {
        let p = TinyProblem(size: (17, 33, 21))
        p.model.forward(p.input)          // training mode: running statistics move
        p.model.training = false
        let fast = p.model.forward(p.input, explain: true).array
        let fastMap = p.model.attentionMap.array

        let m = p.model
        var s = m.stem.allocate(input: p.input.shape5)
        m.stem.forward(p.input, workspace: m.workspace)
        s = m.pool.outputShape(for: s)
        var x = Tensor(zeros: s.dims)
        maxPool3dForward(y: x, indices: IndexTensor(zeros: s.dims), x: m.stem.output, geometry: m.pool)
        for blocks in m.layers {
            for b in blocks {
                b.allocate(input: x.shape5)
                b.forward(x, workspace: m.workspace)
                x = b.output
            }
        }
        let g = Tensor(zeros: [2, m.featureChannels]), logits = Tensor(zeros: [2, 1])
        globalAveragePoolForward(y: g, x: x)
        linearForward(y: logits, x: g, weight: m.fcWeight)
        #expect(fast == logits.array)
        #expect(m.featureMap.array == x.array)
        #expect(fastMap.count == 2 * 17 * 33 * 21)

        // Back to training: the training path works again after the eval-mode forward.
        m.training = true
        m.forward(p.input)
        #expect(m.logits.shape == [2, 1])
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NumericalTesting
import Testing
@testable import NN

/// Adam against a scalar Double transcription of torch.optim.Adam, checkpoint round trips, and the
/// step learning-rate schedule.
@Suite struct OptimizerTests {
    /// Parameter sizes: several small tensors around one larger than a parallel chunk (65 536), so
    /// chunk boundaries fall inside a parameter and between parameters.
    private let sizes = [3, 70_001, 1, 512, 27]

    private func makeParameters(seed: UInt64) -> [(parameter: Tensor, gradient: Tensor)] {
        var rng = SplitMix64(seed: seed)
        return sizes.map { n in
            let p = Tensor(zeros: [n])
            p.fillNormal(std: 1, rng: &rng)
            return (p, Tensor(zeros: [n]))
        }
    }

    private func fillGradients(_ params: [(parameter: Tensor, gradient: Tensor)], step: Int) {
        var rng = SplitMix64(seed: 1000 + UInt64(step))
        for (_, g) in params { g.fillNormal(std: 0.1, rng: &rng) }
    }

    @Test func adamMatchesScalarPyTorchFormulas() {
        let params = makeParameters(seed: 1)
        let lr = 1e-2, wd = 1e-4, b1 = 0.9, b2 = 0.999, eps = 1e-8
        let adam = Adam(parameters: params, learningRate: lr, weightDecay: wd)
        // The reference: torch.optim.Adam's single-tensor update, element by element in Double.
        var theta = params.map { $0.parameter.array.map(Double.init) }
        var m = theta.map { [Double](repeating: 0, count: $0.count) }, v = m
        for t in 1...6 {
            fillGradients(params, step: t)
            adam.step()
            for k in 0..<params.count {
                for i in 0..<theta[k].count {
                    let g = Double(params[k].gradient.data[i]) + wd * theta[k][i]
                    m[k][i] = b1 * m[k][i] + (1 - b1) * g
                    v[k][i] = b2 * v[k][i] + (1 - b2) * g * g
                    let mHat = m[k][i] / (1 - pow(b1, Double(t))), vHat = v[k][i] / (1 - pow(b2, Double(t)))
                    theta[k][i] -= lr * mHat / (vHat.squareRoot() + eps)
                }
            }
        }
        #expect(adam.stepCount == 6)
        // |θ| ≲ 4, six steps of size ≈ lr: float rounding of θ (≈ 2e-7 each) and of the update.
        var worstTheta: Double = 0, worstM: Double = 0, worstV: Double = 0
        for k in 0..<params.count {
            for i in 0..<theta[k].count {
                worstTheta = max(worstTheta, abs(Double(params[k].parameter.data[i]) - theta[k][i]))
                worstM = max(worstM, abs(Double(adam.firstMoments[k].data[i]) - m[k][i]))
                worstV = max(worstV, abs(Double(adam.secondMoments[k].data[i]) - v[k][i]) / max(v[k][i], 1e-12))
            }
        }
        #expect(worstTheta < 2e-6, "θ")
        #expect(worstM < 1e-7, "m")
        #expect(worstV < 1e-5, "v (relative)")
    }

    /// The update is split into 262 144-entry blocks that the workers take as they finish: over
    /// parameters whose boundaries fall inside and at the blocks' edges, 1, 2 and 3 threads give
    /// the same bits of θ, m and v after three steps, and the first step moved every entry.
    @Test func adamGivesTheSameBitsOnAnyThreadCount() {
        let sizes = [3, 300_001, 1, 224_287, 27, 70_000]   // 3 + 300 001 + 1 + 224 287 = 524 292: past 2 blocks
        func run(threads: Int) -> [[Float]] {
            var rng = SplitMix64(seed: 9)
            let params = sizes.map { n -> (parameter: Tensor, gradient: Tensor) in
                let p = Tensor(zeros: [n])
                p.fillNormal(std: 1, rng: &rng)
                return (p, Tensor(zeros: [n]))
            }
            let adam = Adam(parameters: params, learningRate: 1e-2, weightDecay: 1e-4)
            let initial = params.map(\.parameter.array)
            var afterOne: [[Float]] = []
            ThreadSettings.with(parallel: threads, blas: 1) {
                for t in 1...3 {
                    var g = SplitMix64(seed: 100 + UInt64(t))
                    for (_, gradient) in params { gradient.fillNormal(std: 0.1, rng: &g) }
                    adam.step()
                    if t == 1 { afterOne = params.map(\.parameter.array) }
                }
            }
            // The first step moves every entry by about the learning rate (m̂/√v̂ = ±1), so an entry
            // that a block's span missed would still hold its first value.
            let unchanged = zip(initial, afterOne).enumerated().flatMap { k, pair in
                zip(pair.0, pair.1).enumerated().filter { $0.element.0 == $0.element.1 }.map { [k, $0.offset] }
            }
            #expect(unchanged.isEmpty, "\(threads) threads: \(unchanged.count) unchanged, first \(unchanged.prefix(5))")
            return params.map(\.parameter.array) + adam.firstMoments.map(\.array) + adam.secondMoments.map(\.array)
        }
        let one = run(threads: 1)
        for threads in [2, 3] {
            let many = run(threads: threads)
            #expect(zip(one, many).allSatisfy { $0.map(\.bitPattern) == $1.map(\.bitPattern) }, "\(threads) threads")
        }
    }

    @Test func gradientsAreNotModified() {
        let params = makeParameters(seed: 2)
        fillGradients(params, step: 1)
        let before = params.map { $0.gradient.array }
        Adam(parameters: params).step()
        #expect(params.map { $0.gradient.array } == before)
    }

    /// The scan before each step reports the first non-finite gradient entry in parameter order,
    /// whichever fixed block and worker meets it first: across the 65 536-entry blocks and the
    /// parameter boundaries, on 1, 2 and 3 threads; nil when all are finite.
    @Test func firstNonFiniteGradientIsTheFirstInParameterOrder() {
        let params = makeParameters(seed: 4)
        fillGradients(params, step: 1)
        let adam = Adam(parameters: params)
        for threads in [1, 2, 3] {
            ThreadSettings.with(parallel: threads, blas: 1) {
                #expect(adam.firstNonFiniteGradient() == nil)
                params[4].gradient.data[26] = -.infinity            // last entry of the last parameter
                #expect(adam.firstNonFiniteGradient().map { [$0.parameter, $0.index] } == [4, 26])
                params[1].gradient.data[70_000] = .nan              // in the second block
                #expect(adam.firstNonFiniteGradient().map { [$0.parameter, $0.index] } == [1, 70_000])
                params[1].gradient.data[65_532] = .infinity         // the block boundary falls at 65 533
                let bad = adam.firstNonFiniteGradient()
                #expect(bad?.parameter == 1 && bad?.index == 65_532 && bad?.value == .infinity)
                params[2].gradient.data[0] = .nan                   // a later parameter does not win
                #expect(adam.firstNonFiniteGradient().map { [$0.parameter, $0.index] } == [1, 65_532])
                fillGradients(params, step: 1)
            }
        }
    }

    /// Restoring (stepCount, m, v) and the parameters into a fresh optimizer continues bit for bit.
    @Test func stateRoundTripContinuesIdentically() {
        let params = makeParameters(seed: 3), copies = makeParameters(seed: 3)
        let adam = Adam(parameters: params, learningRate: 1e-3)
        for t in 1...3 { fillGradients(params, step: t); adam.step() }

        let restored = Adam(parameters: copies, learningRate: 1e-3)
        restored.stepCount = adam.stepCount
        for k in 0..<params.count {
            copies[k].parameter.assign(params[k].parameter)
            restored.firstMoments[k].assign(adam.firstMoments[k])
            restored.secondMoments[k].assign(adam.secondMoments[k])
        }
        for t in 4...5 {
            fillGradients(params, step: t)
            fillGradients(copies, step: t)
            adam.step()
            restored.step()
        }
        for k in 0..<params.count { #expect(params[k].parameter.array == copies[k].parameter.array) }
    }

    @Test func stepScheduleDividesByTenEveryFiveEpochs() {
        let schedule = StepLRSchedule()  // base 2e-4, step 5, gamma 0.1
        let expected: [(Int, Double)] = [(0, 2e-4), (4, 2e-4), (5, 2e-5), (9, 2e-5), (10, 2e-6), (19, 2e-7)]
        for (epoch, lr) in expected {
            #expect(abs(schedule.learningRate(epoch: epoch) - lr) <= 1e-12 * lr, "epoch \(epoch)")
        }
        let custom = StepLRSchedule(baseLearningRate: 1, stepSize: 2, gamma: 0.5)
        #expect([0, 1, 2, 3, 4].map { custom.learningRate(epoch: $0) } == [1, 1, 0.5, 0.5, 0.25])
    }
}

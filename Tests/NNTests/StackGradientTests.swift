import NumericalTesting
import Testing
@testable import NN

// The engine composes: a tiny ResNet-like stack, written as one forward and one backward built
// from the public layer pairs (llm.c's `gpt2_forward` / `gpt2_backward` in miniature), and every
// gradient it produces checked against central finite differences of the same forward:
//
//     x [2, 1, 5, 7, 9]
//     → conv1 (1→3, k3 s1 p1) → BN (training) → ReLU          a [2, 3, 5, 7, 9]
//     → MaxPool3d (k3 s2 p1)                                   p [2, 3, 3, 4, 5]
//     → conv2 (3→3, k3 s1 p1) → + p (residual) → [ReLU]        s [2, 3, 3, 4, 5]
//     → global average pool → Linear (3→1, no bias)            z [2, 1]
//     → BCE on logits, mean over the batch                     L
//
// Checked, with and without the final ReLU: every parameter tensor and the input, each at up to
// 40 entries (`sampleIndices`, fixed seeds): 40 of conv1.weight's 81 and conv2.weight's 243, all
// of bn.weight, bn.bias (3 each) and fc.weight (3), 40 of the input's 630. (Every entry passes
// too; 40 keeps the test under 2 s in a debug build, where one forward takes about a millisecond.)
//
// Kinks. The ReLUs and the max-pool are piecewise; a finite difference that crosses a kink is
// wrong, not noisy. So every finite-difference evaluation compares the forward's *pattern* (both
// ReLU masks and the max-pool argmaxes) with the unperturbed one, and the test asserts that no
// evaluation changed it: each difference quotient is then taken on one smooth piece. With random
// data that guard fires (1 to ~100 crossings per seed at step 1e-3, measured over 12 seeds),
// so the data is built with margins instead (`placeKinksInHoles`), not the tolerance loosened.
//
// Tolerances (float32 forward, central differences with step 3e-3 in every tensor):
//   |analytic − numeric| / max(|analytic|, |numeric|, 0.1·peak) < 1e-2,
// peak being the tensor's largest analytic gradient, so entries below a tenth of it are compared
// absolutely. Why not smaller: L is computed in float32 and is noisy at ~1e-7 (the logits and the
// pooled features round at ~6e-8 relative), which a step of 3e-3 turns into ~2e-5 of noise on each
// quotient (measured on an input entry of 1.4e-3 away from kinks: the quotient is off by 60 % at
// step 1e-4, 4 % at 1e-3, 1.6 % at 3e-3 and 0.6 % at 1e-2; hence the floor). The margins of the
// data are sized for the step (see `placeKinksInHoles`).
// Measured worst errors at seed 4, over every entry of every tensor and both variants: input
// 4.6e-3, conv1.weight 3.4e-3, conv2.weight 4.9e-4, bn.bias 3.5e-4, bn.weight 2.0e-4, fc.weight
// 2.7e-5, with no kink crossed. The broken backward misses by 0.94–1.16 on everything below the
// residual join.

/// Central-difference step, in the units of each checked tensor.
private let step: Float = 3e-3
/// Largest accepted relative error of a correct backward.
private let gradientTolerance = 1e-2
/// The relative-error floor, as a fraction of each tensor's largest analytic gradient.
private let floorFraction: Double = 1e-1
/// Seed of the data (x's order, γ, conv2, fc). Seeds 3, 5, 6 and 8 put a final-ReLU input within
/// a step of 0 (the pattern guard reports 8–49 crossings); 1, 2, 4 and 7 do not.
private let dataSeed: UInt64 = 4
/// The broken backward must miss by at least this much (relative), far above `gradientTolerance`.
private let brokenThreshold = 0.2

/// The stack's parameters, gradients and cached activations. Shapes in the comments, N = 2.
private final class TinyStack {
    let conv1 = Conv3dGeometry(inChannels: 1, outChannels: 3, kernel: 3, stride: 1, padding: 1)
    let pool = MaxPool3dGeometry(kernel: 3, stride: 2, padding: 1)
    let conv2 = Conv3dGeometry(inChannels: 3, outChannels: 3, kernel: 3, stride: 1, padding: 1)
    let finalReLU: Bool
    let workspace = ConvWorkspace()

    // Parameters and their gradients (conv and linear gradients are ACCUMULATED by the backward).
    let w1 = Tensor(zeros: [3, 1, 3, 3, 3]), dW1 = Tensor(zeros: [3, 1, 3, 3, 3])
    let bn = BatchNorm3d(channels: 3)
    let w2 = Tensor(zeros: [3, 3, 3, 3, 3]), dW2 = Tensor(zeros: [3, 3, 3, 3, 3])
    let fc = Tensor(zeros: [1, 3]), dFc = Tensor(zeros: [1, 3])

    // Data.
    let x: Tensor                                   // [2, 1, 5, 7, 9]
    let dX: Tensor                                  // [2, 1, 5, 7, 9]
    let targets = Tensor(shape: [2, 1], values: [1, 0])

    // Activations (forward) and their gradients (backward).
    let c1, b1, a1: Tensor                          // [2, 3, 5, 7, 9]: conv1, BN, ReLU
    let p: Tensor                                   // [2, 3, 3, 4, 5]: max-pool
    let indices: IndexTensor                        // [2, 3, 3, 4, 5]
    let c2, s: Tensor                               // [2, 3, 3, 4, 5]: conv2, residual sum [ReLU]
    let g = Tensor(zeros: [2, 3])                   // global average pool
    let z = Tensor(zeros: [2, 1])                   // logits
    let dZ = Tensor(zeros: [2, 1]), dG = Tensor(zeros: [2, 3])
    let dS, dC2, dPSkip, dPConv, dP: Tensor         // [2, 3, 3, 4, 5]
    let dA1, dB1, dC1: Tensor                       // [2, 3, 5, 7, 9]

    init(finalReLU: Bool, seed: UInt64) {
        self.finalReLU = finalReLU
        let inShape = Shape5(n: 2, c: 1, d: 5, h: 7, w: 9)
        let big = conv1.outputShape(for: inShape)
        let small = pool.outputShape(for: big)
        precondition(conv2.outputShape(for: small) == small)
        x = Tensor(zeros: inShape.dims); dX = Tensor(zeros: inShape.dims)
        (c1, b1, a1) = (Tensor(zeros: big.dims), Tensor(zeros: big.dims), Tensor(zeros: big.dims))
        (dA1, dB1, dC1) = (Tensor(zeros: big.dims), Tensor(zeros: big.dims), Tensor(zeros: big.dims))
        p = Tensor(zeros: small.dims); indices = IndexTensor(zeros: small.dims)
        (c2, s) = (Tensor(zeros: small.dims), Tensor(zeros: small.dims))
        (dS, dC2, dPSkip) = (Tensor(zeros: small.dims), Tensor(zeros: small.dims), Tensor(zeros: small.dims))
        (dPConv, dP) = (Tensor(zeros: small.dims), Tensor(zeros: small.dims))

        var rng = SplitMix64(seed: seed)
        placeKinksInHoles(rng: &rng)
        w2.fillUniform(-0.25, 0.25, rng: &rng)
        fc.fillUniform(-1, 1, rng: &rng)
    }

    /// Data that no finite-difference step can push across a kink of the first ReLU or the max-pool.
    ///
    /// x holds 630 distinct values, each once in random order: a grid of spacing Δ over
    /// [−1.5, 1.5] with three holes of width `hole` cut into it. conv1 starts as a centre tap w_c
    /// only (|w_c| ≥ 3.5; the other 78 taps are 0 at the base point, and still each checked: their
    /// gradients Σ dC1·x_shifted are not 0). Per channel c1 = w_c·x, BN turns it into
    /// γ_c·sign(w_c)·(x − μ)/σ + β_c, and β_c puts the ReLU's kink for channel c in the middle of
    /// hole c. So, in units of x (Δ ≈ 4.7e-3, hole/2 = 1e-2, step 3e-3):
    /// - an x step moves one value by 3e-3 < Δ, past no other value (the pool's order holds) and
    ///   not across a kink (≥ hole/2 + Δ/2 away); the off-centre taps being 0, nothing else moves;
    /// - an off-centre tap step moves each c1 by ≤ 3e-3·1.5, i.e. x-equivalently by ≤ 1.3e-3, and
    ///   the BN mean by as much: less than Δ/2 and hole/2;
    /// - the centre tap and γ only rescale (BN is scale-invariant; γ moves the kink by
    ///   |β|/γ²·3e-3 ≲ 7e-3 normalised units, against hole/2σ ≈ 1.2e-2), β shifts by 3e-3 normalised.
    /// Windows whose values are all cut to 0 tie exactly, but their gradient is 0 and stays 0.
    /// conv2 (after the pool) is fully random, so its backward exercises every spatial tap of
    /// conv3dBackward's dX. The final ReLU's kinks cannot be placed this way (conv2 has no bias):
    /// the seed was chosen so that no step crosses one, and the pattern guard checks it.
    private func placeKinksInHoles(rng: inout SplitMix64) {
        let count = x.count, range = 3.0, hole = 0.02
        let holes = [0.35, 0.5, 0.7]                 // where each channel's kink goes, as a quantile
        let delta = (range - Double(holes.count) * hole) / Double(count)
        // Hole c opens between grid points k_c − 1 and k_c, centred at kink[c].
        let starts = holes.map { Int(($0 * Double(count)).rounded()) }
        var grid: [Float] = [], kink: [Double] = []
        for k in 0..<count {
            let before = starts.filter { $0 <= k }.count
            grid.append(Float(-range / 2 + (Double(k) + 0.5) * delta + Double(before) * hole))
        }
        for (c, k) in starts.enumerated() { kink.append(-range / 2 + Double(k) * delta + Double(c) * hole + hole / 2) }
        grid.shuffle(using: &rng)
        for i in 0..<count { x.data[i] = grid[i] }
        var mean: Double = 0, squares: Double = 0
        for i in 0..<count { mean += Double(x.data[i]) }
        mean /= Double(count)
        for i in 0..<count { squares += (Double(x.data[i]) - mean) * (Double(x.data[i]) - mean) }
        let sigma = (squares / Double(count)).squareRoot()          // BN normalises by the biased σ
        let centre: [Float] = [4, -4.5, 3.5]
        w1.zero()
        bn.weight.fillUniform(0.8, 1.4, rng: &rng)
        for c in 0..<3 {
            w1.data[c * 27 + 13] = centre[c]                          // tap [c, 0, 1, 1, 1]
            let sign: Double = centre[c] > 0 ? 1 : -1
            // 0 = γ·sign·(kink − μ)/σ + β
            bn.bias.data[c] = Float(-Double(bn.weight.data[c]) * sign * (kink[c] - mean) / sigma)
        }
    }

    /// The forward: fills every activation and returns L = (1/N) Σ_i BCE(z_i, y_i).
    /// BN's running buffers are restored afterwards, so that every evaluation sees the same state
    /// (the shifted sums of its statistics start from the running mean).
    @discardableResult
    func forward() -> Double {
        let saved = (bn.runningMean.copy(), bn.runningVar.copy(), bn.numBatchesTracked)
        defer { bn.runningMean.assign(saved.0); bn.runningVar.assign(saved.1); bn.numBatchesTracked = saved.2 }
        conv3dForward(y: c1, x: x, weight: w1, geometry: conv1, workspace: workspace)  // [2, 3, 5, 7, 9]
        bn.forward(c1, into: b1)                                                       // [2, 3, 5, 7, 9]
        ReLU.forward(b1, into: a1)                                                     // [2, 3, 5, 7, 9]
        maxPool3dForward(y: p, indices: indices, x: a1, geometry: pool)                // [2, 3, 3, 4, 5]
        conv3dForward(y: c2, x: p, weight: w2, geometry: conv2, workspace: workspace)  // [2, 3, 3, 4, 5]
        if finalReLU { AddReLU.forward(c2, p, into: s) } else { Add.forward(c2, p, into: s) }
        globalAveragePoolForward(y: g, x: s)                                           // [2, 3]
        linearForward(y: z, x: g, weight: fc)                                          // [2, 1]
        return BinaryCrossEntropyWithLogits.forward(logits: z, targets: targets) / Double(z.count)
    }

    /// The backward of the last `forward`: WRITES dX, ACCUMULATES dW1, bn.dWeight, bn.dBias, dW2,
    /// dFc. `dropResidualGradient` is a deliberate bug: the skip connection's gradient is not
    /// added to p's, as if the residual branch were a constant.
    func backward(dropResidualGradient: Bool = false) {
        BinaryCrossEntropyWithLogits.backward(logits: z, targets: targets,
                                              normalizer: Double(z.count), into: dZ)  // [2, 1]
        linearBackward(dX: dG, dWeight: dFc, dY: dZ, x: g, weight: fc)                // [2, 3]
        globalAveragePoolBackward(dX: dS, dY: dG)                                     // [2, 3, 3, 4, 5]
        if finalReLU { AddReLU.backward(dS, output: s, into: dS) }
        Add.backward(dS, intoA: dC2, intoB: dPSkip)                                   // s = c2 + p
        conv3dBackward(dX: dPConv, dWeight: dW2, dY: dC2, x: p, weight: w2,
                       geometry: conv2, workspace: workspace)                         // [2, 3, 3, 4, 5]
        if dropResidualGradient { dP.assign(dPConv) } else { Add.forward(dPConv, dPSkip, into: dP) }
        maxPool3dBackward(dX: dA1, dY: dP, indices: indices)                          // [2, 3, 5, 7, 9]
        ReLU.backward(dA1, output: a1, into: dB1)                                     // [2, 3, 5, 7, 9]
        bn.backward(dB1, input: c1, into: dC1)                                        // [2, 3, 5, 7, 9]
        conv3dBackward(dX: dX, dWeight: dW1, dY: dC1, x: x, weight: w1,
                       geometry: conv1, workspace: workspace)                         // [2, 1, 5, 7, 9]
    }

    func zeroGradients() {
        for t in [dW1, bn.dWeight, bn.dBias, dW2, dFc] { t.zero() }
    }

    /// Where the forward sits on its pieces: the first ReLU's mask, the max-pool argmaxes and the
    /// final ReLU's mask (all true without it).
    struct Pattern: Equatable {
        var relu1: [Bool]
        var argmax: [Int32]
        var relu2: [Bool]
    }

    var pattern: Pattern {
        Pattern(relu1: a1.array.map { $0 > 0 }, argmax: indices.array,
                relu2: finalReLU ? s.array.map { $0 > 0 } : [])
    }
}

/// One checked tensor: its name, its values (perturbed in place) and its analytic gradient.
private struct Checked {
    var name: String
    var value: Tensor
    var gradient: Tensor
}

/// Analytic gradients of `stack` (after `backward(dropResidualGradient:)`) against central
/// differences, at `entriesPerTensor` entries (all when fewer) of every parameter and of the input.
/// Returns one result per tensor, the number of finite-difference evaluations whose forward left
/// the base pattern, and the loss.
private func checkStack(_ stack: TinyStack, dropResidualGradient: Bool, entriesPerTensor: Int)
    -> (results: [(String, GradientCheckResult)], kinkCrossings: Int, loss: Double) {
    stack.zeroGradients()
    let loss = stack.forward()
    let base = stack.pattern
    stack.backward(dropResidualGradient: dropResidualGradient)
    let checked = [
        Checked(name: "conv1.weight", value: stack.w1, gradient: stack.dW1.copy()),
        Checked(name: "bn.weight", value: stack.bn.weight, gradient: stack.bn.dWeight.copy()),
        Checked(name: "bn.bias", value: stack.bn.bias, gradient: stack.bn.dBias.copy()),
        Checked(name: "conv2.weight", value: stack.w2, gradient: stack.dW2.copy()),
        Checked(name: "fc.weight", value: stack.fc, gradient: stack.dFc.copy()),
        Checked(name: "input", value: stack.x, gradient: stack.dX.copy()),
    ]
    var crossings = 0
    var results: [(String, GradientCheckResult)] = []
    for (k, c) in checked.enumerated() {
        let peak = c.gradient.array.map { Double(abs($0)) }.max() ?? 0
        let indices = sampleIndices(c.value.count, entriesPerTensor, seed: UInt64(k))
        let r = checkGradient(c.value, analytic: c.gradient, indices: indices, eps: step,
                              scale: max(floorFraction * peak, 1e-12)) {
            let l = stack.forward()
            if stack.pattern != base { crossings += 1 }
            return l
        }
        results.append((c.name, r))
    }
    return (results, crossings, loss)
}

@Suite struct StackGradientTests {
    @Test(arguments: [false, true])
    func everyGradientOfTheStackMatchesFiniteDifferences(finalReLU: Bool) {
        let stack = TinyStack(finalReLU: finalReLU, seed: dataSeed)
        let (results, crossings, loss) = checkStack(stack, dropResidualGradient: false, entriesPerTensor: 40)
        #expect(loss.isFinite && loss > 0)
        // The data keeps every evaluation on the base piece (see the header): no kink is crossed.
        #expect(crossings == 0, "\(crossings) finite-difference evaluations crossed a ReLU or max-pool kink")
        // The ReLUs really do cut: some units are off and some on, so the masks are exercised.
        let on = stack.a1.array.filter { $0 > 0 }.count
        #expect(on > 0 && on < stack.a1.count, "ReLU after BN: \(on) of \(stack.a1.count) on")
        for (name, r) in results {
            #expect(r.checked > 0)
            #expect(r.worstRelativeError < gradientTolerance, "\(name): \(r)")
        }
        print("stack gradient check (final ReLU: \(finalReLU)): L = \(loss), "
              + results.map { "\($0.0) \($0.1.worstRelativeError)" }.joined(separator: ", "))
    }

    /// The same check fails a backward that forgets the residual branch's gradient.
    @Test func droppingTheResidualGradientFailsTheCheck() {
        let stack = TinyStack(finalReLU: false, seed: dataSeed)
        let (results, crossings, _) = checkStack(stack, dropResidualGradient: true, entriesPerTensor: 8)
        #expect(crossings == 0)
        let errors = Dictionary(uniqueKeysWithValues: results.map { ($0.0, $0.1.worstRelativeError) })
        // Everything below the join is wrong; everything above it (conv2, fc) is untouched.
        for name in ["conv1.weight", "bn.weight", "bn.bias", "input"] {
            #expect(errors[name]! > brokenThreshold, "\(name) should fail: \(errors[name]!)")
        }
        for name in ["conv2.weight", "fc.weight"] {
            #expect(errors[name]! < gradientTolerance, "\(name) is above the bug: \(errors[name]!)")
        }
        print("broken backward (residual gradient dropped): "
              + results.map { "\($0.0) \($0.1.worstRelativeError)" }.joined(separator: ", "))
    }
}



#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NumericalTesting
import Testing
@testable import NN

/// BCE on logits and the attention loss of Eq. (3): naive references, finite differences, global
/// normalisers across simulated ranks, and the no-COVID case.
@Suite struct LossTests {
    private let logits: [Float] = [-3.5, -0.7, 0, 0.4, 2.2, 6, -9, 1.1]
    private let labels: [Float] = [0, 1, 1, 0, 1, 1, 0, 0]

    @Test func bceMatchesNaiveAndStaysFiniteForLargeLogits() {
        let z = Tensor(shape: [8, 1], values: logits), y = Tensor(shape: [8, 1], values: labels)
        var naive: Double = 0
        for i in 0..<8 {
            let p = 1 / (1 + exp(-Double(logits[i])))
            naive += -(Double(labels[i]) * log(p) + (1 - Double(labels[i])) * log(1 - p))
        }
        #expect(abs(BinaryCrossEntropyWithLogits.forward(logits: z, targets: y) - naive) < 1e-10 * naive)
        // Where the naive formula overflows: ℓ(100, 0) = ℓ(−100, 1) = 100, ℓ(100, 1) ≈ e^(−100).
        let big = Tensor(shape: [3], values: [100, -100, 100]), t = Tensor(shape: [3], values: [0, 1, 1])
        let l = BinaryCrossEntropyWithLogits.forward(logits: big, targets: t)
        #expect(abs(l - 200) < 1e-9)
        let d = Tensor(zeros: [3])
        BinaryCrossEntropyWithLogits.backward(logits: big, targets: t, normalizer: 1, into: d)
        #expect(d.array == [1, -1, 0])
    }

    @Test func bceBackwardMatchesFiniteDifferencesWithGlobalNormalizer() {
        let z = Tensor(shape: [8], values: logits), y = Tensor(shape: [8], values: labels)
        let globalBatch = 20.0  // this rank holds 8 of the global batch of 20
        let dz = Tensor(zeros: [8])
        BinaryCrossEntropyWithLogits.backward(logits: z, targets: y, normalizer: globalBatch, scale: 1, into: dz)
        for i in 0..<8 {
            let p = 1 / (1 + exp(-Double(logits[i])))
            #expect(abs(Double(dz.data[i]) - (p - Double(labels[i])) / globalBatch) < 1e-8)
        }
        let loss = { BinaryCrossEntropyWithLogits.forward(logits: z, targets: y) / globalBatch }
        // Smooth; loss in Double from float logits: eps 1e-3.
        let r = checkGradient(z, analytic: dz, eps: 1e-3, scale: 1e-3, loss: loss)
        #expect(r.worstRelativeError < 1e-3, "\(r)")
    }

    @Test func bceRankSumsOverGlobalBatchEqualTheMean() {
        let whole = BinaryCrossEntropyWithLogits.forward(logits: Tensor(shape: [8], values: logits),
                                                          targets: Tensor(shape: [8], values: labels))
        let a = BinaryCrossEntropyWithLogits.forward(logits: Tensor(shape: [3], values: Array(logits[0..<3])),
                                                      targets: Tensor(shape: [3], values: Array(labels[0..<3])))
        let b = BinaryCrossEntropyWithLogits.forward(logits: Tensor(shape: [5], values: Array(logits[3...])),
                                                      targets: Tensor(shape: [5], values: Array(labels[3...])))
        let empty = BinaryCrossEntropyWithLogits.forward(logits: Tensor(zeros: [0]), targets: Tensor(zeros: [0]))
        #expect(abs((a + b + empty) / 8 - whole / 8) < 1e-12)
    }

    /// T in (0, 1) and binary masks `[4, 1, 3, 5, 7]`; labels COVID, CAP, COVID, CAP.
    private func attentionBatch(seed: UInt64) -> (t: Tensor, m: Tensor, labels: Tensor) {
        var rng = SplitMix64(seed: seed)
        let t = Tensor(zeros: [4, 1, 3, 5, 7]), m = Tensor(zeros: t.shape)
        t.fillUniform(0.05, 0.95, rng: &rng)
        for i in 0..<m.count { m.data[i] = rng.uniform() < 0.3 ? 1 : 0 }
        return (t, m, Tensor(shape: [4], values: [1, 0, 1, 0]))
    }

    @Test func attentionLossMatchesNaive() {
        let (t, m, labels) = attentionBatch(seed: 1)
        var num: Double = 0, den: Double = 0
        for n in [0, 2] {
            for i in 0..<105 {
                let tv = Double(t.data[n * 105 + i]), mv = Double(m.data[n * 105 + i])
                num += (tv - mv) * (tv - mv)
                den += tv + mv
            }
        }
        let sums = AttentionLoss.localSums(attention: t, mask: m, labels: labels)
        #expect(sums.covidCount == 2)
        #expect(abs(sums.numerator - num) < 1e-9 && abs(sums.denominator - den) < 1e-9)
        #expect(abs(sums.loss - num / den) < 1e-12)
    }

    @Test func attentionLossBackwardMatchesFiniteDifferences() {
        let (t, m, labels) = attentionBatch(seed: 2)
        let sums = AttentionLoss.localSums(attention: t, mask: m, labels: labels)
        let dT = Tensor(shape: t.shape, repeating: 3)  // garbage: backward must overwrite
        let lambda = 0.5
        AttentionLoss.backward(attention: t, mask: m, labels: labels, global: sums, scale: lambda, into: dT)
        let loss = { lambda * AttentionLoss.localSums(attention: t, mask: m, labels: labels).loss }
        // A smooth ratio of Double sums; gradients ≈ 1e-3 per voxel, so the floor is 1e-4.
        let r = checkGradient(t, analytic: dT, eps: 1e-3, scale: 1e-4, loss: loss)
        #expect(r.worstRelativeError < 1e-3, "\(r)")
        for n in [1, 3] { for i in 0..<105 { #expect(dT.data[n * 105 + i] == 0) } }
    }

    /// Two ranks ([COVID, CAP] and [COVID, CAP]) summing their sums get the whole batch's loss, and
    /// their backward with the global sums gives the whole batch's dT.
    @Test func attentionLossAcrossRanksUsesOneGlobalRatio() {
        let (t, m, labels) = attentionBatch(seed: 3)
        let whole = AttentionLoss.localSums(attention: t, mask: m, labels: labels)
        let dWhole = Tensor(zeros: t.shape)
        AttentionLoss.backward(attention: t, mask: m, labels: labels, global: whole, into: dWhole)

        var global = AttentionLossSums()
        var parts: [(Tensor, Tensor, Tensor)] = []
        for r in 0..<2 {
            let tr = Tensor(zeros: [2, 1, 3, 5, 7]), mr = Tensor(zeros: tr.shape)
            tr.data.update(from: t.data + r * 210, count: 210)
            mr.data.update(from: m.data + r * 210, count: 210)
            let lr = Tensor(shape: [2], values: [labels.data[2 * r], labels.data[2 * r + 1]])
            let local = AttentionLoss.localSums(attention: tr, mask: mr, labels: lr)
            global.values = zip(global.values, local.values).map(+)  // the all-reduce
            parts.append((tr, mr, lr))
        }
        #expect(abs(global.loss - whole.loss) < 1e-12)
        for (r, (tr, mr, lr)) in parts.enumerated() {
            let dr = Tensor(zeros: tr.shape)
            AttentionLoss.backward(attention: tr, mask: mr, labels: lr, global: global, into: dr)
            for i in 0..<210 { #expect(abs(dr.data[i] - dWhole.data[r * 210 + i]) < 1e-9) }
        }
    }

    @Test func attentionLossIsZeroWithoutCovid() {
        let (t, m, _) = attentionBatch(seed: 4)
        let cap = Tensor(zeros: [4])
        let sums = AttentionLoss.localSums(attention: t, mask: m, labels: cap)
        #expect(sums == AttentionLossSums())
        #expect(sums.loss == 0)
        let dT = Tensor(shape: t.shape, repeating: 3)
        AttentionLoss.backward(attention: t, mask: m, labels: cap, global: sums, into: dT)
        #expect(dT.array.allSatisfy { $0 == 0 })
        // A rank whose local samples are all CAP but whose global batch has COVID cases: zero dT too.
        let covidElsewhere = AttentionLossSums(numerator: 10, denominator: 40, covidCount: 1)
        dT.fill(3)
        AttentionLoss.backward(attention: t, mask: m, labels: cap, global: covidElsewhere, into: dT)
        #expect(dT.array.allSatisfy { $0 == 0 })
    }
}

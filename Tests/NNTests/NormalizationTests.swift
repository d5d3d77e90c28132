import NumericalTesting
import Testing
@testable import NN

/// BatchNorm3d against a naive two-pass reference, finite differences, PyTorch's running-statistics
/// rules, and the SyncBN guarantee (ranks summing their statistics through the seam compute what
/// one rank computes on the whole batch).
@Suite struct NormalizationTests {
    /// [N, C, D, H, W] with odd, non-cubic spatial sizes and a channel offset so that the shifted
    /// sums have something to do.
    private func input(_ n: Int, seed: UInt64, c: Int = 3) -> Tensor {
        var rng = SplitMix64(seed: seed)
        let x = Tensor(zeros: [n, c, 5, 7, 9])
        x.fillNormal(std: 2, rng: &rng)
        let s = x.shape5
        for i in 0..<x.count { x.data[i] += Float((i / s.spatial) % c) * 3 - 2 }
        return x
    }

    private func randomAffine(_ bn: BatchNorm3d, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        bn.weight.fillUniform(0.5, 1.5, rng: &rng)
        bn.bias.fillUniform(-1, 1, rng: &rng)
    }

    /// Per-channel mean and biased variance over N·D·H·W, two-pass in Double.
    private func naiveStatistics(_ x: Tensor) -> (mean: [Double], variance: [Double]) {
        let s = x.shape5
        var mean = [Double](repeating: 0, count: s.c), variance = mean
        for c in 0..<s.c {
            var sum: Double = 0
            for n in 0..<s.n { for v in 0..<s.spatial { sum += Double(x.data[(n * s.c + c) * s.spatial + v]) } }
            mean[c] = sum / Double(s.n * s.spatial)
            var sq: Double = 0
            for n in 0..<s.n {
                for v in 0..<s.spatial {
                    let d = Double(x.data[(n * s.c + c) * s.spatial + v]) - mean[c]
                    sq += d * d
                }
            }
            variance[c] = sq / Double(s.n * s.spatial)
        }
        return (mean, variance)
    }

    private func naiveNormalize(_ x: Tensor, mean: [Double], variance: [Double], _ bn: BatchNorm3d) -> Tensor {
        let s = x.shape5, y = Tensor(zeros: x.shape)
        for n in 0..<s.n {
            for c in 0..<s.c {
                for v in 0..<s.spatial {
                    let i = (n * s.c + c) * s.spatial + v
                    let xh = (Double(x.data[i]) - mean[c]) / (variance[c] + 1e-5).squareRoot()
                    y.data[i] = Float(xh * Double(bn.weight.data[c]) + Double(bn.bias.data[c]))
                }
            }
        }
        return y
    }

    @Test func trainingForwardMatchesNaive() {
        let x = input(2, seed: 1)
        let bn = BatchNorm3d(channels: 3)
        randomAffine(bn, seed: 2)
        let y = Tensor(zeros: x.shape)
        bn.forward(x, into: y)
        let (mean, variance) = naiveStatistics(x)
        let expected = naiveNormalize(x, mean: mean, variance: variance, bn)
        // Outputs are O(3); float rounding of x·a + b.
        #expect(maxAbsDifference(y, expected) < 1e-5)
    }

    @Test func runningStatisticsUseUnbiasedVarianceAndMomentum() {
        let bn = BatchNorm3d(channels: 3)
        let x1 = input(2, seed: 3), x2 = input(3, seed: 4)
        let y1 = Tensor(zeros: x1.shape), y2 = Tensor(zeros: x2.shape)
        bn.forward(x1, into: y1)
        bn.forward(x2, into: y2)
        let (m1, v1) = naiveStatistics(x1), (m2, v2) = naiveStatistics(x2)
        let n1 = Double(x1.count / 3), n2 = Double(x2.count / 3)
        for c in 0..<3 {
            // PyTorch: running = (1 − 0.1)·running + 0.1·batch, with the unbiased variance; starts at (0, 1).
            let mean = 0.9 * (0.9 * 0 + 0.1 * m1[c]) + 0.1 * m2[c]
            let variance = 0.9 * (0.9 * 1 + 0.1 * v1[c] * n1 / (n1 - 1)) + 0.1 * v2[c] * n2 / (n2 - 1)
            #expect(abs(Double(bn.runningMean.data[c]) - mean) < 1e-6 * max(1, abs(mean)))
            #expect(abs(Double(bn.runningVar.data[c]) - variance) < 1e-6 * max(1, variance))
        }
        #expect(bn.numBatchesTracked == 2)
    }

    @Test func evalModeUsesRunningStatistics() {
        let bn = BatchNorm3d(channels: 3)
        randomAffine(bn, seed: 5)
        var rng = SplitMix64(seed: 6)
        bn.runningMean.fillUniform(-2, 2, rng: &rng)
        bn.runningVar.fillUniform(0.5, 3, rng: &rng)
        bn.training = false
        let saved = (bn.runningMean.copy(), bn.runningVar.copy())
        let x = input(2, seed: 7)
        let y = Tensor(zeros: x.shape)
        bn.forward(x, into: y)
        let expected = naiveNormalize(x, mean: bn.runningMean.array.map(Double.init),
                                      variance: bn.runningVar.array.map(Double.init), bn)
        #expect(maxAbsDifference(y, expected) < 1e-5)
        #expect(bn.runningMean.array == saved.0.array && bn.runningVar.array == saved.1.array)
        #expect(bn.numBatchesTracked == 0)
    }

    /// Loss Σ g·BN(x) for finite differences, with the running buffers restored before each forward
    /// so that the shift K (the running mean) is the same as in the analytic pass.
    private func lossClosure(_ bn: BatchNorm3d, _ x: Tensor, _ g: Tensor) -> () -> Double {
        let mean0 = bn.runningMean.copy(), var0 = bn.runningVar.copy()
        let y = Tensor(zeros: x.shape)
        return {
            bn.runningMean.assign(mean0)
            bn.runningVar.assign(var0)
            bn.forward(x, into: y)
            return dot(g, y)
        }
    }

    @Test(arguments: [true, false])
    func backwardMatchesFiniteDifferences(training: Bool) {
        let x = input(2, seed: 8)
        let bn = BatchNorm3d(channels: 3)
        randomAffine(bn, seed: 9)
        if !training {
            var rng = SplitMix64(seed: 10)
            bn.runningMean.fillUniform(-2, 2, rng: &rng)
            bn.runningVar.fillUniform(0.5, 3, rng: &rng)
            bn.training = false
        }
        let g = projectionWeights(like: x, seed: 11)
        let loss = lossClosure(bn, x, g)
        _ = loss()
        let dx = Tensor(zeros: x.shape)
        bn.backward(g, input: x, into: dx)
        // Smooth op, O(1) gradients: eps 1e-2 in float, relative error 2e-2 with a 1e-2 floor.
        let rx = checkGradient(x, analytic: dx, indices: sampleIndices(x.count, 60, seed: 12), eps: 1e-2, loss: loss)
        let rw = checkGradient(bn.weight, analytic: bn.dWeight, eps: 1e-2, scale: 1e-1, loss: loss)
        let rb = checkGradient(bn.bias, analytic: bn.dBias, eps: 1e-2, scale: 1e-1, loss: loss)
        #expect(rx.worstRelativeError < 2e-2, "dx: \(rx)")
        #expect(rw.worstRelativeError < 2e-2, "dWeight: \(rw)")
        #expect(rb.worstRelativeError < 2e-2, "dBias: \(rb)")
    }

    @Test func backwardAccumulatesParameterGradientsAndWritesInputGradient() {
        let x = input(2, seed: 13)
        let bn = BatchNorm3d(channels: 3)
        let y = Tensor(zeros: x.shape)
        bn.forward(x, into: y)
        let g = projectionWeights(like: x, seed: 14)
        let dx = Tensor(zeros: x.shape)
        bn.backward(g, input: x, into: dx)
        let once = (bn.dWeight.copy(), bn.dBias.copy(), dx.copy())
        dx.fill(7)
        bn.backward(g, input: x, into: dx)
        for c in 0..<3 {
            #expect(bn.dWeight.data[c] == 2 * once.0.data[c])
            #expect(bn.dBias.data[c] == 2 * once.1.data[c])
        }
        #expect(dx.array == once.2.array)
    }

    /// The SyncBN guarantee: ranks with batches [1, 3, 0] (one empty) that sum their statistics and
    /// gradient sums through the seam get the whole batch's output, input gradient and running
    /// statistics, and their local dWeight/dBias add up to the whole batch's.
    @Test func splitBatchThroughSeamEqualsWholeBatch() {
        let parts = [1, 3, 0]
        let whole = input(4, seed: 15)
        let g = projectionWeights(like: whole, seed: 16)
        let reference = BatchNorm3d(channels: 3)
        randomAffine(reference, seed: 17)
        let yWhole = Tensor(zeros: whole.shape), dxWhole = Tensor(zeros: whole.shape)
        reference.forward(whole, into: yWhole)
        reference.backward(g, input: whole, into: dxWhole)

        let per = whole.shape5.perSample
        var first = 0
        var ranks: [(bn: BatchNorm3d, x: Tensor, g: Tensor, y: Tensor, dx: Tensor, first: Int)] = []
        for n in parts {
            let bn = BatchNorm3d(channels: 3)
            randomAffine(bn, seed: 17)
            let x = Tensor(zeros: [n, 3, 5, 7, 9]), gl = Tensor(zeros: x.shape)
            x.data.update(from: whole.data + first * per, count: n * per)
            gl.data.update(from: g.data + first * per, count: n * per)
            ranks.append((bn, x, gl, Tensor(zeros: x.shape), Tensor(zeros: x.shape), first))
            first += n
        }
        // Forward: local sums, all-reduce (simulated), normalise.
        for r in ranks { r.bn.computeLocalStatistics(r.x) }
        allReduce(ranks.map(\.bn.statistics))
        for r in ranks {
            r.bn.applyStatistics()
            r.bn.normalize(r.x, into: r.y)
        }
        // Backward: local sums (and local parameter gradients), all-reduce, input gradient.
        for r in ranks { r.bn.computeLocalGradientSums(r.g, input: r.x) }
        allReduce(ranks.map(\.bn.gradientSums))
        for r in ranks { r.bn.computeInputGradient(r.g, input: r.x, into: r.dx) }

        // Only the summation order differs: outputs O(3), gradients O(1).
        for r in ranks {
            let n = r.x.shape[0]
            for i in 0..<(n * per) {
                #expect(abs(r.y.data[i] - yWhole.data[r.first * per + i]) < 1e-5)
                #expect(abs(r.dx.data[i] - dxWhole.data[r.first * per + i]) < 1e-5)
            }
            #expect(maxAbsDifference(r.bn.runningMean, reference.runningMean) < 1e-6)
            #expect(maxAbsDifference(r.bn.runningVar, reference.runningVar) < 1e-6)
            #expect(r.bn.numBatchesTracked == 1)
        }
        for c in 0..<3 {
            let dw = ranks.map { Double($0.bn.dWeight.data[c]) }.reduce(0, +)
            let db = ranks.map { Double($0.bn.dBias.data[c]) }.reduce(0, +)
            #expect(abs(dw - Double(reference.dWeight.data[c])) < 1e-3)
            #expect(abs(db - Double(reference.dBias.data[c])) < 1e-3)
        }
    }

    /// The same guarantee through the `allReduce` closure of `forward`/`backward`, for two ranks:
    /// rank 1's local sums are computed first and the closure of rank 0 adds them.
    @Test func allReduceClosureEqualsWholeBatch() {
        let whole = input(4, seed: 18)
        let g = projectionWeights(like: whole, seed: 19)
        let reference = BatchNorm3d(channels: 3)
        let yWhole = Tensor(zeros: whole.shape), dxWhole = Tensor(zeros: whole.shape)
        reference.forward(whole, into: yWhole)
        reference.backward(g, input: whole, into: dxWhole)

        let per = whole.shape5.perSample
        let x0 = Tensor(zeros: [2, 3, 5, 7, 9]), x1 = Tensor(zeros: [2, 3, 5, 7, 9])
        let g0 = Tensor(zeros: x0.shape), g1 = Tensor(zeros: x0.shape)
        x0.data.update(from: whole.data, count: 2 * per)
        x1.data.update(from: whole.data + 2 * per, count: 2 * per)
        g0.data.update(from: g.data, count: 2 * per)
        g1.data.update(from: g.data + 2 * per, count: 2 * per)
        let rank0 = BatchNorm3d(channels: 3), rank1 = BatchNorm3d(channels: 3)
        let y0 = Tensor(zeros: x0.shape), y1 = Tensor(zeros: x0.shape)
        let dx0 = Tensor(zeros: x0.shape), dx1 = Tensor(zeros: x0.shape)

        rank1.computeLocalStatistics(x1)
        rank0.allReduce = { buffer in for i in buffer.indices { buffer[i] += rank1.statistics[i] } }
        rank0.forward(x0, into: y0)
        for i in rank1.statistics.indices { rank1.statistics[i] = rank0.statistics[i] }
        rank1.applyStatistics()
        rank1.normalize(x1, into: y1)

        rank1.computeLocalGradientSums(g1, input: x1)
        rank0.allReduce = { buffer in for i in buffer.indices { buffer[i] += rank1.gradientSums[i] } }
        rank0.backward(g0, input: x0, into: dx0)
        for i in rank1.gradientSums.indices { rank1.gradientSums[i] = rank0.gradientSums[i] }
        rank1.computeInputGradient(g1, input: x1, into: dx1)

        for i in 0..<(2 * per) {
            #expect(abs(y0.data[i] - yWhole.data[i]) < 1e-5)
            #expect(abs(y1.data[i] - yWhole.data[2 * per + i]) < 1e-5)
            #expect(abs(dx0.data[i] - dxWhole.data[i]) < 1e-5)
            #expect(abs(dx1.data[i] - dxWhole.data[2 * per + i]) < 1e-5)
        }
        #expect(maxAbsDifference(rank0.runningVar, reference.runningVar) < 1e-6)
    }

    /// Two batch norms in one round (a residual block's second and its shortcut's): one call of
    /// the hook with both buffers end to end, and the same bits as a round each. The hook doubles
    /// every sum (as two ranks holding the same batch would), so a mix-up of the buffers shows.
    @Test func twoBatchNormsInOneRoundEqualARoundEach() {
        let xa = input(2, seed: 21), xb = input(2, seed: 22)
        let ga = projectionWeights(like: xa, seed: 23), gb = projectionWeights(like: xb, seed: 24)
        func layers() -> (BatchNorm3d, BatchNorm3d) {
            let a = BatchNorm3d(channels: 3), b = BatchNorm3d(channels: 3)
            randomAffine(a, seed: 25)
            randomAffine(b, seed: 26)
            return (a, b)
        }
        var calls = [Int]()
        let doubling: BatchNormAllReduce = { buffer in
            calls.append(buffer.count)
            for i in buffer.indices { buffer[i] *= 2 }
        }
        let (a1, b1) = layers(), (a2, b2) = layers()
        for bn in [a1, b1, a2, b2] { bn.allReduce = doubling }
        let ya1 = Tensor(zeros: xa.shape), yb1 = Tensor(zeros: xb.shape), ya2 = Tensor(zeros: xa.shape), yb2 = Tensor(zeros: xb.shape)
        a1.forward(xa, into: ya1)
        b1.forward(xb, into: yb1)
        #expect(calls == [7, 7])
        calls = []
        BatchNorm3d.forward(together: [(a2, xa, ya2), (b2, xb, yb2)])
        #expect(calls == [14])
        #expect(ya1.array == ya2.array && yb1.array == yb2.array)
        let dxa1 = Tensor(zeros: xa.shape), dxb1 = Tensor(zeros: xb.shape), dxa2 = Tensor(zeros: xa.shape), dxb2 = Tensor(zeros: xb.shape)
        calls = []
        a1.backward(ga, input: xa, into: dxa1)
        b1.backward(gb, input: xb, into: dxb1)
        #expect(calls == [6, 6])
        calls = []
        BatchNorm3d.backward(together: [(a2, ga, xa, dxa2), (b2, gb, xb, dxb2)])
        #expect(calls == [12])
        #expect(dxa1.array == dxa2.array && dxb1.array == dxb2.array)
        #expect(a1.dWeight.array == a2.dWeight.array && b1.dBias.array == b2.dBias.array)
        #expect(a1.runningVar.array == a2.runningVar.array && b1.runningMean.array == b2.runningMean.array)
    }

    /// Sums the buffers element-wise and writes the sum back into each, like MPI_Allreduce(SUM).
    private func allReduce(_ buffers: [UnsafeMutableBufferPointer<Double>]) {
        for i in buffers[0].indices {
            let s = buffers.map { $0[i] }.reduce(0, +)
            for b in buffers { b[i] = s }
        }
    }
}

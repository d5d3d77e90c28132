import NumericalTesting
import Testing
@testable import NN

// Linear without bias against naive loops and finite differences.
// Tolerances: fast vs naive |Δ| ≤ 1e-4 · (1 + max |reference|) (sums of ≤ 37 float products);
// finite differences relative error ≤ 5e-3 with floor 1e-2, eps = 1e-2 (the layer is linear, so
// only the float rounding of the forward enters).

private func expectClose(_ fast: Tensor, _ reference: [Float], _ what: String) {
    let scale = reference.map(abs).max() ?? 0
    var worst: Float = 0
    for i in 0..<reference.count { worst = max(worst, abs(fast.data[i] - reference[i])) }
    #expect(worst <= 1e-4 * (1 + scale), "\(what): max |Δ| \(worst)")
}

@Suite struct LinearTests {
    // (N, in, out): the model's head 512 → 1 at batch 3, and a general rectangular case.
    @Test(arguments: [(3, 512, 1), (4, 37, 5)])
    func linearMatchesNaiveAndFiniteDifferences(_ dims: (Int, Int, Int)) {
        let (n, inF, outF) = dims
        let x = uniformTensor([n, inF], seed: 1), w = uniformTensor([outF, inF], seed: 2)
        let y = Tensor(zeros: [n, outF])
        linearForward(y: y, x: x, weight: w)
        var yRef = [Float](repeating: 0, count: n * outF)
        for i in 0..<n { for o in 0..<outF { for k in 0..<inF {
            yRef[i * outF + o] += x[i, k] * w[o, k]
        }}}
        expectClose(y, yRef, "forward")

        let g = projectionWeights(like: y, seed: 3)
        let dX = Tensor(shape: x.shape, repeating: 9)           // must be overwritten
        let dW = Tensor(shape: w.shape, repeating: 0.5)         // must be accumulated into
        linearBackward(dX: dX, dWeight: dW, dY: g, x: x, weight: w)
        var dxRef = [Float](repeating: 0, count: x.count), dwRef = [Float](repeating: 0.5, count: w.count)
        for i in 0..<n { for o in 0..<outF { for k in 0..<inF {
            dxRef[i * inF + k] += g[i, o] * w[o, k]
            dwRef[o * inF + k] += g[i, o] * x[i, k]
        }}}
        expectClose(dX, dxRef, "dX")
        expectClose(dW, dwRef, "dWeight")

        let dWFresh = Tensor(zeros: w.shape)
        linearBackward(dX: nil, dWeight: dWFresh, dY: g, x: x, weight: w)
        let loss = { () -> Double in linearForward(y: y, x: x, weight: w); return dot(g, y) }
        let rx = checkGradient(x, analytic: dX, indices: sampleIndices(x.count, 40, seed: 4),
                               eps: 1e-2, scale: 1e-2, loss: loss)
        #expect(rx.worstRelativeError <= 5e-3, "dX: \(rx)")
        let rw = checkGradient(w, analytic: dWFresh, indices: sampleIndices(w.count, 40, seed: 5),
                               eps: 1e-2, scale: 1e-2, loss: loss)
        #expect(rw.worstRelativeError <= 5e-3, "dWeight: \(rw)")
    }
}

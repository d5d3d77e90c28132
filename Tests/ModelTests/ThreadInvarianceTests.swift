import BLAS
import NumericalTesting
import Testing
@testable import Model
import NN
import Tensor

/// The whole network at the paper's width (64) on a small volume gives the same bits whatever the
/// thread count. Under `mpirun` the thread count of a rank follows its binding (one core when the
/// ranks fit the cores, every core when they are oversubscribed), so a step that depended on it
/// would differ between rank counts by far more than summation order: at width 64 on 16×32×32 the
/// step's batch norms amplify a last-bit difference to 1e-2 in a gradient. Narrow networks hide
/// this (6e-7 at width 4), hence width 64 here.
@Suite(.serialized) struct ThreadInvarianceTests {
    static let algorithms: [ConvAlgorithm] = [.direct, .winograd]

    @Test(arguments: algorithms)
    func stepGradientsDoNotDependOnThreads(algorithm: ConvAlgorithm) {
        func run(threads: Int) -> [String: [Float]] {
            ConvAlgorithm.choice.with(algorithm) {
                ThreadSettings.with(parallel: threads, blas: threads) {
                    let problem = TinyProblem(width: 64, size: (16, 32, 32), seed: 5)
                    _ = problem.gradients()
                    var out: [String: [Float]] = [:]
                    for p in problem.model.registry.parameters { out[p.name] = p.gradient.array }
                    return out
                }
            }
        }
        let one = run(threads: 1), two = run(threads: 2), three = run(threads: 3)
        #expect(one.count > 100)
        #expect(one.values.allSatisfy { g in g.allSatisfy(\.isFinite) })
        for (threads, other) in [(2, two), (3, three)] {
            let differing = one.keys.sorted().filter { other[$0] != one[$0] }
            #expect(differing.isEmpty, "\(algorithm) convs on \(threads) threads: \(differing.count) gradients differ from 1 thread, first \(differing.prefix(4))")
        }
    }

    /// Each conv of the network on its own, forward and both gradients: where a step differs,
    /// this names the conv.
    @Test(arguments: algorithms)
    func everyConvDoesNotDependOnThreads(algorithm: ConvAlgorithm) {
        let model = ResNet3D(config: ModelConfig(width: 64), seed: 3)
        var differing: [String] = []
        for (k, conv) in model.convolutions(for: Shape5(n: 2, c: 1, d: 16, h: 32, w: 32)).enumerated() {
            let g = conv.geometry
            let x = uniformTensor(conv.input.dims, seed: UInt64(100 + k))
            let w = uniformTensor(g.weightShape, seed: UInt64(200 + k))
            let dy = uniformTensor(g.outputShape(for: conv.input).dims, seed: UInt64(300 + k))
            func run(threads: Int) -> [[Float]] {
                ConvAlgorithm.choice.with(algorithm) {
                    ThreadSettings.with(parallel: threads, blas: threads) {
                        let ws = ConvWorkspace()
                        let y = Tensor(zeros: dy.shape), dX = Tensor(zeros: x.shape), dW = Tensor(zeros: w.shape)
                        conv3dForward(y: y, x: x, weight: w, geometry: g, workspace: ws)
                        conv3dBackward(dX: dX, dWeight: dW, dY: dy, x: x, weight: w, geometry: g, workspace: ws)
                        return [y.array, dX.array, dW.array]
                    }
                }
            }
            let one = run(threads: 1)
            for threads in [2, 3] {
                let other = run(threads: threads)
                for (part, name) in ["y", "dX", "dW"].enumerated() where other[part] != one[part] {
                    differing.append("\(conv.name).\(name)@\(threads)")
                }
            }
        }
        #expect(differing.isEmpty, "\(algorithm): \(differing.count) differ from 1 thread: \(differing.prefix(12))")
    }

    /// A rank whose share of the step is empty runs every conv on zero samples: nothing to
    /// compute, nothing written, and dW untouched (it accumulates).
    @Test func everyConvAcceptsAnEmptyBatch() {
        let model = ResNet3D(config: ModelConfig(width: 64), seed: 3)
        for conv in model.convolutions(for: Shape5(n: 0, c: 1, d: 16, h: 32, w: 32)) {
            let g = conv.geometry
            let x = Tensor(zeros: conv.input.dims), dy = Tensor(zeros: g.outputShape(for: conv.input).dims)
            let w = uniformTensor(g.weightShape, seed: 7), dW = Tensor(shape: g.weightShape, repeating: 0.5)
            let ws = ConvWorkspace()
            conv3dForward(y: dy, x: x, weight: w, geometry: g, workspace: ws)
            conv3dBackward(dX: Tensor(zeros: x.shape), dWeight: dW, dY: dy, x: x, weight: w, geometry: g, workspace: ws)
            #expect(dW.array.allSatisfy { $0 == 0.5 }, "\(conv.name)")
        }
    }
}
